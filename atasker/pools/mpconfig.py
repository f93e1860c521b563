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
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.errors import ProcessPoolStartError, SupervisorNotRunningError
from ..core.task import TaskInfo
from ..core.validation import check_callable, check_count
from .mplaunch import ContextLauncher, Launcher, SubprocessLauncher, resolve_context
from .mpworker import UNGUARDED_MAIN_HINT, importing_main
from .processpool import ProcessPool


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


class ProcessPoolConfig:
    """``set_mp_pool``, ``create_mp_pool`` and the pool they make (mixed into
    the supervisor).

    Attributes:
        mp_pool_size, mp_reserve_normal, mp_reserve_high: the process pool's
            reserve rule.
        mp_context: None for fresh interpreters (fork+exec); or a
            multiprocessing start-method name or context.
    """

    id: str
    _state_lock: threading.RLock

    if TYPE_CHECKING:  # the supervisor's

        @property
        def _active(self) -> bool: ...

    def __init__(self) -> None:
        super().__init__()
        self.mp_pool_size = 0
        self.mp_reserve_normal = 0
        self.mp_reserve_high = 0
        self.mp_context: Any = None
        self._mp_settings = ProcessPoolSettings()
        # Not None once set_mp_pool() or create_mp_pool() asked for a pool:
        # start() builds it.
        self._mp_options: ProcessPoolSettings | None = None
        self._mp_pool: ProcessPool | None = None

    @property
    def mp_pool(self) -> ProcessPool | None:
        """The process pool while one runs, else None.

        Setting it (atasker 0.7 let a ``multiprocessing.Pool`` be assigned)
        raises TypeError: use :meth:`create_mp_pool`.
        """
        return self._mp_pool

    @mp_pool.setter
    def mp_pool(self, pool: Any) -> None:
        raise TypeError(
            f"supervisor {self.id}: assigning mp_pool ({pool!r}) is not supported: "
            "call create_mp_pool(processes=..., initializer=..., ...) to set up "
            "the process pool (atasker runs its own, crash-proof workers)"
        )

    def set_mp_pool(
        self,
        pool_size: int | None = None,
        reserve_normal: int | None = None,
        reserve_high: int | None = None,
    ) -> None:
        """Configure the process pool's reserve rule and ask for the pool.

        The rule is the thread pool's (see :meth:`set_thread_pool`); every
        start also needs an idle worker process. ``pool_size=0`` (the
        default) leaves the number of processes as the only limit. The pool
        is created at once if the supervisor runs, else by ``start()``; its
        workers start in the background (nothing waits for them).

        Raises:
            TypeError, ValueError: an argument is not an int >= 0.
        """
        with self._state_lock:
            limits = self._mp_settings.set_limits(
                pool_size, reserve_normal, reserve_high
            )
            self.mp_pool_size, self.mp_reserve_normal, self.mp_reserve_high = limits
            self._mp_options = self._mp_settings
            if self._mp_pool is not None:
                self._mp_pool.configure(*limits)
            elif self._active:
                self._start_mp_pool()

    def create_mp_pool(
        self,
        processes: int | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        maxtasksperchild: int | None = None,
        context: Any = None,
    ) -> None:
        """Create the process pool (atasker's call, multiprocessing.Pool's arguments).

        The pool is created at once if the supervisor runs, else by
        ``start()``; it never waits for its workers, which start in the
        background and take tasks as they become ready. Without this call
        the pool is created with defaults by ``set_mp_pool()`` or the first
        process task. A broken pool (see ``ProcessPoolBrokenError``) is
        replaced by a new one.

        Args:
            processes: worker processes; default: ``pool_size`` plus the
                reserves of :meth:`set_mp_pool` if set, else ``cpu_count``.
            initializer, initargs: run in each worker before its first task.
            maxtasksperchild: replace a worker after this many tasks.
            context: a start-method name or a multiprocessing context;
                default ``mp_context``, else fresh interpreters (fork+exec).

        Raises:
            TypeError, ValueError: a bad argument, named in the message.
            RuntimeError: a process pool that is not broken already runs.
        """
        options = check_options(
            processes, initializer, initargs, maxtasksperchild, context, self.mp_context
        )
        with self._state_lock:
            old = self._mp_pool
            if old is not None and old.broken is None:
                raise RuntimeError(
                    f"supervisor {self.id} already runs a process pool; "
                    "stop the supervisor to create another"
                )
            self._mp_settings.options = options
            self._mp_options = self._mp_settings
            self._mp_pool = None
            if self._active:
                self._start_mp_pool()
        if old is not None:
            # Outside the state lock: shutting it down joins its threads,
            # which may be queueing a task (a retry) and need that lock.
            for task in old.shutdown(None):  # broken: nothing runs
                task.set_canceled(reason="stopped")

    def _start_mp_pool(self) -> ProcessPool:
        """Create the process pool (state lock held); it does not wait for
        its workers."""
        pool = self._mp_settings.build(f"supervisor_{self.id}_mp_", self.mp_context)
        self._mp_pool = pool
        return pool

    def _mp_submitter(self) -> Callable[[TaskInfo], bool]:
        """The process pool's submit; the pool starts on the first process task."""
        mp_pool = self._mp_pool
        if mp_pool is None:
            with self._state_lock:
                if not self._active:
                    raise SupervisorNotRunningError(f"supervisor {self.id} is stopping")
                mp_pool = self._mp_pool or self._start_mp_pool()
        return mp_pool.submit
