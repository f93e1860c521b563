"""One run of a worker's executor, and where it runs.

::

    static run() and a process pool set up -> a process task
    coroutine function                     -> awaited on the driver's loop
    anything else (static run() included)  -> a thread task at the worker's
                                              priority, awaited
    a static run()'s result, in a process or a thread, goes to process_result()

An exception from the executor goes to :meth:`ExecutorRuns.error` inside the
``except`` block: in the pool thread for a thread run, so ``on_error`` (user
code) stays off the driver's loop and ``sys.exc_info()`` tells what failed.
The lifecycle around the runs is in :mod:`atasker.workers.worker`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Callable

from ..core.constants import TT_MP, TT_THREAD
from ..core.errors import SupervisorNotRunningError
from ..pools.mpcodec import accepts_task_id

if TYPE_CHECKING:
    from ..supervisor import TaskSupervisor

logger = logging.getLogger("atasker")


def process_pool_configured(supervisor: Any) -> bool:
    """True if ``supervisor`` has a process pool set up (running or to start
    with the supervisor): a static ``run()`` then runs there, else in a thread.

    Reads ``supervisor._mp_options`` (set by ``create_mp_pool``) and
    ``supervisor._mp_pool`` (the running pool).
    """
    return (
        getattr(supervisor, "_mp_options", None) is not None
        or getattr(supervisor, "_mp_pool", None) is not None
    )


class ExecutorRuns:
    """The executor side of :class:`atasker.workers.worker.BackgroundWorker`."""

    name: str
    priority: int
    o: Any
    on_error: Callable[..., Any] | None
    on_error_kwargs: dict[str, Any]
    last_executed: float
    _func: Callable[..., Any] | None
    _active: bool
    _in_process: bool
    _run_thread: int | None
    _start_args: tuple[Any, ...]
    _start_kwargs: dict[str, Any]

    if TYPE_CHECKING:

        @property
        def supervisor(self) -> TaskSupervisor: ...

    def process_result(self, result: Any) -> Any:
        """Receives each result of a process executor; False stops."""
        return None

    def error(self) -> None:
        """Called inside the ``except`` block when a run raises.

        The default calls ``on_error(**on_error_kwargs)`` if set, else
        re-raises, and the exception is logged (a thread run fails its task).
        Override it to handle errors; ``sys.exc_info()`` holds the exception.
        """
        if self.on_error is None:
            raise
        self.on_error(**self.on_error_kwargs)

    def _executor(self) -> Callable[..., Any]:
        return self._func or self.run

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """The executor when no ``func`` is given: override it in a subclass."""
        raise TypeError(f"worker {self.name}: no executor: pass func= or define run()")

    def _is_async(self) -> bool:
        return inspect.iscoroutinefunction(self._func or getattr(self, "run", None))

    def _has_static_run(self) -> bool:
        return self._func is None and isinstance(
            inspect.getattr_static(type(self), "run", None), staticmethod
        )

    async def _run_once(self, leading: tuple[Any, ...]) -> Any:
        args = leading + self._start_args
        kwargs = dict(self._start_kwargs)
        supervisor = self.supervisor
        self.last_executed = time.perf_counter()
        try:
            if self._in_process:
                executor = type(self).run
                kwargs["_name"] = self.name
                task = supervisor.submit(
                    executor,
                    args,
                    kwargs,
                    priority=self.priority,
                    tt=TT_MP,
                    name=self.name,
                    pass_task_id=accepts_task_id(executor),
                )
                return self.process_result(await task)
            kwargs.update(_worker=self, _name=self.name, o=self.o)
            executor = self._executor()
            if self._is_async():
                result: Awaitable[Any] = executor(*args, **kwargs)
                return await result
            run_task = supervisor.submit(
                self._thread_run,
                (executor, *args),
                kwargs,
                priority=self.priority,
                tt=TT_THREAD,
                name=self.name,
            )
            try:
                result = await run_task
            except asyncio.CancelledError:
                raise
            except BaseException:
                return None  # error() ran in the run's thread; the task logged it
            if self._has_static_run():
                # A static run()'s result goes to process_result() wherever
                # it ran, so a worker behaves the same with or without a
                # process pool.
                return self.process_result(result)
            return result
        except asyncio.CancelledError:
            raise
        except SupervisorNotRunningError:
            self._active = False  # the supervisor stopped under the worker
            return False
        except BaseException:
            self._report()
            return None

    def _thread_run(
        self, executor: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        """A thread run: the executor, and error() inside its except block,
        in the pool thread (user code stays off the driver's loop)."""
        self._run_thread = threading.get_ident()
        try:
            return executor(*args, **kwargs)
        except BaseException:
            self.error()  # re-raises by default: the task fails and is logged
            return None
        finally:
            self._run_thread = None

    def _report(self) -> None:
        """An async or process run raised (called inside the except block)."""
        try:
            self.error()
        except BaseException:
            logger.exception("worker %s: executor failed", self.name)
