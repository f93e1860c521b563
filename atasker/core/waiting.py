"""Waiting on a task record: events, ``wait``/``get``, ``await``, done callbacks.

A mixin of :class:`~atasker.core.task.TaskInfo`. Waiting costs nothing until
someone waits: the ``threading.Event`` objects (``started``, ``completed``)
and the lists of waiters and done callbacks are created on first use, so a
queued record stays a few hundred bytes.

Waiters (the ``completed`` Event, awaiting coroutines, a dependant's link)
are internal and quick: the finishing thread wakes them itself, before any
user code runs. Done callbacks are user code: the record runs them after the
waiters, where its transition says (see ``TaskInfo._finish``).
"""

from __future__ import annotations

import _thread
import asyncio
import collections
import contextlib
import logging
import math
import threading
import time
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any, Callable, Protocol, Union

from .constants import (
    FINAL_STATUSES,
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TT_THREAD,
)
from .errors import TaskCancelledError, WaitTimeoutError
from .validation import check_timeout

logger = logging.getLogger("atasker")

DoneCallback = Callable[[Any], Any]
# Runs a record's user code (its hooks and callbacks) somewhere else than the
# thread that finished it: ``defer(notify)``.
Defer = Callable[[Callable[[], None]], Any]


class Waker(Protocol):
    """An internal waiter: ``set()`` is called once the record is final, in
    the finishing thread, with no lock held; it must be quick and never
    raise."""

    def set(self) -> None: ...


class BlockingPool(Protocol):
    """A pool whose threads may block on a task of the same pool."""

    def begin_blocking(self) -> None:
        """The calling pool thread blocks: lend its slot, allow one more thread."""

    def end_blocking(self) -> None:
        """The calling pool thread runs again: take its slot back."""


# A thread in wait()/get() waits on a lock of its own, held until the record
# is final (see TaskWaiting._wait): the finishing thread releases it.
allocate_lock = _thread.allocate_lock
LockWaiter = _thread.LockType


class StartedEvent(threading.Event):
    """The ``started`` event, kept among a record's waiters but set when the
    task starts, not when it ends."""


class LoopWaker:
    """Wakes a coroutine awaiting a record (or a map), from whichever thread
    finishes it."""

    __slots__ = ("loop", "future")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]
    ) -> None:
        self.loop = loop
        self.future = future

    def set(self) -> None:
        # A closed loop raises RuntimeError: nobody awaits there now.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(_resolve, self.future)


Waiter = Union[threading.Event, LoopWaker, Waker, LockWaiter]

# The record running in the current thread, for mark_task_completed() and
# current_context(); and, in a pool thread, the pool (``pool``) that lends a
# slot while it blocks.
running = threading.local()


