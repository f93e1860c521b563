"""TaskInfo: the task record.

The record owns its status, result and exception; every other component asks
it. Each transition is one method that changes the status under the record's
lock, and a final status is set once::

    DELAYED ──> QUEUED ──> STARTED ──> COMPLETED | ERROR | EXCEPTION
       │          │
       └──────────┴──> CANCELED

Waiting costs nothing until someone waits: the ``threading.Event`` objects
(``started``, ``completed``) and the lists of waiters and done callbacks are
created on first use, so a queued record is a few hundred bytes.

A queued or delayed record names the container that holds it (``_container``:
the pool whose ready queue holds it, or the timer), set and cleared by that
container under its own lock. Cancel removes the record from that container,
whatever the supervisor did since (a restart gives it a new pool while the
old one still drains).

When a record reaches its final status it tells its owner (the supervisor:
look-up store, counters), drops what it ran (target, args, kwargs), wakes its
waiters (threads in ``wait``/``get``, awaiting coroutines: quick, internal,
always in the finishing thread), has a failure logged, then calls the
``callback`` option with the result and the done callbacks with the record:
user code, run in the finishing thread or handed to ``defer``. Every
``BaseException`` raised by a callback is logged and never reaches the thread
that finished the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import threading
import time
import types
from collections.abc import Generator, Mapping
from typing import Any, Callable, Protocol

from .constants import (
    FINAL_STATUSES,
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TASK_STATUS_DELAYED,
    TASK_STATUS_ERROR,
    TASK_STATUS_EXCEPTION,
    TASK_STATUS_QUEUED,
    TASK_STATUS_STARTED,
    TT_COROUTINE,
    TT_THREAD,
)
from .errors import (
    TaskCancelledError,
    TaskError,
    WaitTimeoutError,
    format_exception,
)
from .validation import check_timeout

logger = logging.getLogger("atasker")

DoneCallback = Callable[["TaskInfo"], Any]
Defer = Callable[[Callable[[], None]], Any]

# What a finished record keeps of its keyword arguments: nothing, read-only.
FINISHED_KWARGS: Mapping[str, Any] = types.MappingProxyType({})


class Owner(Protocol):
    """What a record tells of itself: the supervisor that made it."""

    def _task_finished(self, task: TaskInfo, previous: int) -> None: ...

    def _task_failed(self, task: TaskInfo) -> None: ...

    def _cancel_running(self, task: TaskInfo) -> bool: ...


class Container(Protocol):
    """What holds a queued or delayed record: a pool or the timer."""

    def discard(self, task: TaskInfo) -> Any:
        """Forget ``task`` if this container still holds it (takes its lock)."""


class BlockingPool(Protocol):
    """A pool whose threads may block on a task of the same pool."""

    def begin_blocking(self) -> None:
        """The calling pool thread blocks: lend its slot, allow one more thread."""

    def end_blocking(self) -> None:
        """The calling pool thread runs again: take its slot back."""


class _StartedEvent(threading.Event):
    """The ``started`` event, kept among a record's waiters but set when the
    task starts, not when it ends."""


class _LoopWaker:
    """Wakes a coroutine awaiting a record, from whichever thread finishes it."""

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


# The record running in the current thread, for mark_task_completed(); and,
# in a pool thread, the pool (``pool``) that lends a slot while it blocks.
_running = threading.local()


def current_task() -> TaskInfo | None:
    """Return the record of the task running in this thread, or None."""
    return getattr(_running, "task", None)


class TaskInfo:
    """The record of one task: what to run, its status, its outcome.

    Attributes (atasker 0.7's): ``id, tt, priority, status, result,
    time_queued, time_started, callback, delay, args, kwargs, target``; and
    ``name, time_completed, exception, traceback`` (the traceback as text).
    Times are ``time.time()`` values. Read them freely; only the record's own
    methods change them.
    """

    __slots__ = (
        "id",
        "tt",
        "priority",
        "status",
        "result",
        "time_queued",
        "time_started",
        "time_completed",
        "callback",
        "delay",
        "args",
        "kwargs",
        "target",
        "name",
        "exception",
        "traceback",
        "time_limit",
        "payload",
        "handle",
        "_container",
        "_lock",
        "_waiters",
        "_done_callbacks",
        "_context",
        "_owner",
    )

    def __init__(
        self,
        task_id: str,
        target: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        *,
        tt: int,
        priority: int,
        name: str | None = None,
        delay: float | None = None,
        callback: Callable[[Any], Any] | None = None,
        time_limit: float | None = None,
        owner: Owner | None = None,
    ) -> None:
        self.id = task_id
        self.tt = tt
        self.priority = priority
        self.status = TASK_STATUS_DELAYED if delay else TASK_STATUS_QUEUED
        self.result: Any = None
        self.time_queued = time.time()
        self.time_started: float | None = None
        self.time_completed: float | None = None
        self.callback = callback
        self.delay = delay
        self.args = args
        self.kwargs = kwargs
        # None once final (so are args and kwargs: () and FINISHED_KWARGS):
        # a record kept for look-up must not keep what it ran alive.
        self.target: Callable[..., Any] | None = target
        self.name = name
        self.exception: BaseException | None = None
        self.traceback: str | None = None
        self.time_limit = time_limit
        # Process tasks: (target, args, kwargs) pickled when submitted.
        self.payload: bytes | None = None
        # Coroutine tasks: the loop to run on, then the running asyncio.Task.
        self.handle: Any = None
        # The pool or timer holding the record while it is queued or
        # delayed; set and cleared by that container under its own lock. A
        # record is in at most one container at a time.
        self._container: Container | None = None
        self._lock = threading.Lock()
        # Internal wake-ups (the ``completed`` Event, awaiting coroutines),
        # run in the finishing thread: never user code, never deferred. The
        # ``started`` Event lives here too (one slot for all lazily made
        # waiting objects: each slot costs every queued record 8 bytes).
        self._waiters: list[threading.Event | _LoopWaker] | None = None
        self._done_callbacks: list[DoneCallback] | None = None
        # Thread tasks run in a copy of the submitter's context variables
        # (process tasks are pickled, coroutines run in their loop's context).
        self._context: contextvars.Context | None = (
            contextvars.copy_context() if tt == TT_THREAD else None
        )
        self._owner = owner

    def __repr__(self) -> str:
        return (
            f"<TaskInfo id={self.id!r} name={self.name!r} "
            f"priority={self.priority} status={self.status}>"
        )

    # ------------------------------------------------------------------
    # Queries
    # ------------------------------------------------------------------

    def is_started(self) -> bool:
        """True once the task has started running (also after it finished)."""
        return self.time_started is not None

    def is_completed(self) -> bool:
        """True once the task is in a final state (any of them)."""
        return self.status in FINAL_STATUSES

    done = is_completed

    def cancelled(self) -> bool:
        """True if the task was canceled."""
        return self.status == TASK_STATUS_CANCELED

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
                if type(waiter) is _StartedEvent:
                    return waiter
            started = _StartedEvent()
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

    # ------------------------------------------------------------------
    # Waiting
    # ------------------------------------------------------------------

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
        """:meth:`wait` with ``timeout`` already checked."""
        if self.status in FINAL_STATUSES:
            return True
        with self._lock:
            if self.status in FINAL_STATUSES:
                return True
            event = self._completed_event_locked()
        pool = self._blocking_pool()
        if pool is None:
            return event.wait(timeout)
        pool.begin_blocking()
        try:
            return event.wait(timeout)
        finally:
            pool.end_blocking()

    def _blocking_pool(self) -> BlockingPool | None:
        """The pool to lend a slot to, if this thread is a pool thread running
        a task and this record is a thread task of the same supervisor."""
        if self.tt != TT_THREAD or self._owner is None:
            return None
        current: TaskInfo | None = getattr(_running, "task", None)
        if current is None or current._owner is not self._owner:
            return None
        pool: BlockingPool | None = getattr(_running, "pool", None)
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
        _call_logged(fn, self)

    def __await__(self) -> Generator[Any, None, Any]:
        """Await the task from any running asyncio loop.

        Cancelling the awaiting coroutine cancels the task (as
        ``asyncio.wrap_future`` does for a future).
        """
        if self.status not in FINAL_STATUSES:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            with self._lock:
                if self.status not in FINAL_STATUSES:
                    if self._waiters is None:
                        self._waiters = []
                    # A waiter, not a done callback: woken at once, never
                    # queued behind user callbacks.
                    self._waiters.append(_LoopWaker(loop, future))
                else:
                    future.set_result(None)
            try:
                yield from future.__await__()
            except asyncio.CancelledError:
                self.cancel()
                raise
        return self._outcome()

    # ------------------------------------------------------------------
    # Transitions (called by the supervisor, the pools and the timer)
    # ------------------------------------------------------------------

    def cancel(self) -> bool:
        """Cancel the task.

        A queued or delayed task will never run. A running process task has
        its worker process terminated (and replaced). A running thread or
        coroutine task cannot be stopped from outside.

        Returns:
            True if the task is now canceled (or was already), False if it
            runs on or has finished otherwise.
        """
        if self.status == TASK_STATUS_CANCELED:
            return True
        if self._finish(
            TASK_STATUS_CANCELED, only_from=(TASK_STATUS_QUEUED, TASK_STATUS_DELAYED)
        ):
            return True
        if self.status == TASK_STATUS_STARTED and self._owner is not None:
            return self._owner._cancel_running(self)
        return False

    def set_queued(self) -> bool:
        """DELAYED -> QUEUED, when the due time comes; False if canceled.

        ``time_queued`` stays the submit time (as in atasker 0.7).
        """
        with self._lock:
            if self.status != TASK_STATUS_DELAYED:
                return False
            self.status = TASK_STATUS_QUEUED
            return True

    def set_started(self) -> bool:
        """QUEUED -> STARTED; False if the task was canceled meanwhile."""
        with self._lock:
            if self.status != TASK_STATUS_QUEUED:
                return False
            self.status = TASK_STATUS_STARTED
            self.time_started = time.time()
            started = self._started_event_locked()
        if started is not None:
            started.set()
        return True

    def _started_event_locked(self) -> threading.Event | None:
        waiters = self._waiters
        if waiters is not None:
            for waiter in waiters:
                if type(waiter) is _StartedEvent:
                    return waiter
        return None

    def set_result(self, result: Any, defer: Defer | None = None) -> bool:
        """Final: COMPLETED with ``result``. False if already final.

        ``defer``, if given, is handed the function that runs the callbacks
        instead of running them in this thread (see :meth:`_finish`).
        """
        return self._finish(TASK_STATUS_COMPLETED, result=result, defer=defer)

    def set_exception(
        self, exception: BaseException, defer: Defer | None = None
    ) -> bool:
        """Final: ERROR for a TaskError, EXCEPTION for anything else."""
        status = (
            TASK_STATUS_ERROR
            if isinstance(exception, TaskError)
            else TASK_STATUS_EXCEPTION
        )
        return self._finish(status, exception=exception, defer=defer)

    def set_canceled(self, defer: Defer | None = None) -> bool:
        """Final: CANCELED, from any non-final status (supervisor stop)."""
        return self._finish(TASK_STATUS_CANCELED, defer=defer)

    def run(self) -> None:
        """Run the target in this thread and store its outcome.

        Does nothing if the task was canceled before it could start. Never
        raises: the task's exception goes on the record.
        """
        with self._lock:  # set_started(), inlined: this is the hot path
            if self.status != TASK_STATUS_QUEUED:
                return
            self.status = TASK_STATUS_STARTED
            self.time_started = time.time()
            started = None if self._waiters is None else self._started_event_locked()
            # Read under the lock: once final, the record drops them.
            target, args, kwargs = self.target, self.args, self.kwargs
        if started is not None:
            started.set()
        assert target is not None
        context = self._context
        self._context = None
        _running.task = self
        try:
            if context is None:
                result = target(*args, **kwargs)
            else:
                result = context.run(target, *args, **kwargs)
        except BaseException as exc:
            self.set_exception(exc)
        else:
            self._finish(TASK_STATUS_COMPLETED, result)
        finally:
            _running.task = None

    def _finish(
        self,
        status: int,
        result: Any = None,
        exception: BaseException | None = None,
        only_from: tuple[int, ...] | None = None,
        defer: Defer | None = None,
    ) -> bool:
        """The one final transition; True if this call made it.

        In order: the status is set and the owner told (under the lock); a
        record canceled while queued or delayed leaves its container; the
        waiters are woken (here, always: they are quick and not user code);
        a failure is reported to the owner; then the callback option and the
        done callbacks, which are user code, run in this thread or are handed
        to ``defer`` (the process pool's manager thread must not wait for
        them).
        """
        # Formatting calls the exception's __str__ (user code): not under our lock.
        text = None if exception is None else format_exception(exception)
        with self._lock:
            if self.status in FINAL_STATUSES:
                return False
            if only_from is not None and self.status not in only_from:
                return False
            previous = self.status
            self.result = result
            if exception is not None:
                self.exception = exception
                self.traceback = text
            self.time_completed = time.time()
            self.status = status
            # Read after the status is written: a container pushing the record
            # at this moment re-reads the status after setting this field, so
            # one of the two sees the other (and the record never stays in a
            # container it should have left).
            container = self._container
            waiters = self._waiters
            self._waiters = None
            callbacks = self._done_callbacks
            self._done_callbacks = None
            self._context = None
            self.payload = None
            self.handle = None
            coroutine_args = (
                self.args
                if self.tt == TT_COROUTINE and previous != TASK_STATUS_STARTED
                else ()
            )
            self.target = None
            self.args = ()
            self.kwargs = FINISHED_KWARGS
            owner = self._owner
            if owner is not None:
                # Under the lock, so whoever sees the final status also sees
                # the record counted and stored. The owner takes only its own
                # locks here and never a record's: the lock order is one-way.
                owner._task_finished(self, previous)
        if container is not None:
            container.discard(self)
        if coroutine_args:
            _close_coroutines(coroutine_args)
        if waiters is not None:
            for waiter in waiters:
                if type(waiter) is not _StartedEvent:  # a canceled task never started
                    waiter.set()
        if exception is not None and owner is not None:
            owner._task_failed(self)
        callback = self.callback if status == TASK_STATUS_COMPLETED else None
        if callback is not None or callbacks:

            def notify() -> None:
                if callback is not None:
                    try:
                        callback(result)
                    except BaseException:
                        logger.exception("callback of task %s failed", self.id)
                for fn in callbacks or ():
                    _call_logged(fn, self)

            if defer is None:
                notify()
            else:
                defer(notify)
        return True


def _call_logged(fn: DoneCallback, task: TaskInfo) -> None:
    try:
        fn(task)
    except BaseException:  # user code: SystemExit must not end our thread
        logger.exception("done callback %r of task %s failed", fn, task.id)


def _checked_timeout(timeout: Any) -> float | None:
    """``timeout`` checked; infinity means no limit (Event.wait rejects it)."""
    seconds = check_timeout(timeout, "timeout")
    return None if seconds == math.inf else seconds


def _close_coroutines(args: tuple[Any, ...]) -> None:
    """Close coroutine objects that will never run (no 'never awaited' warning)."""
    for arg in args:
        if asyncio.iscoroutine(arg):
            arg.close()


def _resolve(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)
