"""The kinds of worker: async, event, interval and queue workers, and the
``background_worker`` decorator that picks one. The base class, its driver
and its lifecycle are in :mod:`atasker.workers.worker`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Iterator
from typing import Any, Callable, overload

from ..core.errors import WorkerNotRunningError
from ..core.interval import next_tick
from ..core.validation import check_callable, check_delay
from .worker import BackgroundWorker

logger = logging.getLogger("atasker")

# Seconds between runs of an interval worker given no schedule (atasker 0.7).
DEFAULT_DELAY = 1.0



class Triggered:
    """What ``trigger()`` returns: done already, and awaitable."""

    def __await__(self) -> Iterator[None]:
        return iter(())


class BackgroundAsyncWorker(BackgroundWorker):
    """A worker whose executor is a coroutine function, awaited on its loop
    (``loop=``, else the default aloop, else the supervisor's own).

    As in atasker 0.7 it pauses between runs: ``poll_delay`` seconds (the
    supervisor's, 0.1, if not given), so an executor that never awaits does
    not take a core. ``stop()`` ends the pause at once; nothing polls.
    """

    _ran = False

    def _prepare(self) -> None:
        super()._prepare()
        self._ran = False

    async def _wait_for_run(self) -> tuple[Any, ...]:
        if self._ran:
            pause = self.poll_delay
            if pause is None:
                pause = self.supervisor.poll_delay
            await asyncio.sleep(max(0.0, float(pause or 0.0)))
        else:
            await asyncio.sleep(0)
        self._ran = True
        return ()


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

    def trigger(self, force: bool = False) -> Triggered:
        """Run now, from any thread (several triggers before a run make one).

        Returns:
            An awaitable that is already done: atasker 0.7's ``trigger`` was
            a coroutine, so ``await worker.trigger()`` works as well.
        """
        self.trigger_threadsafe(force)
        return Triggered()

    def trigger_threadsafe(self, force: bool = False) -> None:
        """Run now, from any thread. ``force`` is accepted for compatibility:
        a trigger during a run always makes one more run."""
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
        delay: a pause between the end of a run and the next
            (``delay_after`` accepted too); 1 s if neither ``interval`` nor
            ``delay`` is given, as in atasker 0.7.
        delay_before: a pause before each run.

    An override of ``_interval`` clears the delay and one of ``_delay`` the
    interval. ``trigger()`` runs it now.
    """

    interval: float | None
    delay: float | None
    delay_before: float | None
    _overridable = (*BackgroundWorker._overridable, "interval", "delay", "delay_before")

    def _configure(
        self,
        interval: float | None = None,
        delay: float | None = None,
        delay_before: float | None = None,
        delay_after: float | None = None,
        **options: Any,
    ) -> None:
        super()._configure(**options)
        if delay is None:
            delay = delay_after
        if interval is None and delay is None:
            delay = DEFAULT_DELAY  # atasker 0.7's default: never a busy loop
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
        if "_delay_after" in kwargs:
            kwargs.setdefault("_delay", kwargs.pop("_delay_after"))
        keys = ("_interval", "_delay", "_delay_before")
        given = {key: kwargs.pop(key) for key in keys if key in kwargs}
        if not given:
            return
        interval = given.get("_interval", self.interval)
        delay = given.get("_delay", self.delay)
        # A new interval replaces the delay and the other way round, as
        # atasker 0.7's start() did.
        if "_interval" in given and "_delay" not in given:
            delay = None
        if "_delay" in given and "_interval" not in given:
            interval = None
        delay_before = given.get("_delay_before", self.delay_before)
        self._set_schedule(interval, delay, delay_before)

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
                self._next_tick = next_tick(self._next_tick, self.interval, loop.time())
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
    ``asyncio.PriorityQueue``. The executor gets the item first. Items are
    accepted from ``start()`` until ``stop()``; items still queued at the
    stop are dropped, and a worker that is not running refuses items
    (:class:`WorkerNotRunningError`) instead of keeping them without bound.
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
        # Items put between start() and the driver's first moment on its loop.
        self._early: list[Any] = []

    def before_queue_get(self) -> None:
        """Called before the worker waits for its next item (0.7's hook)."""

    def after_queue_get(self, item: Any) -> None:
        """Called with each item taken from the queue, before its run."""

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

    def _discard_pending(self) -> None:
        with self._lock:
            self._early = []

    def _refuse(self) -> WorkerNotRunningError:
        return WorkerNotRunningError(
            f"worker {self.name} is not running: start() it before putting items"
        )

    def put_threadsafe(self, item: Any) -> None:
        """Put ``item`` in the queue, from any thread.

        Raises:
            WorkerNotRunningError: the worker is not started, or stopped.
        """
        with self._lock:
            if not self._active:
                raise self._refuse()
            queue, loop = self._queue, self._event_loop
            if queue is None or loop is None:
                self._early.append(item)  # the driver flushes it on its start
                return
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop closed under a stopping worker
            raise self._refuse() from None

    async def put(self, item: Any) -> None:
        """Put ``item`` in the queue, from a coroutine on any loop.

        Raises:
            WorkerNotRunningError: the worker is not started, or stopped.
        """
        queue, loop = self._queue, self._event_loop
        if queue is None or loop is None or not self._active:
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
        self._call_hook(self.before_queue_get)
        item = await self._queue.get()
        try:
            self.after_queue_get(item)
        except BaseException:
            logger.exception("hook after_queue_get of worker %s failed", self.name)
        return (item,)


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
        interval_kind = worker_options.pop("i", None)  # 0.7's flag for the class
        cls: WorkerClass
        if queue:
            cls = BackgroundQueueWorker
            worker_options["queue"] = queue
        elif event:
            cls = BackgroundEventWorker
        elif interval_kind or any(
            worker_options.get(k) is not None
            for k in ("interval", "delay", "delay_before", "delay_after")
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
