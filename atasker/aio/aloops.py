"""The aloops of a supervisor, by name (the supervisor inherits the registry)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from .aloop import ALoop, join_stopped

RESERVED_NAME = "__supervisor__"


class AloopRegistry:
    """The aloops of a supervisor, by name (the supervisor inherits this).

    Every method is thread-safe.
    """

    id: str
    default_aloop: ALoop | None

    def __init__(self) -> None:
        self._aloops: dict[str, ALoop] = {}
        self._aloops_lock = threading.Lock()
        self._own_aloop: ALoop | None = None
        self.default_aloop = None

    def _supervisor_aloop(self) -> ALoop:
        """The supervisor's own loop (``__supervisor__``), started on first use;
        workers' drivers run there."""
        with self._aloops_lock:
            if self._own_aloop is None:
                self._own_aloop = ALoop(RESERVED_NAME, self, daemon=True)  # type: ignore[arg-type]
            aloop = self._own_aloop
        aloop.start()
        return aloop

    def create_aloop(
        self, name: str, daemon: bool = False, start: bool = True, default: bool = False
    ) -> ALoop:
        """Create an asyncio loop running in a thread of its own.

        Args:
            name: its name; ``__supervisor__`` is reserved.
            daemon: run its thread as a daemon thread.
            start: start it now (returns once the loop runs).
            default: make it the default aloop (for coroutine tasks and
                async workers with no ``loop=``).

        Returns:
            The ALoop.

        Raises:
            ValueError: the name is reserved, empty or already taken.
        """
        if not isinstance(name, str) or not name or name == RESERVED_NAME:
            raise ValueError(
                f"name must be a non-empty string other than {RESERVED_NAME!r}; "
                f"got {name!r}"
            )
        aloop = ALoop(name, self, daemon=daemon)  # type: ignore[arg-type]
        with self._aloops_lock:
            if name in self._aloops:
                raise ValueError(f"an aloop named {name!r} already exists")
            self._aloops[name] = aloop
            if default:
                self.default_aloop = aloop
        if start:
            aloop.start()
        return aloop

    def get_aloop(
        self, name: str | ALoop | None = None, default: bool = True
    ) -> ALoop | None:
        """The aloop called ``name``; with no name, the default one if
        ``default``. None if there is no such aloop."""
        if isinstance(name, ALoop):
            return name
        if name is None:
            return self.default_aloop if default else None
        with self._aloops_lock:
            return self._aloops.get(name)

    def _aloop(self, name: str | ALoop) -> ALoop:
        aloop = self.get_aloop(name, default=False)
        if aloop is None:
            raise ValueError(f"no aloop named {name!r}: create_aloop({name!r}) first")
        return aloop

    def start_aloop(self, name: str | ALoop) -> None:
        """Start (or restart) an aloop."""
        self._aloop(name).start()

    def stop_aloop(
        self, name: str | ALoop, wait: bool | float = True, cancel_tasks: bool = False
    ) -> None:
        """Stop an aloop (see :meth:`ALoop.stop`); it may be started again."""
        self._aloop(name).stop(wait=wait, cancel_tasks=cancel_tasks)

    def set_default_aloop(self, aloop: str | ALoop | None) -> None:
        """Make ``aloop`` (an ALoop or a name; None for none) the default."""
        self.default_aloop = None if aloop is None else self._aloop(aloop)

    def get_aloops(self) -> dict[str, ALoop]:
        """Every aloop, by name."""
        with self._aloops_lock:
            return dict(self._aloops)

    def _stop_aloops(self, deadline: float | None, cancel_tasks: bool) -> None:
        """Stop every aloop by ``deadline``, all at once; the supervisor's own
        after them, with its tasks (worker drivers still waiting) cancelled."""
        stopping = [
            aloop._begin_stop(deadline, cancel_tasks)
            for aloop in self.get_aloops().values()
        ]
        join_stopped(stopping, deadline)
        if self._own_aloop is not None:
            self._own_aloop._stop(deadline, True)

    def _reset_aloops_after_fork(self) -> None:
        """In a forked child: no aloop's thread exists; each can start again."""
        self._aloops_lock = threading.Lock()
        for aloop in [*self._aloops.values(), self._own_aloop]:
            if aloop is not None:
                aloop._reset_after_fork()

    def resolve_loop(self, loop: Any) -> asyncio.AbstractEventLoop:
        """The asyncio loop a coroutine task runs on: ``loop`` is an aloop
        name, an ALoop, an asyncio loop, or None for the default aloop.

        Raises:
            RuntimeError: no loop to run on (says how to get one).
            ValueError: no aloop of that name.
            TypeError: ``loop`` is none of those.
        """
        if loop is None:
            aloop = self.default_aloop
            if aloop is None:
                raise RuntimeError(
                    "no loop for a coroutine task: pass loop=, or create one with "
                    "supervisor.create_aloop('name', default=True)"
                )
            return aloop.get_loop()
        if isinstance(loop, str):
            return self._aloop(loop).get_loop()
        if isinstance(loop, ALoop):
            return loop.get_loop()
        if isinstance(loop, asyncio.AbstractEventLoop):
            if loop.is_closed():
                raise RuntimeError(f"loop {loop!r} is closed")
            return loop
        raise TypeError(
            f"loop must be an aloop name, an ALoop or an asyncio loop; got {loop!r}"
        )


