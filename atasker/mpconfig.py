"""The process pool's configuration: checked at the call, and the pool built from it.

``set_mp_pool()`` sets the reserve rule, ``create_mp_pool()`` the pool's
options (``multiprocessing.Pool``'s arguments). Either one asks for a pool:
it is built at once if the supervisor runs, else at ``start()``. Building
never waits for a worker process (see processpool).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ProcessPoolStartError
from .mplaunch import ContextLauncher, Launcher, SubprocessLauncher, resolve_context
from .mpworker import UNGUARDED_MAIN_HINT, importing_main
from .processpool import ProcessPool
from .validation import check_callable, check_count


@dataclass
class PoolOptions:
    """``create_mp_pool()``'s arguments, checked."""

    processes: int | None = None
    initializer: Callable[..., Any] | None = None
    initargs: tuple[Any, ...] = ()
    max_tasks_per_child: int | None = None
    context: Any = None  # None: the supervisor's mp_context at build time


def check_options(
    processes: Any = None,
    initializer: Any = None,
    initargs: Any = (),
    maxtasksperchild: Any = None,
    context: Any = None,
    default_context: Any = None,
) -> PoolOptions:
    """Check ``create_mp_pool()``'s arguments.

    ``default_context`` (the supervisor's ``mp_context``) applies when
    ``context`` is None: with ``"fork"`` nothing needs to be picklable.

    Raises:
        TypeError, ValueError: a bad argument, named in the message.
    """
    if processes is not None and check_count(processes, "processes") < 1:
        raise ValueError(f"processes must be >= 1; got {processes!r}")
    if (
        maxtasksperchild is not None
        and check_count(maxtasksperchild, "maxtasksperchild") < 1
    ):
        raise ValueError(f"maxtasksperchild must be >= 1; got {maxtasksperchild!r}")
    check_callable(initializer, "initializer", allow_none=True)
    if not isinstance(initargs, (tuple, list)):
        raise TypeError(f"initargs must be a tuple or a list; got {initargs!r}")
    resolved = resolve_context(context if context is not None else default_context)
    if resolved is None or resolved.get_start_method() != "fork":
        # Sent to every worker: refuse now what cannot travel.
        for name, value in (("initializer", initializer), ("initargs", initargs)):
            try:
                pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
            except BaseException as exc:  # __reduce__ is user code
                raise TypeError(
                    f"{name} cannot be pickled to send it to worker processes: "
                    f"{type(exc).__qualname__}: {exc}"
                ) from exc
    return PoolOptions(
        processes, initializer, tuple(initargs), maxtasksperchild, context
    )


class ProcessPoolSettings:
    """The reserve rule and options of a supervisor's process pool.

    Attributes:
        pool_size, reserve_normal, reserve_high: the reserve rule.
        options: the last ``create_mp_pool()`` arguments, or defaults.
    """

    def __init__(self) -> None:
        self.pool_size = 0
        self.reserve_normal = 0
        self.reserve_high = 0
        self.options = PoolOptions()

    def set_limits(
        self,
        pool_size: Any = None,
        reserve_normal: Any = None,
        reserve_high: Any = None,
    ) -> tuple[int, int, int]:
        """Set the given limits (each an int >= 0; None keeps it).

        Returns:
            ``(pool_size, reserve_normal, reserve_high)`` now.

        Raises:
            TypeError, ValueError: a bad argument, named in the message.
        """
        new = [
            old if value is None else check_count(value, name)
            for old, value, name in (
                (self.pool_size, pool_size, "pool_size"),
                (self.reserve_normal, reserve_normal, "reserve_normal"),
                (self.reserve_high, reserve_high, "reserve_high"),
            )
        ]
        self.pool_size, self.reserve_normal, self.reserve_high = new
        return self.pool_size, self.reserve_normal, self.reserve_high

    def processes(self) -> int:
        """Worker processes: as given, else the reserve rule's total if a
        pool size is set, else the number of CPUs."""
        if self.options.processes is not None:
            return self.options.processes
        if self.pool_size:
            return self.pool_size + self.reserve_normal + self.reserve_high
        return os.cpu_count() or 1

    def build(self, name_prefix: str, default_context: Any) -> ProcessPool:
        """Make the pool and start it (it starts its workers; no waiting).

        Args:
            name_prefix: names of its processes and threads.
            default_context: the supervisor's ``mp_context``, used unless
                ``create_mp_pool(context=...)`` gave one.

        Raises:
            ProcessPoolStartError: called while a worker process imports the
                user's main script (it has no ``__main__`` guard).
        """
        if importing_main():
            raise ProcessPoolStartError(
                "a worker process imported the main script to find a task's "
                "function, and the script starts a process pool when imported: "
                + UNGUARDED_MAIN_HINT
            )
        options = self.options
        context = resolve_context(
            options.context if options.context is not None else default_context
        )
        launcher: Launcher
        if context is None and os.name == "posix":
            launcher = SubprocessLauncher(options.initializer, options.initargs)
        else:
            launcher = ContextLauncher(
                context or multiprocessing.get_context("spawn"),
                options.initializer,
                options.initargs,
            )
        pool = ProcessPool(
            name_prefix,
            launcher,
            self.processes(),
            options.max_tasks_per_child,
            self.pool_size,
            self.reserve_normal,
            self.reserve_high,
        )
        pool.start()
        return pool
