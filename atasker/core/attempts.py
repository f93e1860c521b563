"""What a record keeps of its attempts: retries, failures, cancel reasons,
reported state, due and expiry times; and the retry transition.

A mixin of :class:`~atasker.core.task.TaskInfo` (its base, under it
:class:`~atasker.core.waiting.TaskWaiting`). A record whose options go
beyond atasker 0.7's (``_options`` is not None: retries, hooks, limits on a
thread, bind, ...) keeps what its attempts need in ``_extra`` (an
:class:`AttemptState`, guarded by the record's lock); a plain record never makes
one unless a feature asks (``update_state``, a cancel request, a retry
signal), so it costs a queued record 16 bytes, not more.

A failed attempt that the retry policy (or a ``Retry`` signal) wants to
repeat goes STARTED -> DELAYED here (:meth:`TaskAttempts._retry`); the
record's other transitions are in task.py.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Protocol

from .constants import (
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TASK_STATUS_DELAYED,
    TASK_STATUS_ERROR,
    TASK_STATUS_EXCEPTION,
    TASK_STATUS_QUEUED,
    TASK_STATUS_STARTED,
)
from .errors import Retry, TaskError, format_exception, message_of, safe_repr
from .options import DEFAULT_OPTIONS, TaskOptions
from .retry import next_wait
from .waiting import Defer, TaskWaiting, call_logged

# The default ``state`` of each status (celery's names where they exist).
STATE_NAMES = {
    TASK_STATUS_QUEUED: "QUEUED",
    TASK_STATUS_DELAYED: "DELAYED",
    TASK_STATUS_STARTED: "STARTED",
    TASK_STATUS_COMPLETED: "COMPLETED",
    TASK_STATUS_ERROR: "ERROR",
    TASK_STATUS_EXCEPTION: "EXCEPTION",
    TASK_STATUS_CANCELED: "CANCELED",
}

FAILED_STATUSES = (TASK_STATUS_ERROR, TASK_STATUS_EXCEPTION)


class Cancellable(Protocol):
    """A pending timer call (an expiry) the record cancels when it starts."""

    def cancel(self) -> None: ...


class Attempt(NamedTuple):
    """The summary of one failed attempt (``TaskInfo.attempts``)."""

    number: int
    """1 for the first attempt."""
    exception: str
    """The exception's repr."""
    traceback: str | None
    """Its traceback, as text."""
    time_started: float | None
    time_completed: float


class AttemptStart(NamedTuple):
    """What an attempt that just started runs."""

    attempt: int
    """Its number (0 for a record that keeps no count)."""
    target: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    context: contextvars.Context | None
    """A thread task's copy of its submitter's context variables."""


class AttemptState:
    """What a record keeps beyond atasker 0.7's fields (see the module
    docstring). Guarded by the record's lock."""

    __slots__ = (
        "retries",
        "failures",
        "attempt",
        "cancel_reason",
        "cancel_requested",
        "state",
        "meta",
        "eta",
        "expires",
        "expiry",
        "context",
        "pending",
        "queued_at",
        "parent",
        "feed",
        "children",
        "replaced_by",
        "class_run",
    )

    def __init__(self) -> None:
        self.retries = 0  # retries made
        self.failures: list[Attempt] | None = None  # earlier failed attempts
        self.attempt = 0  # the current attempt's number, from 1
        self.cancel_reason: str | None = None
        self.cancel_requested: str | None = None  # the reason asked, if any
        self.state: str | None = None  # update_state()'s, for this attempt
        self.meta: Any = None
        self.eta: float | None = None  # when the next attempt is due
        self.expires: float | None = None  # time.time() of the expiry
        self.expiry: Cancellable | None = None  # the expiry's timer call
        self.context: Any = None  # this attempt's TaskContext, once asked
        self.pending = 0  # dependencies not completed yet
        # When it last went DELAYED -> QUEUED (a queue wait starts there).
        self.queued_at: float | None = None
        # Workflows (links.py): what it followed, what it is fed when its
        # dependencies complete, its links' records, what runs in its place.
        self.parent: Any = None
        self.feed: Any = None
        self.children: list[Any] | None = None
        self.replaced_by: Any = None
        self.class_run: Any = None  # a class task's ClassRun (classtasks/classrun.py)


