"""The worker: an object that runs an executor again and again, on a condition.

Every worker is driven by one coroutine on a loop (the supervisor's own
``__supervisor__`` aloop; for an async executor, ``loop=`` or the default
aloop)::

    start() ── checks, before_start() ── commit ── driver scheduled on its loop
                 any failure: the worker is left exactly as it was

    driver: wait for the next run  (queue item | event | interval tick | trigger)
              │  a signalled wait: stop() cancels it at once, nothing polls
              ▼
            run the executor once:
              sync executor   -> a thread task of the worker's priority, awaited
              static run()    -> a process task if a process pool is set up,
                                 its result to process_result(); else a thread
              async executor  -> awaited on the driver's loop
              │  the next wait starts only when the run is over: no overlap
              ▼
            False returned -> the worker stops; an exception -> error()
            (on_error, else logged)

``stop()`` cancels the driver only while it waits; a run in progress is let
finish (``stop(wait=...)`` waits for it, at most that long). The kinds of
worker (queue, event, interval) are in :mod:`atasker.workers.kinds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from typing import Any, Callable

from ..core.constants import TASK_NORMAL
from ..core.errors import SupervisorNotRunningError
from ..core.validation import check_callable, check_priority, check_timeout
from ..supervisor import TaskSupervisor, task_supervisor
from .workerrun import ExecutorRuns, process_pool_configured

logger = logging.getLogger("atasker")



class BackgroundWorker(ExecutorRuns):
    """Runs its executor in a loop, each run a thread task of its priority.

    The executor is ``func`` if given, else the ``run`` method (a static
    ``run`` runs in the process pool when one is set up, its result going to
    :meth:`process_result`; without a process pool it runs in a thread, as
    any executor). It is called with the arguments ``start()`` got, plus
    ``_worker`` (this object), ``_name`` and ``o`` (``_name`` and
    ``_task_id`` only, for a process executor, where the worker itself cannot
    travel). Returning False stops the worker.

    Args:
        name: the worker's name (``worker_name`` is accepted too); default:
            the executor's name.
        func: the executor (``fn`` and ``executor_func`` accepted too).
        priority: the priority of each run's task.
        o: any object, passed to the executor as ``o``.
        on_error: called as ``on_error(**on_error_kwargs)`` inside the
            ``except`` block when a run raises (``sys.exc_info()`` tells
            what); the exception is logged otherwise. See :meth:`error`.
        supervisor: the supervisor; the default one if None.
        loop: async executors: an aloop name, an ALoop or an asyncio loop.
        poll_delay, daemon: accepted for compatibility; nothing polls.
        **options: options of the kind of worker; any other keyword is kept
            in :attr:`options` (subclasses pass their own options up, as
            atasker 0.7 allowed).

    Attributes:
        options: the keyword arguments the worker did not know.
        last_executed: ``time.perf_counter()`` when the last run started
            (0 before the first).
    """

    def __init__(
        self,
        name: str | None = None,
        func: Callable[..., Any] | None = None,
        priority: int = TASK_NORMAL,
        o: Any = None,
        on_error: Callable[..., Any] | None = None,
        on_error_kwargs: dict[str, Any] | None = None,
        supervisor: TaskSupervisor | None = None,
        poll_delay: float | None = None,
        loop: Any = None,
        daemon: bool | None = None,
        worker_name: str | None = None,
        fn: Callable[..., Any] | None = None,
        executor_func: Callable[..., Any] | None = None,
        **options: Any,
    ) -> None:
        func = func or fn or executor_func
        check_callable(func, "func", allow_none=True)
        check_callable(on_error, "on_error", allow_none=True)
        if supervisor is not None and not isinstance(supervisor, TaskSupervisor):
            raise TypeError(f"supervisor must be a TaskSupervisor; got {supervisor!r}")
        self._func = func
        self.name = (
            name or worker_name or getattr(func, "__name__", None) or uuid.uuid4().hex
        )
        self.priority = check_priority(priority)
        self.o = o
        self.on_error = on_error
        self.on_error_kwargs = dict(on_error_kwargs or {})
        self.poll_delay = poll_delay
        self.loop = loop
        self.last_executed = 0.0
        self._supervisor = supervisor
        self.options: dict[str, Any] = {}
        self._configure(**options)
        self._lock = threading.Lock()
        self._active = False  # runs wanted: from start() until a stop is asked
        self._driving = False  # a driver is scheduled or runs
        self._starting = False  # a start() is between its checks and commit
        self._waiting = False
        self._done = threading.Event()
        self._done.set()
        self._driver: asyncio.Task[None] | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._run_thread: int | None = None
        self._in_process = False
        self._restart: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        self._start_args: tuple[Any, ...] = ()
        self._start_kwargs: dict[str, Any] = {}

    def _reset_after_fork(self) -> None:
        """In a child made by os.fork(): its driver and loop do not exist
        there. Leave the worker stopped, able to start again."""
        self._lock = threading.Lock()
        self._active = self._driving = self._starting = self._waiting = False
        self._done = threading.Event()
        self._done.set()
        self._driver = None
        self._event_loop = None
        self._run_thread = None
        self._restart = None

    # Attributes a start() override may change; restored if the start fails.
    _overridable: tuple[str, ...] = ("name", "priority", "loop", "o")

    def _configure(self, **options: Any) -> None:
        """Take the options of the kind of worker; keep the rest."""
        self.options.update(options)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} active={self._active}>"

    @property
    def supervisor(self) -> TaskSupervisor:
        """The supervisor the worker's runs go to."""
        return self._supervisor or task_supervisor

    @supervisor.setter
    def supervisor(self, supervisor: TaskSupervisor) -> None:
        # atasker 0.7 kept it as a plain attribute that subclasses could set.
        if not isinstance(supervisor, TaskSupervisor):
            raise TypeError(f"supervisor must be a TaskSupervisor; got {supervisor!r}")
        self._supervisor = supervisor

    # Hooks (user code: none runs under the worker's lock) ----------------

    def before_start(self) -> None:
        """Called by ``start()`` before the worker starts; raising cancels
        the start."""

    def after_start(self) -> None:
        """Called by ``start()`` once the worker runs (an exception is logged)."""

    def before_stop(self) -> None:
        """Called when the worker is asked to stop (or stops itself)."""

    def send_stop_events(self) -> None:
        """Called by ``stop()`` after ``before_stop``: wake whatever the
        worker's own code waits on (atasker 0.7's hook; a waiting worker is
        woken without it)."""

    def after_stop(self) -> None:
        """Called once the worker has stopped (its last run is over)."""

    # State ---------------------------------------------------------------

    def is_active(self) -> bool:
        """True from ``start()`` until a stop is asked."""
        return self._active

    def is_started(self) -> bool:
        """True while the worker's driver runs."""
        return self._driving

    def is_stopped(self) -> bool:
        """True once the worker has fully stopped (or never started)."""
        return not self._driving

    def wait_until_stop(self, timeout: float | None = None) -> bool:
        """Block until the worker has fully stopped.

        Returns:
            False if ``timeout`` seconds passed first.
        """
        return self._done.wait(check_timeout(timeout, "timeout"))

    # Start and stop ------------------------------------------------------

    def start(self, *args: Any, **kwargs: Any) -> bool:
        """Start the worker; ``args``/``kwargs`` go to every run.

        Overrides, taken out of ``kwargs``: ``_name`` (or ``_worker_name``),
        ``_priority``, ``_loop``, and for interval workers ``_interval``,
        ``_delay``, ``_delay_before``; ``o=`` replaces ``o``. A start that
        raises leaves the worker exactly as it was.

        Returns:
            False if the worker was already active (or starting).

        Raises:
            SupervisorNotRunningError: the supervisor is not started.
            TypeError, ValueError: a bad override, or no executor.
            RuntimeError: the worker's loop is closed.
            Exception: whatever ``before_start`` raised.
        """
        with self._lock:
            if self._active or self._driving or self._starting:
                return False
            self._starting = True  # a concurrent start() returns False
        saved = {key: getattr(self, key) for key in self._overridable}
        try:
            loop = self._prepare_start(kwargs)
            self.before_start()  # user code: not under the worker's lock
            with self._lock:
                self._start_args, self._start_kwargs = args, kwargs
                self._active = self._driving = True
                self._done.clear()
            self.supervisor.register_sync_scheduler(self)
            try:
                asyncio.run_coroutine_threadsafe(self._drive(), loop)
            except BaseException:
                self.supervisor.unregister_sync_scheduler(self)
                with self._lock:
                    self._active = self._driving = False
                    self._done.set()
                raise
        except BaseException:
            for key, value in saved.items():
                setattr(self, key, value)
            raise
        finally:
            with self._lock:
                self._starting = False
        self._call_hook(self.after_start)
        return True

    def _prepare_start(self, kwargs: dict[str, Any]) -> asyncio.AbstractEventLoop:
        """Apply the overrides and check that the worker can start; return
        the driver's loop."""
        self._apply_overrides(kwargs)
        if self._func is None and type(self).run is BackgroundWorker.run:
            raise TypeError(
                f"worker {self.name}: no executor: pass func= or define run()"
            )
        supervisor = self.supervisor
        if not supervisor.active:
            raise SupervisorNotRunningError(
                f"worker {self.name}: supervisor {supervisor.id} is not "
                "running: call start() first"
            )
        self._in_process = self._has_static_run() and process_pool_configured(
            supervisor
        )
        if self._is_async() and (self.loop is not None or supervisor.default_aloop):
            loop = supervisor.resolve_loop(self.loop)
        else:
            loop = supervisor._supervisor_aloop().get_loop()
        if loop.is_closed() or not loop.is_running():
            # A loop that does not run would never run the driver, and a
            # stop(wait=True) would wait for it for ever.
            state = "closed" if loop.is_closed() else "not running"
            raise RuntimeError(f"worker {self.name}: its loop {loop!r} is {state}")
        return loop

    def _apply_overrides(self, kwargs: dict[str, Any]) -> None:
        name = kwargs.pop("_name", None) or kwargs.pop("_worker_name", None)
        kwargs.pop("_worker_name", None)
        if name is not None:
            self.name = str(name)
        if "_priority" in kwargs:
            self.priority = check_priority(kwargs.pop("_priority"), "_priority")
        if "_loop" in kwargs:
            self.loop = kwargs.pop("_loop")
        if "o" in kwargs:
            self.o = kwargs.pop("o")

    def stop(self, wait: bool | float = True) -> None:
        """Stop the worker: a waiting worker wakes at once; a run in progress
        finishes first.

        Args:
            wait: True blocks until the worker has stopped; a number of
                seconds blocks at most that long; False returns at once.
                Called from the worker's own run, it never waits.
        """
        timeout = None if isinstance(wait, bool) else check_timeout(wait, "wait")
        with self._lock:
            was_active, self._active = self._active, False
            self._restart = None
            loop = self._event_loop
        if was_active:
            self._call_hook(self.before_stop)
            self._call_hook(self.send_stop_events)
            if loop is not None:
                # A closed loop raises RuntimeError: the driver is gone already.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._interrupt_wait)
        if wait is not False and not self._in_own_run():
            self._done.wait(timeout)

    def restart(self, *args: Any, **kwargs: Any) -> bool:
        """Stop (waiting), then start again with new arguments, or the last
        ones if none are given.

        Called from the worker's own run, it does not wait for itself: the
        worker starts again once the current run is over.

        Returns:
            What ``start()`` returns (True from the worker's own run).
        """
        if not args and not kwargs:
            args, kwargs = self._start_args, dict(self._start_kwargs)
        if self._in_own_run():
            self.stop(wait=False)
            with self._lock:
                if self._driving:
                    self._restart = (args, kwargs)  # the driver starts it
                    return True
        self.stop(wait=True)
        return self.start(*args, **kwargs)

    def _in_own_run(self) -> bool:
        if self._run_thread == threading.get_ident():
            return True  # a thread run of this worker
        loop = self._event_loop
        try:
            return loop is not None and asyncio.get_running_loop() is loop
        except RuntimeError:
            return False

    def _interrupt_wait(self) -> None:
        if self._waiting and self._driver is not None:
            self._driver.cancel()

    # The driver ----------------------------------------------------------

    async def _drive(self) -> None:
        self._driver = asyncio.current_task()
        try:
            self._prepare()
            with self._lock:
                # Published with the flush, so nothing put or triggered from
                # another thread meanwhile is lost.
                self._event_loop = asyncio.get_running_loop()
                self._flush_early()
            while self._active:
                self._waiting = True
                try:
                    run_args = await self._wait_for_run()
                except asyncio.CancelledError:
                    if self._active:
                        raise  # the loop itself is stopping
                    break
                finally:
                    self._waiting = False
                if not self._active:
                    break
                if await self._run_once(run_args) is False and self._active:
                    self._active = False
                    self._call_hook(self.before_stop)
        finally:
            with self._lock:
                self._active = False
                self._event_loop = None
                restart, self._restart = self._restart, None
            self._driver = None
            self._discard_pending()
            self.supervisor.unregister_sync_scheduler(self)
            self._call_hook(self.after_stop)
            with self._lock:
                self._driving = False
            self._done.set()
            if restart is not None:
                self._start_again(*restart)

    def _start_again(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """A restart asked from the worker's own run: its driver is over."""
        try:
            self.start(*args, **kwargs)
        except Exception:
            logger.exception("worker %s: restart failed", self.name)

    def _prepare(self) -> None:
        """Set up loop-bound state (queues, events) in the driver's loop."""

    def _flush_early(self) -> None:
        """Deliver what arrived before the loop was published (lock held)."""

    def _discard_pending(self) -> None:
        """Drop what waits for runs that will not happen (driver ending)."""

    async def _wait_for_run(self) -> tuple[Any, ...]:
        """Wait until the next run is due; return extra leading arguments."""
        await asyncio.sleep(0)  # a plain worker runs again at once; let others in
        return ()

    def _call_hook(self, hook: Callable[[], Any]) -> None:
        try:
            hook()
        except BaseException:
            logger.exception("hook %s of worker %s failed", hook.__name__, self.name)
