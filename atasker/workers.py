"""Workers: objects that run an executor again and again, on a condition.

Every worker is driven by one coroutine on a loop (the supervisor's own
``__supervisor__`` aloop; for an async executor, ``loop=`` or the default
aloop)::

    driver: wait for the next run  (queue item | event | interval tick | trigger)
              │  a signalled wait: stop() cancels it at once, nothing polls
              ▼
            run the executor once:
              sync executor   -> a thread task of the worker's priority, awaited
              static run()    -> a process task; its result to process_result()
              async executor  -> awaited on the driver's loop
              │  the next wait starts only when the run is over: no overlap
              ▼
            False returned -> the worker stops; an exception -> on_error or log

``stop()`` cancels the driver only while it waits; a run in progress is let
finish (``stop(wait=True)`` waits for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import uuid
from collections.abc import Awaitable
from typing import Any, Callable, overload

from .constants import TASK_NORMAL, TT_MP, TT_THREAD
from .errors import SupervisorNotRunningError
from .processpool import accepts_task_id
from .supervisor import TaskSupervisor, task_supervisor
from .task import current_task
from .validation import check_callable, check_delay, check_priority

logger = logging.getLogger("atasker")


class BackgroundWorker:
    """Runs its executor in a loop, each run a thread task of its priority.

    The executor is ``func`` if given, else the ``run`` method (a static
    ``run`` runs in the process pool; its result goes to
    :meth:`process_result`). It is called with the arguments ``start()`` got,
    plus ``_worker`` (this object), ``_name`` and ``o`` (``_name`` and
    ``_task_id`` only, for a process executor, where the worker itself cannot
    travel). Returning False stops the worker.

    Args:
        name: the worker's name (``worker_name`` is accepted too); default:
            the executor's name.
        func: the executor (``fn`` accepted too).
        priority: the priority of each run's task.
        o: any object, passed to the executor as ``o``.
        on_error: called as ``on_error(**on_error_kwargs)`` when a run raises
            (the exception is logged otherwise).
        supervisor: the supervisor; the default one if None.
        loop: async executors: an aloop name, an ALoop or an asyncio loop.
        poll_delay, daemon: accepted for compatibility; nothing polls.
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
        **options: Any,
    ) -> None:
        func = func or fn
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
        self._supervisor = supervisor
        self._configure(**options)
        self._lock = threading.Lock()
        self._active = False
        self._driving = False
        self._waiting = False
        self._done = threading.Event()
        self._done.set()
        self._driver: asyncio.Task[None] | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._start_args: tuple[Any, ...] = ()
        self._start_kwargs: dict[str, Any] = {}

    def _configure(self, **options: Any) -> None:
        if options:
            raise TypeError(f"unexpected worker options: {', '.join(sorted(options))}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} active={self._active}>"

    @property
    def supervisor(self) -> TaskSupervisor:
        """The supervisor the worker's runs go to."""
        return self._supervisor or task_supervisor

    # Hooks ---------------------------------------------------------------

    def before_start(self) -> None:
        """Called by ``start()`` before the worker starts."""

    def after_start(self) -> None:
        """Called by ``start()`` once the worker runs."""

    def before_stop(self) -> None:
        """Called when the worker is asked to stop (or stops itself)."""

    def after_stop(self) -> None:
        """Called once the worker has stopped (its last run is over)."""

    def process_result(self, result: Any) -> Any:
        """Receives each result of a static (process) ``run``; False stops."""
        return None

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

    # Start and stop ------------------------------------------------------

    def start(self, *args: Any, **kwargs: Any) -> bool:
        """Start the worker; ``args``/``kwargs`` go to every run.

        Overrides, taken out of ``kwargs``: ``_name`` (or ``_worker_name``),
        ``_priority``, ``_loop``, and for interval workers ``_interval``,
        ``_delay``, ``_delay_before``; ``o=`` replaces ``o``.

        Returns:
            False if the worker was already active.

        Raises:
            SupervisorNotRunningError: the supervisor is not started.
            TypeError, ValueError: a bad override.
        """
        with self._lock:
            if self._active or self._driving:
                return False
            self._apply_overrides(kwargs)
            if self._func is None and type(self).run is BackgroundWorker.run:
                raise TypeError(
                    f"worker {self.name}: no executor: pass func= or define run()"
                )
            if not self.supervisor.active:
                raise SupervisorNotRunningError(
                    f"worker {self.name}: supervisor {self.supervisor.id} is not "
                    "running: call start() first"
                )
            self._start_args, self._start_kwargs = args, kwargs
            loop = self._driver_loop()
            self._driving = True  # taken: a concurrent start() returns False
            self._done.clear()
        try:
            self.before_start()  # user code: not under the worker's lock
        except BaseException:
            self._driving = False
            self._done.set()
            raise
        self._active = True
        self.supervisor.register_sync_scheduler(self)
        asyncio.run_coroutine_threadsafe(self._drive(), loop)
        self.after_start()
        return True

    def _apply_overrides(self, kwargs: dict[str, Any]) -> None:
        name = kwargs.pop("_name", None) or kwargs.pop("_worker_name", None)
        if name is not None:
            self.name = str(name)
        if "_priority" in kwargs:
            self.priority = check_priority(kwargs.pop("_priority"), "_priority")
        if "_loop" in kwargs:
            self.loop = kwargs.pop("_loop")
        if "o" in kwargs:
            self.o = kwargs.pop("o")

    def _driver_loop(self) -> asyncio.AbstractEventLoop:
        supervisor = self.supervisor
        if self._is_async() and (self.loop is not None or supervisor.default_aloop):
            return supervisor.resolve_loop(self.loop)
        return supervisor._supervisor_aloop().get_loop()

    def stop(self, wait: bool | float = True) -> None:
        """Stop the worker: a waiting worker wakes at once; a run in progress
        finishes first. ``wait`` (True or seconds) blocks until it has
        stopped, except when called from the worker's own run."""
        with self._lock:
            if not self._active:
                loop = None
            else:
                self._active = False
                loop = self._event_loop
        if loop is not None:
            self._call_hook(self.before_stop)
            # A closed loop raises RuntimeError: the driver is gone already.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._interrupt_wait)
        if wait is not False and not self._in_own_run():
            self._done.wait(None if wait is True else float(wait))

    def restart(self, *args: Any, **kwargs: Any) -> bool:
        """Stop (waiting), then start again with new arguments, or the last
        ones if none are given."""
        self.stop(wait=True)
        if not args and not kwargs:
            args, kwargs = self._start_args, dict(self._start_kwargs)
        return self.start(*args, **kwargs)

    def _in_own_run(self) -> bool:
        running = current_task()
        if running is not None and running.kwargs.get("_worker") is self:
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
            self._driver = None
            self.supervisor.unregister_sync_scheduler(self)
            self._call_hook(self.after_stop)
            self._driving = False
            self._done.set()

    def _prepare(self) -> None:
        """Set up loop-bound state (queues, events) in the driver's loop."""

    def _flush_early(self) -> None:
        """Deliver what arrived before the loop was published (lock held)."""

    async def _wait_for_run(self) -> tuple[Any, ...]:
        """Wait until the next run is due; return extra leading arguments."""
        await asyncio.sleep(0)  # a plain worker runs again at once; let others in
        return ()

    def _executor(self) -> Callable[..., Any]:
        return self._func or self.run

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """The executor when no ``func`` is given: override it in a subclass."""
        raise TypeError(f"worker {self.name}: no executor: pass func= or define run()")

    def _is_async(self) -> bool:
        return inspect.iscoroutinefunction(self._func or getattr(self, "run", None))

    def _is_process_executor(self) -> bool:
        return self._func is None and isinstance(
            inspect.getattr_static(type(self), "run", None), staticmethod
        )

    async def _run_once(self, leading: tuple[Any, ...]) -> Any:
        args = leading + self._start_args
        kwargs = dict(self._start_kwargs)
        supervisor = self.supervisor
        try:
            if self._is_process_executor():
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
            self._run_task = supervisor.submit(
                executor,
                args,
                kwargs,
                priority=self.priority,
                tt=TT_THREAD,
                name=self.name,
            )
            return await self._run_task
        except asyncio.CancelledError:
            raise
        except SupervisorNotRunningError:
            self._active = False  # the supervisor stopped under the worker
            return False
        except Exception as exc:
            self._report(exc)
            return None

    def _report(self, exc: Exception) -> None:
        if self.on_error is not None:
            try:
                self.on_error(**self.on_error_kwargs)
            except Exception:
                logger.exception("on_error of worker %s failed", self.name)
        elif self._is_async():
            # Thread and process runs are logged by the supervisor already.
            logger.error("worker %s: executor failed", self.name, exc_info=exc)

    def _call_hook(self, hook: Callable[[], Any]) -> None:
        try:
            hook()
        except Exception:
            logger.exception("hook %s of worker %s failed", hook.__name__, self.name)


class BackgroundAsyncWorker(BackgroundWorker):
    """A worker whose executor is a coroutine function, awaited on its loop
    (``loop=``, else the default aloop, else the supervisor's own)."""


class _Triggerable(BackgroundWorker):
    """A worker that wakes on an asyncio.Event, set from any thread."""

    _wake: asyncio.Event | None = None
    _early_trigger = False

    def _prepare(self) -> None:
        self._wake = asyncio.Event()

    def _flush_early(self) -> None:
        if self._early_trigger and self._wake is not None:
            self._early_trigger = False
            self._wake.set()

    def trigger(self) -> None:
        """Run now (thread-safe; several triggers before a run make one)."""
        self.trigger_threadsafe()

    def trigger_threadsafe(self) -> None:
        """Run now, from any thread."""
        with self._lock:
            loop = self._event_loop
            if loop is None:
                self._early_trigger = self._active
                return
        with contextlib.suppress(RuntimeError):  # the loop is closed
            loop.call_soon_threadsafe(self._set_wake)

    def _set_wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _until_woken(self, timeout: float | None) -> bool:
        """Wait for a trigger, at most ``timeout`` seconds; True if triggered."""
        assert self._wake is not None
        try:
            if timeout is None:
                await self._wake.wait()
            else:
                await asyncio.wait_for(self._wake.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        self._wake.clear()
        return True


class BackgroundEventWorker(_Triggerable):
    """Runs its executor each time it is triggered."""

    def get_event_obj(self) -> asyncio.Event | None:
        """The asyncio.Event the worker waits on (None before start)."""
        return self._wake

    async def _wait_for_run(self) -> tuple[Any, ...]:
        await self._until_woken(None)
        return ()


class BackgroundIntervalWorker(_Triggerable):
    """Runs its executor on a schedule.

    Options (overridable in ``start()`` as ``_interval``, ``_delay``,
    ``_delay_before``):
        interval: a fixed rate in seconds; a run that overruns its interval
            is followed at once by the next, and the ticks it missed are
            skipped.
        delay: a pause between the end of a run and the next.
        delay_before: a pause before each run.

    ``trigger()`` runs it now.
    """

    interval: float | None
    delay: float | None
    delay_before: float | None

    def _configure(
        self,
        interval: float | None = None,
        delay: float | None = None,
        delay_before: float | None = None,
        **options: Any,
    ) -> None:
        super()._configure(**options)
        self._set_schedule(interval, delay, delay_before)

    def _set_schedule(
        self, interval: float | None, delay: float | None, delay_before: float | None
    ) -> None:
        interval = check_delay(interval, "interval")
        delay = check_delay(delay, "delay")
        if interval and delay:
            raise ValueError("interval and delay cannot be used together")
        self.interval, self.delay = interval, delay
        self.delay_before = check_delay(delay_before, "delay_before")
        self._next_tick: float | None = None

    def _apply_overrides(self, kwargs: dict[str, Any]) -> None:
        super()._apply_overrides(kwargs)
        keys = ("_interval", "_delay", "_delay_before")
        if any(key in kwargs for key in keys):
            current = (self.interval, self.delay, self.delay_before)
            values = [kwargs.pop(k, v) for k, v in zip(keys, current)]
            self._set_schedule(*values)

    def _prepare(self) -> None:
        super()._prepare()
        self._next_tick = None

    async def _wait_for_run(self) -> tuple[Any, ...]:
        loop = asyncio.get_running_loop()
        triggered = False
        if self._next_tick is None:  # the first run: now
            self._next_tick = loop.time() + (self.interval or 0.0)
        elif self.interval:
            now = loop.time()
            if now < self._next_tick:
                triggered = await self._until_woken(self._next_tick - now)
            if not triggered:
                # This run takes its tick (at once if overdue); the next one
                # is the first tick still ahead, so missed ticks are skipped.
                now = loop.time()
                next_tick = self._next_tick + self.interval
                if next_tick <= now:
                    next_tick += (
                        (now - next_tick) // self.interval + 1
                    ) * self.interval
                self._next_tick = next_tick
        elif self.delay:
            triggered = await self._until_woken(self.delay)
        if self.delay_before and not triggered:
            await self._until_woken(self.delay_before)
        if not (self.interval or self.delay or self.delay_before):
            await asyncio.sleep(0)
        return ()


class BackgroundQueueWorker(BackgroundWorker):
    """Runs its executor for each item put in its queue, in queue order.

    ``queue`` (``q``): True for an ``asyncio.Queue``, or a queue class such as
    ``asyncio.PriorityQueue``. The executor gets the item first.
    """

    def _configure(self, queue: Any = None, q: Any = None, **options: Any) -> None:
        super()._configure(**options)
        queue_class = queue if queue is not None else q
        if queue_class in (None, True):
            queue_class = asyncio.Queue
        if not (
            inspect.isclass(queue_class) and issubclass(queue_class, asyncio.Queue)
        ):
            raise TypeError(
                f"queue must be True or an asyncio.Queue class; got {queue_class!r}"
            )
        self._queue_class: type[asyncio.Queue[Any]] = queue_class
        self._queue: asyncio.Queue[Any] | None = None
        self._early: list[Any] = []

    def get_queue_obj(self) -> asyncio.Queue[Any] | None:
        """The asyncio queue (None before start)."""
        return self._queue

    def _prepare(self) -> None:
        self._queue = self._queue_class()

    def _flush_early(self) -> None:
        assert self._queue is not None
        early, self._early = self._early, []
        for item in early:
            self._queue.put_nowait(item)

    def put_threadsafe(self, item: Any) -> None:
        """Put ``item`` in the queue, from any thread (kept until start)."""
        with self._lock:
            queue, loop = self._queue, self._event_loop
            if queue is None or loop is None:
                self._early.append(item)
                return
        loop.call_soon_threadsafe(queue.put_nowait, item)

    async def put(self, item: Any) -> None:
        """Put ``item`` in the queue, from a coroutine on any loop."""
        queue, loop = self._queue, self._event_loop
        if queue is None or loop is None:
            self.put_threadsafe(item)
            return
        if asyncio.get_running_loop() is loop:
            await queue.put(item)
        else:
            await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(queue.put(item), loop)
            )

    async def _wait_for_run(self) -> tuple[Any, ...]:
        assert self._queue is not None
        return (await self._queue.get(),)


WorkerClass = type[BackgroundWorker]


@overload
def background_worker(f: Callable[..., Any], **options: Any) -> BackgroundWorker: ...


@overload
def background_worker(
    f: None = None, **options: Any
) -> Callable[[Callable[..., Any]], BackgroundWorker]: ...


def background_worker(
    f: Callable[..., Any] | None = None, **options: Any
) -> BackgroundWorker | Callable[[Callable[..., Any]], BackgroundWorker]:
    """Make ``f`` the executor of a worker (bare or with options).

    The class follows from the options: ``q``/``queue`` -> queue worker,
    ``e``/``event`` -> event worker, ``interval``/``delay``/``delay_before``
    -> interval worker, a coroutine function -> async worker, else a plain
    worker. Other options are those of :class:`BackgroundWorker`.

    Returns:
        The worker (call ``start()`` on it).
    """

    def make(func: Callable[..., Any]) -> BackgroundWorker:
        check_callable(func, "f")
        worker_options = dict(options)
        queue = worker_options.pop("queue", None)
        queue = queue if queue is not None else worker_options.pop("q", None)
        worker_options.pop("q", None)
        event = worker_options.pop("event", None) or worker_options.pop("e", None)
        worker_options.pop("e", None)
        cls: WorkerClass
        if queue:
            cls = BackgroundQueueWorker
            worker_options["queue"] = queue
        elif event:
            cls = BackgroundEventWorker
        elif any(
            worker_options.get(k) is not None
            for k in ("interval", "delay", "delay_before")
        ):
            cls = BackgroundIntervalWorker
        elif inspect.iscoroutinefunction(func):
            cls = BackgroundAsyncWorker
        else:
            cls = BackgroundWorker
        return cls(func=func, **worker_options)

    if f is None:
        return make
    return make(f)
