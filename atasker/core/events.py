"""The event bus: what tasks publish, delivered to whoever subscribed.

::

    transitions, emit() ──> EventBus.publish ──> each matching listener's
                            (nobody listens:     bounded buffer (oldest dropped)
                             one attribute read)      │
                   Subscription: a thread of its own calls callback(event)
                   EventStream:  an asyncio loop's future is woken

Publishing never waits for a subscriber: it appends to a bounded buffer and
wakes the subscriber's thread or loop. A slow or failing subscriber loses its
oldest events (counted in ``dropped``), never a task's time. Subscriptions
match the task name with a glob pattern (``fnmatch``, case-sensitive; a
record without a name is matched as ``""``); which subscriptions match a name
is cached until the next subscribe or unsubscribe.

A subscription's thread starts with its first event and ends when the bus
closes (the supervisor stops), after delivering what it holds; the next event
starts it again. A stream ends when the bus closes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fnmatch
import logging
import re
import threading
import time
from collections.abc import AsyncIterator
from typing import Any, Callable, NamedTuple

from .validation import check_count

logger = logging.getLogger("atasker")

# What every task publishes of itself (emit() may not use these names).
LIFECYCLE_EVENTS = (
    "queued",
    "started",
    "retry",
    "success",
    "error",
    "exception",
    "canceled",
)
RESERVED_EVENTS = frozenset((*LIFECYCLE_EVENTS, "reloaded"))

DEFAULT_BUFFER = 1000

# Names whose matching subscriptions are cached, at most.
_CACHED_NAMES = 1024


class TaskEvent(NamedTuple):
    """One event of one task."""

    task_id: str
    task_name: str | None
    event: str
    """A lifecycle event (``LIFECYCLE_EVENTS``), or what the task emitted."""
    data: Any
    time: float
    """``time.time()`` of the publication."""


def check_event_name(event: Any) -> str:
    """Raises TypeError or ValueError unless ``event`` may be emitted."""
    if not isinstance(event, str):
        raise TypeError(f"event must be a str; got {event!r}")
    if not event:
        raise ValueError("event must not be empty")
    if event in RESERVED_EVENTS:
        raise ValueError(
            f"event {event!r} is a lifecycle event, published by atasker itself; "
            "choose another name"
        )
    return event


def _check_buffer(buffer: Any) -> int:
    if check_count(buffer, "buffer") == 0:
        raise ValueError("buffer must be an int >= 1; got 0")
    return int(buffer)


class _Listener:
    """What a subscription and a stream share: the pattern, the bounded
    buffer, and the count of events dropped from it."""

    def __init__(self, bus: EventBus, pattern: Any, buffer: Any) -> None:
        if not isinstance(pattern, str):
            raise TypeError(f"pattern must be a str (a glob); got {pattern!r}")
        self.pattern = pattern
        self._match = re.compile(fnmatch.translate(pattern)).match
        self._max = _check_buffer(buffer)
        self._buffer: collections.deque[TaskEvent] = collections.deque()
        self._lock = threading.Lock()
        self._bus: EventBus | None = bus
        self.dropped = 0

    @property
    def active(self) -> bool:
        """True until unsubscribed (or closed)."""
        return self._bus is not None

    def _push_locked(self, event: TaskEvent) -> None:
        buffer = self._buffer
        if len(buffer) >= self._max:
            buffer.popleft()
            self.dropped += 1
        buffer.append(event)

    def _leave(self) -> bool:
        """Leave the bus; False if already gone."""
        bus, self._bus = self._bus, None
        if bus is None:
            return False
        bus._remove(self)
        return True

    def _push(self, event: TaskEvent) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        """The bus closes: deliver what is buffered, then end."""
        raise NotImplementedError


class Subscription(_Listener):
    """Calls ``callback(event)`` for each event of a task whose name matches
    ``pattern``, on a thread of its own, in the order they were published.

    Attributes:
        pattern: the glob.
        dropped: events dropped because the buffer was full.
    """

    def __init__(
        self,
        bus: EventBus,
        pattern: str,
        callback: Callable[[TaskEvent], Any],
        buffer: int,
    ) -> None:
        if not callable(callback):
            raise TypeError(f"callback must be callable; got {callback!r}")
        super().__init__(bus, pattern, buffer)
        self._callback = callback
        self._ready = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._closing = False

    def __repr__(self) -> str:
        return f"<Subscription {self.pattern!r} dropped={self.dropped}>"

    def unsubscribe(self) -> None:
        """No more events (those buffered are dropped). Idempotent."""
        if self._leave():
            with self._lock:
                self._buffer.clear()
                self._closing = True
                self._ready.notify()

    def _push(self, event: TaskEvent) -> None:
        with self._lock:
            if self._bus is None:
                return  # unsubscribed as the event was published
            self._push_locked(event)
            if self._thread is None:
                # Once the bus closed (a task outlived the stop), a thread
                # delivers what comes and ends.
                bus = self._bus
                self._closing = bus is None or bus.closed
                self._thread = threading.Thread(
                    target=self._deliver, name=self._bus_thread_name(), daemon=True
                )
                self._thread.start()
            else:
                self._ready.notify()

    def _bus_thread_name(self) -> str:
        bus = self._bus
        return f"{bus.thread_prefix if bus else 'atasker_'}events"

    def _deliver(self) -> None:
        buffer, ready, callback = self._buffer, self._ready, self._callback
        while True:
            with ready:
                while not buffer and not self._closing:
                    ready.wait()
                if not buffer:  # closing, and all delivered
                    self._thread = None
                    ready.notify_all()
                    return
                event = buffer.popleft()
            try:
                callback(event)
            except BaseException:  # user code: never ends the subscription
                logger.exception(
                    "event subscriber %r failed on %s of task %s",
                    callback,
                    event.event,
                    event.task_id,
                )

    def _close(self) -> None:
        with self._lock:
            if self._thread is not None:
                self._closing = True
                self._ready.notify()

    def _join(self, deadline: float | None) -> None:
        """Wait (until ``deadline``, ``time.monotonic()``) for the thread to
        deliver what it holds and end."""
        with self._ready:
            while self._thread is not None:
                timeout = None if deadline is None else deadline - time.monotonic()
                if timeout is not None and timeout <= 0:
                    if self._buffer:  # not only about to end: say so
                        logger.warning(
                            "event subscriber %r still has %d events at the "
                            "stop's deadline",
                            self._callback,
                            len(self._buffer),
                        )
                    return
                self._ready.wait(timeout)


class EventStream(_Listener):
    """The events of tasks whose name matches ``pattern``, as an async
    iterator for any asyncio loop (the first one that iterates)::

        async with supervisor.events("myapp/*") as stream:
            async for event in stream:
                ...

    It ends after :meth:`close` or when the supervisor stops, once what it
    buffered is delivered.
    """

    def __init__(self, bus: EventBus, pattern: str, buffer: int) -> None:
        super().__init__(bus, pattern, buffer)
        self._ended = False
        # The consumers waiting for an event (any number, any loops).
        self._waiters: list[asyncio.Future[None]] = []

    def __repr__(self) -> str:
        return f"<EventStream {self.pattern!r} dropped={self.dropped}>"

    def close(self) -> None:
        """End the stream (buffered events are still delivered). Idempotent."""
        self._leave()
        self._close()

    def __aiter__(self) -> AsyncIterator[TaskEvent]:
        return self

    async def __anext__(self) -> TaskEvent:
        while True:
            with self._lock:
                if self._buffer:
                    return self._buffer.popleft()
                if self._ended:
                    raise StopAsyncIteration
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
            try:
                await waiter
            finally:
                with self._lock:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.close()

    def _push(self, event: TaskEvent) -> None:
        with self._lock:
            if self._ended:
                return
            self._push_locked(event)
            self._wake_locked()

    def _close(self) -> None:
        with self._lock:
            self._ended = True
            self._wake_locked()

    def _wake_locked(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            # A closed loop: nobody iterates there any more.
            with contextlib.suppress(RuntimeError):
                waiter.get_loop().call_soon_threadsafe(_resolve, waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class EventBus:
    """The subscriptions of one supervisor.

    Attributes:
        active: True while anyone subscribes (read by publishers before
            they build an event: nobody listening costs one attribute read).
    """

    def __init__(self, thread_prefix: str) -> None:
        self.thread_prefix = thread_prefix
        self.active = False
        self.closed = False  # the supervisor stopped; open() again at a start
        self._lock = threading.Lock()
        self._listeners: list[_Listener] = []
        self._matching: dict[str, tuple[_Listener, ...]] = {}

    def subscribe(
        self, pattern: str, callback: Callable[[TaskEvent], Any], buffer: int
    ) -> Subscription:
        subscription = Subscription(self, pattern, callback, buffer)
        self._add(subscription)
        return subscription

    def stream(self, pattern: str, buffer: int) -> EventStream:
        stream = EventStream(self, pattern, buffer)
        self._add(stream)
        return stream

    def _add(self, listener: _Listener) -> None:
        with self._lock:
            self._listeners.append(listener)
            self._matching = {}
            self.active = True

    def _remove(self, listener: _Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)
            self._matching = {}
            self.active = bool(self._listeners)

    def publish(self, task_id: str, name: str | None, event: str, data: Any) -> None:
        """Hand the event to every subscription whose pattern matches ``name``."""
        key = name or ""
        listeners = self._matching.get(key)
        if listeners is None:
            with self._lock:
                listeners = tuple(s for s in self._listeners if s._match(key))
                if len(self._matching) >= _CACHED_NAMES:
                    self._matching = {}
                self._matching[key] = listeners
        if listeners:
            published = TaskEvent(task_id, name, event, data, time.time())
            for listener in listeners:
                listener._push(published)

    def open(self) -> None:
        """The supervisor starts: subscriptions' threads stay up again."""
        self.closed = False

    def close(self, deadline: float | None) -> None:
        """The supervisor stops: streams end; subscriptions deliver what they
        hold (their threads wait until ``deadline``), then their threads end.
        Callback subscriptions stay: a restart delivers to them again."""
        with self._lock:
            self.closed = True
            listeners = list(self._listeners)
            streams = [s for s in listeners if isinstance(s, EventStream)]
            self._listeners = [s for s in listeners if s not in streams]
            self._matching = {}
            self.active = bool(self._listeners)
        for stream in streams:
            stream._bus = None
            stream._close()
        subscriptions = [s for s in listeners if isinstance(s, Subscription)]
        for subscription in subscriptions:
            subscription._close()
        for subscription in subscriptions:
            subscription._join(deadline)


# The bus of owners that publish nothing (eager runs): nobody subscribes.
NO_EVENTS = EventBus("atasker_")
