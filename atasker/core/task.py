"""TaskInfo: the task record.

The record owns its status, result and exception; every other component asks
it. Each transition is one method that changes the status under the record's
lock, and a final status is set once::

    DELAYED ──> QUEUED ──> STARTED ──> COMPLETED | ERROR | EXCEPTION
       │  ▲        │          │
       │  └────────┼── retry ─┘   (another attempt follows: holds no slot)
       └───────────┴──> CANCELED   (a running task: cancel_requested, or
                                    a process or coroutine task's cancel)

A queued or delayed record names the container that holds it (``_container``:
the pool whose ready queue holds it, or the timer), set and cleared by that
container under its own lock. Cancel removes the record from that container,
whatever the supervisor did since (a restart gives it a new pool while the
old one still drains).

When a record reaches its final status it tells its owner (the supervisor:
look-up store, counters), drops what it ran (target, args, kwargs), wakes its
waiters (threads in ``wait``/``get``, awaiting coroutines, dependants: quick,
internal, always in the finishing thread), has a failure logged, then runs
the user code that follows: the hooks of its options (``on_success`` or
``on_error``, then ``after_return``), the ``callback`` option with the
result, and the done callbacks with the record, in the finishing thread or
handed to ``defer``. Every ``BaseException`` raised by that code is logged
and never reaches the thread that finished the task.

What its attempts keep (retries, failures, cancel reasons, reported state)
and the retry transition are in attempts.py; its place in a workflow
(parent, links, replacement) in links.py; waiting on it, in waiting.py.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import threading
import time
import types
from collections.abc import Mapping
from typing import Any, Callable, Protocol

from .attempts import (
    FAILED_STATUSES,
    AttemptStart,
    AttemptState,
    cause_of,
    failed_status,
)
from .constants import (
    FINAL_STATUSES,
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TASK_STATUS_DELAYED,
    TASK_STATUS_ERROR,
    TASK_STATUS_QUEUED,
    TASK_STATUS_STARTED,
    TT_COROUTINE,
    TT_THREAD,
)
from .errors import Replace, Retry, format_exception, message_of
from .events import EventBus
from .links import TaskLinks
from .options import TaskOptions
from .waiting import (
    Defer,
    DoneCallback,
    LockWaiter,
    StartedEvent,
    Waiter,
    call_logged,
    running,
)

logger = logging.getLogger("atasker")

# What a finished record keeps of its keyword arguments: nothing, read-only.
FINISHED_KWARGS: Mapping[str, Any] = types.MappingProxyType({})


class Owner(Protocol):
    """What a record tells of itself: the supervisor that made it."""

    _events: EventBus  # what it publishes goes there, if anyone listens

    def _task_emitted(self, task: TaskInfo, event: str, data: Any) -> None: ...

    def _task_finished(self, task: TaskInfo, previous: int) -> None: ...

    def _task_failed(self, task: TaskInfo) -> None: ...

    def _cancel_running(self, task: TaskInfo, reason: str | None) -> bool: ...

    def _takes_attempts(self) -> bool: ...

    def _retry_task(self, task: TaskInfo, wait: float) -> bool: ...


class Container(Protocol):
    """What holds a queued or delayed record: a pool or the timer."""

    def discard(self, task: TaskInfo) -> Any:
        """Forget ``task`` if this container still holds it (takes its lock)."""


def current_task() -> TaskInfo | None:
    """Return the record of the task running in this thread, or None."""
    return getattr(running, "task", None)


class TaskInfo(TaskLinks):
    """The record of one task: what to run, its status, its outcome.

    Attributes (atasker 0.7's): ``id, tt, priority, status, result,
    time_queued, time_started, callback, delay, args, kwargs, target``; and
    ``name, time_completed, exception, traceback`` (the traceback as text),
    ``retries, attempts, cancel_reason, state, meta, eta, expires``;
    ``parent, children`` (workflows); ``reloads`` (class tasks).
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
        "_context",
        "_owner",
        # _options, _extra: TaskAttempts'; _lock, _waiters, _done_callbacks:
        # TaskWaiting's (a slot named twice would take its space twice).
    )

    def __init__(
        self,
        task_id: str,
        target: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        # Positional too: a class called with keywords builds a dict of them,
        # which cost the submit of a no-op task 10% (dispatch passes them so).
        tt: int,
        priority: int,
        name: str | None = None,
        delay: float | None = None,
        callback: Callable[[Any], Any] | None = None,
        time_limit: float | None = None,
        owner: Owner | None = None,
        options: TaskOptions | None = None,
        delayed: bool = False,
    ) -> None:
        self.id = task_id
        self.tt = tt
        self.priority = priority
        self.status = TASK_STATUS_DELAYED if delay or delayed else TASK_STATUS_QUEUED
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
        # Process tasks: (target, args, kwargs, context) pickled when submitted.
        self.payload: bytes | None = None
        # Coroutine tasks: the loop to run on, then the running asyncio.Task.
        self.handle: Any = None
        # The pool or timer holding the record while it is queued or
        # delayed; set and cleared by that container under its own lock. A
        # record is in at most one container at a time.
        self._container: Container | None = None
        # TaskWaiting's fields: see there.
        self._lock = threading.Lock()
        self._waiters = None
        self._done_callbacks = None
        # Thread tasks run in a copy of the submitter's context variables
        # (process tasks are pickled, coroutines run in their loop's context).
        self._context: contextvars.Context | None = (
            contextvars.copy_context() if tt == TT_THREAD else None
        )
        self._owner = owner
        # Options beyond atasker 0.7's (None: none), and what attempts keep.
        self._options = options
        self._extra: AttemptState | None = None if options is None else AttemptState()

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
    ready = is_completed  # celery's name

    def cancelled(self) -> bool:
        """True if the task was canceled."""
        return self.status == TASK_STATUS_CANCELED

    def successful(self) -> bool:
        """True if the task completed (returned a value)."""
        return self.status == TASK_STATUS_COMPLETED

    def failed(self) -> bool:
        """True if the task ended in ERROR or EXCEPTION (a canceled task has
        not failed)."""
        return self.status in FAILED_STATUSES

    # ------------------------------------------------------------------
    # Transitions (called by the supervisor, the pools and the timer)
    # ------------------------------------------------------------------

    def cancel(self, reason: str | None = None) -> bool:
        """Cancel the task.

        A queued or delayed task will never run. A running process task has
        its worker process terminated (and replaced); a running coroutine
        task's asyncio task is cancelled. A running thread task cannot be
        stopped from outside: its ``cancel_requested`` is set (the task may
        end itself with ``current_context().check_cancelled()``) and this
        returns False.

        Args:
            reason: the record's ``cancel_reason``; default ``"canceled"``.

        Returns:
            True if the task is now canceled (or was already), False if it
            runs on or has finished otherwise.
        """
        if self.status == TASK_STATUS_CANCELED:
            return True
        if self._cancel_waiting(reason):
            return True
        if self.status == TASK_STATUS_STARTED and self._owner is not None:
            if self._owner._cancel_running(self, reason):
                return True
            # It may have gone back to DELAYED meanwhile, for a retry.
            return self._cancel_waiting(reason)
        return False

    def _cancel_waiting(self, reason: str | None, defer: Defer | None = None) -> bool:
        """CANCELED if it is queued or delayed (it never runs); True if so."""
        return self._finish(
            TASK_STATUS_CANCELED,
            only_from=(TASK_STATUS_QUEUED, TASK_STATUS_DELAYED),
            defer=defer,
            reason=reason,
        )

    def _expire(self, defer: Defer | None = None) -> bool:
        """Its ``expires`` time came: CANCELED ("expired") unless it started
        (a task waiting for its next attempt has)."""
        if self.time_started is not None:
            return False
        return self._cancel_waiting("expired", defer)

    def set_queued(self) -> bool:
        """DELAYED -> QUEUED, when the due time comes; False if canceled.

        ``time_queued`` stays the submit time (as in atasker 0.7).
        """
        with self._lock:
            if self.status != TASK_STATUS_DELAYED:
                return False
            self.status = TASK_STATUS_QUEUED
            if self._extra is not None:
                self._extra.queued_at = time.time()
            return True

    def set_started(self, defer: Defer | None = None) -> bool:
        """QUEUED -> STARTED; False if the task was canceled meanwhile.

        The ``on_start`` hook runs here, or is handed to ``defer``.
        """
        if self._begin() is None:
            return False
        on_start = self._options.on_start if self._options is not None else None
        if on_start is not None:
            if defer is None:
                call_logged("on_start hook", on_start, self)
            else:
                defer(lambda: call_logged("on_start hook", on_start, self))
        return True

    def _begin(self) -> AttemptStart | None:
        """QUEUED -> STARTED: what the attempt runs (read under the lock:
        once final, the record drops it), or None if the task is no longer
        queued."""
        with self._lock:
            if self.status != TASK_STATUS_QUEUED:
                return None
            self.status = TASK_STATUS_STARTED
            self.time_started = time.time()
            started = None if self._waiters is None else self._started_event_locked()
            extra = self._extra
            expiry = None
            attempt = 0
            if extra is not None:
                extra.attempt = attempt = extra.attempt + 1
                extra.context = extra.state = None
                expiry, extra.expiry = extra.expiry, None
            target = self.target
            assert target is not None
            begun = AttemptStart(attempt, target, self.args, self.kwargs, self._context)
        if started is not None:
            started.set()
        if expiry is not None:
            expiry.cancel()
        owner = self._owner
        if owner is not None and owner._events.active:
            owner._events.publish(self.id, self.name, "started", None)
        return begun

    def set_result(
        self, result: Any, defer: Defer | None = None, attempt: int | None = None
    ) -> bool:
        """Final: COMPLETED with ``result``. False if already final (or, with
        ``attempt``, if that attempt is over).

        ``defer``, if given, is handed the function that runs the hooks and
        callbacks instead of running them in this thread (see :meth:`_finish`).
        """
        return self._finish(
            TASK_STATUS_COMPLETED, result=result, defer=defer, attempt=attempt
        )

    def set_exception(
        self,
        exception: BaseException,
        defer: Defer | None = None,
        retryable: bool = True,
        attempt: int | None = None,
    ) -> bool:
        """An attempt (or the task) failed with ``exception``.

        A running task whose retry policy allows (or that raised the
        ``Retry`` signal) goes back to DELAYED for another attempt.
        Otherwise it is final: ERROR for a TaskError, CANCELED for a
        cancellation the task was asked for, EXCEPTION for anything else.

        Args:
            exception: what the attempt raised.
            defer: see :meth:`set_result`.
            retryable: False if the attempt asked for no automatic retry.
            attempt: the attempt this outcome belongs to; ignored if that
                attempt is over (a late answer after a time limit).

        Returns:
            True if this call made a transition.
        """
        if type(exception) is Replace:
            return self._replace(exception, defer, attempt)
        is_retry = isinstance(exception, Retry)
        if (self._options is not None or is_retry) and self._retry(
            exception, defer, retryable, attempt
        ):
            return True
        if is_retry:  # no other attempt can follow: it fails with the cause
            exception = cause_of(exception)
        reason = None
        if isinstance(exception, concurrent.futures.CancelledError):
            extra = self._extra
            reason = None if extra is None else extra.cancel_requested
        if reason is not None:
            return self._finish(
                TASK_STATUS_CANCELED, defer=defer, reason=reason, attempt=attempt
            )
        return self._finish(
            failed_status(exception), exception=exception, defer=defer, attempt=attempt
        )

    def set_canceled(
        self, defer: Defer | None = None, reason: str | None = None
    ) -> bool:
        """Final: CANCELED, from any non-final status (supervisor stop)."""
        return self._finish(TASK_STATUS_CANCELED, defer=defer, reason=reason)

    def run(self, hand_back: bool = False) -> list[Waiter] | None:
        """Run the target in this thread and store its outcome (a thread task
        with atasker 0.7's options only; the others run as attempts, see
        :mod:`atasker.pools.threadattempt`).

        Does nothing if the task was canceled before it could start. Never
        raises: the task's exception goes on the record.

        Args:
            hand_back: return the waiters of a record that completed with
                no user code to follow, instead of waking them: the caller
                (a pool thread) wakes them (:func:`wake_waiters`) once its
                own bookkeeping is done, so that they find the GIL free.

        Returns:
            The waiters handed back, or None (there were none, or they are
            woken).
        """
        # _begin(), inlined: this is the hot path (calling it costs a plain
        # no-op task 7% more instructions); a plain record has no expiry.
        with self._lock:
            if self.status != TASK_STATUS_QUEUED:
                return None
            self.status = TASK_STATUS_STARTED
            self.time_started = time.time()
            started = None
            if self._waiters is not None:  # _started_event_locked(), inlined (1.6%)
                for waiter in self._waiters:
                    if type(waiter) is StartedEvent:
                        started = waiter
                        break
            # Read under the lock: once final, the record drops them.
            target, args, kwargs = self.target, self.args, self.kwargs
            extra = self._extra
            if extra is not None:  # asked for by a retry signal or a feature
                extra.attempt += 1
                extra.context = extra.state = None
        if started is not None:
            started.set()
        owner = self._owner
        if owner is not None and owner._events.active:
            owner._events.publish(self.id, self.name, "started", None)
        assert target is not None
        context = self._context
        running.task = self
        try:
            if context is None:
                result = target(*args, **kwargs)
            else:
                result = context.run(target, *args, **kwargs)
        except BaseException as exc:
            self.set_exception(exc)
            return None
        else:
            return self._complete(result, hand_back)
        finally:
            running.task = None

    def _complete(self, result: Any, hand_back: bool) -> list[Waiter] | None:
        """:meth:`run`'s success: ``_finish(COMPLETED, result)`` for a record
        with nothing of attempts (no ``_extra``: no expiry, no cancel
        request), which is the hot path; any other goes to :meth:`_finish`.

        Returns the waiters for the caller to wake if it asked for them and
        no user code follows (see :meth:`run`); else wakes them, then runs
        that code."""
        with self._lock:
            fast = self.status == TASK_STATUS_STARTED and self._extra is None
            if fast:
                self.result = result
                self.time_completed = time.time()
                self.status = TASK_STATUS_COMPLETED
                waiters, self._waiters = self._waiters, None
                callbacks, self._done_callbacks = self._done_callbacks, None
                # What it ran: see _finish (a thread task holds no payload
                # or handle, and a running record no container).
                self._context = self.target = None
                self.args = ()
                self.kwargs = FINISHED_KWARGS
                owner = self._owner
                if owner is not None:
                    owner._task_finished(self, TASK_STATUS_STARTED)
        if not fast:
            self._finish(TASK_STATUS_COMPLETED, result)
            return None
        if owner is not None and owner._events.active:
            owner._events.publish(self.id, self.name, "success", result)
        callback = self.callback
        if hand_back and callback is None and not callbacks:
            return waiters  # nothing follows: the caller wakes them
        if waiters is not None:
            wake_waiters(waiters)
        if callback is not None or callbacks:
            self._call_back(callback, result, callbacks)
        return None

    def _call_back(
        self,
        callback: Callable[[Any], Any] | None,
        result: Any,
        callbacks: list[DoneCallback] | None,
    ) -> None:
        """User code after a final transition: the ``callback`` option with
        the result (COMPLETED only), then the done callbacks; what they
        raise is logged."""
        if callback is not None:
            try:
                callback(result)
            except BaseException:
                logger.exception("callback of task %s failed", self.id)
        for fn in callbacks or ():
            call_logged("done callback", fn, self)

    def _finish(
        self,
        status: int,
        result: Any = None,
        exception: BaseException | None = None,
        only_from: tuple[int, ...] | None = None,
        defer: Defer | None = None,
        reason: str | None = None,
        attempt: int | None = None,
    ) -> bool:
        """The one final transition; True if this call made it.

        In order: the status is set and the owner told (under the lock); a
        record canceled while queued or delayed leaves its container; the
        waiters are woken (here, always: they are quick and not user code);
        a failure is reported to the owner; then the hooks, the callback
        option and the done callbacks, which are user code, run in this
        thread or are handed to ``defer`` (the process pool's manager
        thread must not wait for them).

        Args:
            only_from: make the transition only from one of these statuses.
            reason: the cancel reason (CANCELED only).
            attempt: make it only while this attempt runs.
        """
        # Formatting calls the exception's __str__ (user code): not under our lock.
        text = None if exception is None else format_exception(exception)
        with self._lock:
            if self.status in FINAL_STATUSES:
                return False
            if only_from is not None and self.status not in only_from:
                return False
            extra = self._extra
            if attempt is not None and (
                self.status != TASK_STATUS_STARTED
                or attempt != (0 if extra is None else extra.attempt)
            ):
                return False
            previous = self.status
            self.result = result
            if exception is not None:
                self.exception = exception
                self.traceback = text
            self.time_completed = time.time()
            self.status = status
            expiry = None
            if status == TASK_STATUS_CANCELED:
                extra = self._extra_locked()
                extra.cancel_reason = reason or extra.cancel_requested or "canceled"
            if extra is not None:
                expiry, extra.expiry = extra.expiry, None
                extra.context = None
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
        if expiry is not None:
            expiry.cancel()
        if coroutine_args:
            _close_coroutines(coroutine_args)
        if waiters is not None:
            wake_waiters(waiters)
        if owner is not None:
            if owner._events.active:
                self._publish_final(owner._events, status, result, exception, text)
            if exception is not None:
                owner._task_failed(self)
        options = self._options
        if options is not None and not options.end_hooks:
            options = None  # nothing of it to run: nothing to defer
        callback = self.callback if status == TASK_STATUS_COMPLETED else None
        if options is not None or callback is not None or callbacks:

            def notify() -> None:
                if options is not None:
                    self._end_hooks(options, status, previous, result, exception)
                self._call_back(callback, result, callbacks)

            if defer is None:
                notify()
            else:
                defer(notify)
        return True

    def _publish_final(
        self,
        events: EventBus,
        status: int,
        result: Any,
        exception: BaseException | None,
        text: str | None,
    ) -> None:
        """The final lifecycle event: its data as docs/events.md says."""
        if status == TASK_STATUS_COMPLETED:
            event, data = "success", result
        elif status == TASK_STATUS_CANCELED:
            event, data = "canceled", self.cancel_reason
        elif status == TASK_STATUS_ERROR:
            event, data = "error", message_of(exception)
        else:
            event, data = "exception", text
        events.publish(self.id, self.name, event, data)

    def _emit(self, event: str, data: Any) -> None:
        """The running task emitted an event (checked by the caller)."""
        owner = self._owner
        if owner is not None:
            owner._task_emitted(self, event, data)

    @property
    def reloads(self) -> int:
        """Times a class task was reloaded (``reload_task``) under this id."""
        run = self._class_run()
        return 0 if run is None else int(run.reloads)

    def _class_run(self) -> Any:
        """A class task's ClassRun (classtasks/classrun.py), else None."""
        extra = self._extra
        return None if extra is None else extra.class_run


def wake_waiters(waiters: list[Waiter]) -> None:
    """Wake the internal waiters of a record that is now final (quick, and
    never raises)."""
    for waiter in waiters:
        if type(waiter) is LockWaiter:  # a thread in wait()/get()
            waiter.release()
        elif type(waiter) is not StartedEvent:  # a canceled one never started
            waiter.set()  # type: ignore[union-attr]  # (not a LockWaiter)


def _close_coroutines(args: tuple[Any, ...]) -> None:
    """Close coroutine objects that will never run (no 'never awaited' warning)."""
    for arg in args:
        if asyncio.iscoroutine(arg):
            arg.close()