def cause_of(exception: BaseException) -> BaseException:
    """What an attempt failed with: a Retry signal's exception, if it has one."""
    if isinstance(exception, Retry) and exception.exc is not None:
        return exception.exc
    return exception


def failed_status(exception: BaseException) -> int:
    return (
        TASK_STATUS_ERROR if isinstance(exception, TaskError) else TASK_STATUS_EXCEPTION
    )


class TaskAttempts(TaskWaiting):
    """The attempts side of a record (see the module docstring)."""

    __slots__ = ("_options", "_extra")

    _options: TaskOptions | None
    _extra: AttemptState | None

    if TYPE_CHECKING:  # TaskInfo's

        @property
        def status(self) -> int: ...

        @status.setter
        def status(self, value: int) -> None: ...

        time_started: float | None
        time_completed: float | None
        time_queued: float
        delay: float | None
        traceback: str | None
        _owner: Any
        _finish: Callable[..., bool]  # the final transition

    @property
    def options(self) -> TaskOptions:
        """The options beyond atasker 0.7's the task was submitted with."""
        return self._options or DEFAULT_OPTIONS

    @property
    def retries(self) -> int:
        """Retries made so far."""
        extra = self._extra
        return 0 if extra is None else extra.retries

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        """A summary of each failed attempt, oldest first: the earlier ones
        that were retried and, once the task has failed, its last."""
        extra = self._extra
        failures = () if extra is None or not extra.failures else tuple(extra.failures)
        exception = self.exception
        if self.status in FAILED_STATUSES and exception is not None:
            last = Attempt(
                len(failures) + 1,
                safe_repr(exception),
                self.traceback,
                self.time_started,
                self.time_completed or 0.0,
            )
            return (*failures, last)
        return failures

    @property
    def cancel_reason(self) -> str | None:
        """Why the task was canceled (``"canceled"``, ``"expired"``,
        ``"stopped"``, ``"dependency failed: <id>"``, ...); None if it was not."""
        extra = self._extra
        return None if extra is None else extra.cancel_reason

    @property
    def cancel_requested(self) -> bool:
        """True once ``cancel()`` was asked of the running task."""
        extra = self._extra
        return extra is not None and extra.cancel_requested is not None

    @property
    def state(self) -> str:
        """The state a running task set with ``update_state``; otherwise the
        name of its status (``QUEUED``, ``DELAYED``, ``STARTED``,
        ``COMPLETED``, ``ERROR``, ``EXCEPTION``, ``CANCELED``)."""
        extra = self._extra
        status = self.status
        if (
            extra is not None
            and extra.state is not None
            and status == TASK_STATUS_STARTED
        ):
            return extra.state
        return STATE_NAMES[status]

    @property
    def meta(self) -> Any:
        """What the task last gave ``update_state(meta=...)``, or None."""
        extra = self._extra
        return None if extra is None else extra.meta

    @property
    def eta(self) -> float | None:
        """When the task (or its next attempt) is or was due, ``time.time()``;
        None if it was to run at once."""
        extra = self._extra
        if extra is not None and (extra.eta is not None or self._options is not None):
            return extra.eta
        delay: float | None = self.delay  # atasker 0.7's options: the delay
        return None if not delay else self.time_queued + delay

    @property
    def expires(self) -> float | None:
        """When a task not started yet expires, ``time.time()``; or None."""
        extra = self._extra
        return None if extra is None else extra.expires

    @property
    def attempt(self) -> int:
        """The current (or last) attempt's number, from 1; 0 for a task that
        keeps no count (atasker 0.7's options only, never retried)."""
        extra = self._extra
        return 0 if extra is None else extra.attempt

    def _keep_expiry(self, call: Cancellable) -> bool:
        """Hold the timer call of the expiry, to cancel it when the task
        starts; False if it already has (or is final)."""
        with self._lock:
            if self.time_started is not None or self.status not in (
                TASK_STATUS_QUEUED,
                TASK_STATUS_DELAYED,
            ):
                return False
            self._extra_locked().expiry = call
            return True

    def _request_cancel(self, reason: str | None) -> bool:
        """Note that cancel() was asked of the running task; False if it is
        not running (any more)."""
        with self._lock:
            if self.status != TASK_STATUS_STARTED:
                return False
            self._extra_locked().cancel_requested = reason or "canceled"
            return True

    def _update_state(
        self, state: str | None, meta: Any, attempt: int | None = None
    ) -> bool:
        """A running task's ``update_state``: None leaves a field as it is.
        With ``attempt``: only while that attempt runs (a late one that ran
        past its time limit must not speak for the next)."""
        with self._lock:
            if self.status != TASK_STATUS_STARTED:
                return False
            if attempt is not None and attempt != self.attempt:
                return False
            extra = self._extra_locked()
            if state is not None:
                extra.state = state
            if meta is not None:
                extra.meta = meta
            return True

    def _extra_locked(self) -> AttemptState:
        extra = self._extra
        if extra is None:
            extra = self._extra = AttemptState()
        return extra

    def _retry(
        self,
        exception: BaseException,
        defer: Defer | None,
        retryable: bool,
        attempt: int | None,
    ) -> bool:
        """STARTED -> DELAYED if the retry policy (or a Retry signal) wants
        another attempt; True if so.

        None follows for a task whose cancel was requested, or whose
        supervisor no longer takes attempts. Then the ``on_retry`` and
        ``after_return`` hooks run (here, or handed to ``defer``) and the
        owner schedules the next attempt; if it cannot after all (a stop
        came in between), the retry is taken back and the task fails with
        ``exception``.
        """
        owner = self._owner
        if (
            owner is None
            or self.status != TASK_STATUS_STARTED
            or not owner._takes_attempts()
        ):
            return False
        options = self._options or DEFAULT_OPTIONS
        cause = cause_of(exception)
        text = format_exception(cause)  # user __str__: not under our lock
        with self._lock:
            extra = self._extra_locked()
            if (
                self.status != TASK_STATUS_STARTED
                or (attempt is not None and attempt != extra.attempt)
                or extra.cancel_requested is not None
            ):
                return False
            wait = next_wait(options, exception, extra.retries, retryable)
            if wait is None:
                return False
            if extra.failures is None:
                extra.failures = []
            now = time.time()
            extra.failures.append(
                Attempt(
                    extra.retries + 1, safe_repr(cause), text, self.time_started, now
                )
            )
            extra.retries += 1
            extra.context = extra.state = None
            extra.eta = now + wait
            self.status = TASK_STATUS_DELAYED

        events = owner._events
        if events.active:
            events.publish(self.id, self.name, "retry", message_of(cause))

        def follow() -> None:
            if options.on_retry is not None:
                call_logged("on_retry hook", options.on_retry, self, cause)
            if options.after_return is not None:
                call_logged("after_return hook", options.after_return, self)
            if not owner._retry_task(self, wait):
                self._retry_refused(cause)

        if defer is None:
            follow()
        else:
            defer(follow)
        return True

    def _retry_refused(self, cause: BaseException) -> None:
        """The next attempt could not be scheduled: the retry did not happen
        (its count and failure entry are taken back); the task fails."""
        waiting = (TASK_STATUS_DELAYED, TASK_STATUS_QUEUED)
        with self._lock:
            extra = self._extra
            if self.status not in waiting or extra is None or not extra.failures:
                return
            extra.failures.pop()
            extra.retries -= 1
        self._finish(failed_status(cause), exception=cause, only_from=waiting)

    def _end_hooks(
        self,
        options: TaskOptions,
        status: int,
        previous: int,
        result: Any,
        exception: BaseException | None,
    ) -> None:
        """on_success or on_error, then after_return for an attempt that ran."""
        if status == TASK_STATUS_COMPLETED and options.on_success is not None:
            call_logged("on_success hook", options.on_success, self, result)
        elif status in FAILED_STATUSES and options.on_error is not None:
            call_logged("on_error hook", options.on_error, self, exception)
        if previous == TASK_STATUS_STARTED and options.after_return is not None:
            call_logged("after_return hook", options.after_return, self)