class TaskWaiting:
    """The waiting side of a record (the base of TaskInfo).

    Its fields: the record's lock, its internal waiters (the ``completed``
    and ``started`` Events, awaiting coroutines, dependants: run in the
    finishing thread, never user code, never deferred; one slot for all, as
    each slot costs every queued record 8 bytes) and its done callbacks.
    """

    __slots__ = ("_lock", "_waiters", "_done_callbacks")

    if TYPE_CHECKING:  # TaskInfo's fields
        id: str
        name: str | None
        tt: int
        status: int
        result: Any
        time_started: float | None
        exception: BaseException | None
        _owner: Any

        def cancel(self, reason: str | None = None) -> bool: ...

        def done(self) -> bool: ...

    # Set by TaskInfo.__init__ (inline: a record is made per task).
    _lock: threading.Lock
    _waiters: list[Waiter] | None
    _done_callbacks: list[DoneCallback] | None

    @property
    def started(self) -> threading.Event:
        """Set when the task starts running (atasker 0.7's event).

        Created on first access, already set if the task has started; never
        set for a task canceled before it ran.
        """
        with self._lock:
            if self.time_started is not None or self.status in FINAL_STATUSES:
                # Started or never will: an event that says so.
                event = threading.Event()
                if self.time_started is not None:
                    event.set()
                return event
            waiters = self._waiters
            if waiters is None:
                waiters = self._waiters = []
            for waiter in waiters:
                if type(waiter) is StartedEvent:
                    return waiter
            started = StartedEvent()
            waiters.append(started)
            return started

    @property
    def completed(self) -> threading.Event:
        """Set when the task is in a final state (atasker 0.7's event).

        Created on first access; already set if the task is final.
        """
        with self._lock:
            if self.status in FINAL_STATUSES:
                event = threading.Event()
                event.set()
                return event
            return self._completed_event_locked()

    def _completed_event_locked(self) -> threading.Event:
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = []
        for waiter in waiters:
            if type(waiter) is threading.Event:
                return waiter
        event = threading.Event()
        waiters.append(event)
        return event

    def _started_event_locked(self) -> threading.Event | None:
        waiters = self._waiters
        if waiters is not None:
            for waiter in waiters:
                if type(waiter) is StartedEvent:
                    return waiter
        return None

    def _add_waker(self, waker: Waker) -> bool:
        """Call ``waker.set()`` once the record is final; False (and no call)
        if it already is."""
        with self._lock:
            if self.status in FINAL_STATUSES:
                return False
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(waker)
            return True

    def _remove_waker(self, waker: Waker) -> None:
        """Take back a waker of :meth:`_add_waker` (if still there)."""
        with self._lock:
            waiters = self._waiters
            if waiters is not None and waker in waiters:
                waiters.remove(waker)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the task is in a final state.

        A pool thread that waits for a thread task of the same supervisor
        lends its slot (and the pool may start one more thread) while it
        blocks, so a task waiting for its child never deadlocks its pool.

        Args:
            timeout: seconds to wait at most; None waits for ever.

        Returns:
            True if the task is final, False if the timeout passed first.

        Raises:
            TypeError, ValueError: ``timeout`` is not a number of seconds >= 0.
        """
        if timeout is not None:
            timeout = _checked_timeout(timeout)
        return self._wait(timeout)

    def _wait(self, timeout: float | None) -> bool:
        """:meth:`wait` with ``timeout`` already checked.

        The waiter is a bare lock, held until the finishing thread releases
        it: a ``threading.Event`` (a Condition and two more locks, in Python)
        cost a back-to-back ``f().get()`` a quarter of its instructions.
        """
        if self.status in FINAL_STATUSES:
            return True
        waiter = allocate_lock()
        waiter.acquire()
        with self._lock:
            if self.status in FINAL_STATUSES:
                return True
            waiters = self._waiters
            if waiters is None:
                self._waiters = [waiter]
            else:
                waiters.append(waiter)
        # Only a pool thread running a task may lend its slot.
        current: TaskWaiting | None = getattr(running, "task", None)
        pool = None if current is None else self._blocking_pool(current)
        if pool is None:
            woken = waiter.acquire(True, -1 if timeout is None else timeout)
        else:
            pool.begin_blocking()
            try:
                woken = waiter.acquire(True, -1 if timeout is None else timeout)
            finally:
                pool.end_blocking()
        if woken:
            return True
        with self._lock:
            waiters = self._waiters
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)
                return False
        # The finishing thread took it (the record is final): it releases it
        # now or has.
        return True

    def _blocking_pool(self, current: TaskWaiting) -> BlockingPool | None:
        """The pool to lend a slot to, if this thread is a pool thread running
        ``current`` and this record is a thread task of the same supervisor."""
        if self.tt != TT_THREAD or self._owner is None:
            return None
        if current._owner is not self._owner:
            return None
        pool: BlockingPool | None = getattr(running, "pool", None)
        return pool

    def get(self, timeout: float | None = None) -> Any:
        """Wait for the task and return its result.

        Args:
            timeout: seconds to wait at most; None waits for ever.

        Returns:
            What the task returned.

        Raises:
            WaitTimeoutError: the task is not final within ``timeout`` (both
                the builtin TimeoutError and concurrent.futures.TimeoutError).
            TaskCancelledError: the task was canceled.
            TypeError, ValueError: ``timeout`` is not a number of seconds >= 0.
            BaseException: whatever the task raised.
        """
        if timeout is not None:
            timeout = _checked_timeout(timeout)
        if not self._wait(timeout):
            raise WaitTimeoutError(
                f"task {self.id} ({self.name}) not completed within {timeout} s"
            )
        if self.status == TASK_STATUS_COMPLETED:  # _outcome(), inlined
            return self.result
        return self._outcome()

    def _outcome(self) -> Any:
        if self.status == TASK_STATUS_COMPLETED:
            return self.result
        if self.status == TASK_STATUS_CANCELED:
            raise TaskCancelledError(f"task {self.id} ({self.name}) was canceled")
        assert self.exception is not None
        raise self.exception

    def add_done_callback(self, fn: DoneCallback) -> None:
        """Call ``fn(record)`` when the task is final; at once if it already is.

        ``fn`` runs after the waiters are woken, in the thread that finished
        the task (a process task's: a callbacks thread of the pool's own).
        Anything ``fn`` raises, ``SystemExit`` included, is logged, never
        propagated.
        """
        with self._lock:
            if self.status not in FINAL_STATUSES:
                if self._done_callbacks is None:
                    self._done_callbacks = []
                self._done_callbacks.append(fn)
                return
        call_logged("done callback", fn, self)

    def __await__(self) -> Generator[Any, None, Any]:
        """Await the task from any running asyncio loop.

        Cancelling the awaiting coroutine cancels the task (as
        ``asyncio.wrap_future`` does for a future).
        """
        if self.status not in FINAL_STATUSES:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            # A waiter, not a done callback: woken at once, never queued
            # behind user callbacks.
            if not self._add_waker(LoopWaker(loop, future)):
                future.set_result(None)
            try:
                yield from future.__await__()
            except asyncio.CancelledError:
                self.cancel()
                raise
        return self._outcome()


def wait_all(records: Sequence[TaskWaiting], timeout: float | None, what: str) -> None:
    """Wait until every record is final, ``timeout`` seconds at most for all.

    Raises:
        WaitTimeoutError: not all are final in time (``what`` they are is
            named in the message).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    for record in records:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not record.wait(remaining):
            raise WaitTimeoutError(
                f"{sum(not r.done() for r in records)} of {len(records)} "
                f"{what} not completed within {timeout} s"
            )


# Cascading wakers being run in this thread (see Cascading).
_cascade = threading.local()


class Cascading:
    """A waker whose work may finish another record, waking more of these:
    one thread runs them from a queue, not by recursion, so a long line of
    them (a chain of failures, a task replaced a thousand times) does not
    exhaust the stack."""

    __slots__ = ()

    def set(self) -> None:
        queue: collections.deque[Cascading] | None = getattr(_cascade, "queue", None)
        if queue is not None:  # an outer one of this thread runs it
            queue.append(self)
            return
        _cascade.queue = queue = collections.deque((self,))
        try:
            while queue:
                queue.popleft()._fire()
        finally:
            _cascade.queue = None

    def _fire(self) -> None:
        raise NotImplementedError


def call_logged(what: str, fn: Callable[..., Any], task: Any, *args: Any) -> None:
    """Call user code ``fn(task, *args)``; log whatever it raises, naming
    ``what`` it is (``SystemExit`` must not end a thread of ours)."""
    try:
        fn(task, *args)
    except BaseException:
        logger.exception("%s %r of task %s failed", what, fn, task.id)


def _checked_timeout(timeout: Any) -> float | None:
    """``timeout`` checked; infinity means no limit (Event.wait rejects it)."""
    seconds = check_timeout(timeout, "timeout")
    return None if seconds == math.inf else seconds


def _resolve(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)
