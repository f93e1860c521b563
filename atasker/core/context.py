"""Task context: what a running task knows of itself (celery's ``Task.request``).

``current_context()`` finds the running task wherever it runs::

    thread task     the record running in this thread (waiting.running.task)
    coroutine task  the record in a context variable its runner set
    process task    the context the worker process set for its task

and gives its :class:`TaskContext`, made once per attempt on first use (a
task that never asks pays nothing). ``bind=True`` passes the same object as
the task's first argument.

In a worker process there is no record: the context is built from what the
parent sent with the task, ``update_state`` sends its values to the parent
over the task's pipe, and a retry travels back as the ``Retry`` signal.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, NoReturn

from .errors import MaxRetriesExceededError, Replace, Retry, TaskCancelledError
from .events import check_event_name
from .jsonvalues import check_json
from .validation import check_delay
from .waiting import running

if TYPE_CHECKING:
    from .task import TaskInfo

# The record of the coroutine task that runs in this context (its runner sets it).
coroutine_task: contextvars.ContextVar[TaskInfo | None] = contextvars.ContextVar(
    "atasker_coroutine_task", default=None
)

# A worker process's running task (set by the worker around each task).
_process_context: TaskContext | None = None


class TaskContext:
    """The running task's view of itself; see :func:`current_context`.

    Attributes:
        id, name, priority: the task's.
        retries: retries made before this attempt.
        args, kwargs: the task's arguments (without the context itself).
        eta, expires: ``time.time()`` of its due time and expiry, or None.
        retries_spent: True once :meth:`retry` ran out of retries (this
            attempt's failure is then final: no automatic retry on top).
    """

    __slots__ = (
        "id",
        "name",
        "priority",
        "retries",
        "args",
        "kwargs",
        "eta",
        "expires",
        "_max_retries",
        "_record",
        "_attempt",
        "_send_state",
        "_send_event",
        "retries_spent",
    )

    def __init__(
        self,
        *,
        task_id: str,
        name: str | None,
        priority: int,
        retries: int,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        eta: float | None,
        expires: float | None,
        max_retries: int,
        record: TaskInfo | None = None,
        attempt: int | None = None,
        send_state: Callable[[str | None, Any], None] | None = None,
        send_event: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.id = task_id
        self.name = name
        self.priority = priority
        self.retries = retries
        self.args = args
        self.kwargs = kwargs
        self.eta = eta
        self.expires = expires
        self._max_retries = max_retries
        self._record = record
        self._attempt = attempt
        self._send_state = send_state
        self._send_event = send_event
        self.retries_spent = False

    def __repr__(self) -> str:
        return f"<TaskContext id={self.id!r} name={self.name!r} retries={self.retries}>"

    @property
    def cancel_requested(self) -> bool:
        """True once ``cancel()`` was asked of this running thread task (a
        process or coroutine task is cancelled outright instead)."""
        record = self._record
        return record is not None and record.cancel_requested

    def check_cancelled(self) -> None:
        """End the task as CANCELED if its cancel was requested.

        Raises:
            TaskCancelledError: ``cancel_requested`` is True.
        """
        if self.cancel_requested:
            raise TaskCancelledError(f"task {self.id} ({self.name}) was canceled")

    def retry(
        self,
        exc: BaseException | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
    ) -> NoReturn:
        """End this attempt and schedule the next one (celery's semantics).

        Args:
            exc: the exception that made the task retry (kept in
                ``record.attempts``; re-raised once retries run out).
            countdown: seconds until the next attempt; default: the task's
                retry policy (``retry_delay``, ``retry_backoff``, ...).
            max_retries: retries allowed; default the task's ``retries``
                option (0 unless the task declares ``retries=N``).

        Raises:
            Retry: always while retries remain (let it propagate).
            BaseException: ``exc`` once retries run out, else
                MaxRetriesExceededError.
            TypeError, ValueError: a bad ``countdown`` or ``max_retries``.
        """
        seconds = None if countdown is None else check_delay(countdown, "countdown")
        if max_retries is None:
            max_retries = self._max_retries
        elif isinstance(max_retries, bool) or not isinstance(max_retries, int):
            raise TypeError(f"max_retries must be an int; got {max_retries!r}")
        if self.retries >= max_retries:
            self.retries_spent = True
            if exc is not None:
                raise exc
            raise MaxRetriesExceededError(
                f"task {self.id} ({self.name}) retried {self.retries} times "
                f"(max_retries={max_retries})"
            )
        raise Retry(
            exc=exc,
            countdown=None if countdown is None else seconds or 0.0,
            max_retries=max_retries,
        )

    def replace(self, signature: Any) -> NoReturn:
        """End this attempt and run ``signature`` in the task's place: its
        result (or failure, or cancel) becomes the task's, under the same
        record (celery's ``replace``). The thread (or worker process) is
        free meanwhile. From a process task, the signature must pickle (a
        module-level task function's).

        Raises:
            Replace: always (let it propagate).
            TypeError: ``signature`` is not a signature.
        """
        if not callable(getattr(signature, "_apply_replacing", None)):
            raise TypeError(
                f"signature must be a signature (f.s(...)); got {signature!r}"
            )
        raise Replace(signature)

    def update_state(self, state: str | None = None, meta: Any = None) -> None:
        """Set the record's ``state`` and ``meta``, readable by the submitter
        while the task runs (a progress bar: ``update_state("PROGRESS",
        {"done": 40, "total": 100})``). None leaves a field as it is. From a
        process task, both cross the pipe (``meta`` must pickle).

        Raises:
            TypeError: ``state`` is not a str.
        """
        if state is not None and not isinstance(state, str):
            raise TypeError(f"state must be a str or None; got {state!r}")
        if self._record is not None:
            self._record._update_state(state, meta, self._attempt)
        elif self._send_state is not None:
            self._send_state(state, meta)

    def emit(self, event: str, data: Any = None) -> None:
        """Publish ``event`` of this task on its supervisor's event bus
        (docs/events.md), with ``data`` (JSON values). From a process task it
        crosses the pipe.

        Raises:
            TypeError: ``event`` is not a str; ``data`` is not JSON (the
                message names the offending value).
            ValueError: ``event`` is empty or a lifecycle event's name.
        """
        check_event_name(event)
        data = check_json(data, "data")
        if self._record is not None:
            self._record._emit(event, data)
        elif self._send_event is not None:
            self._send_event(event, data)


def context_of(record: TaskInfo) -> TaskContext:
    """The context of ``record``'s current attempt (made on first use)."""
    extra = record._extra
    if extra is not None and extra.context is not None:
        context: TaskContext = extra.context
        return context
    options = record.options
    context = TaskContext(
        task_id=record.id,
        name=record.name,
        priority=record.priority,
        retries=record.retries,
        args=record.args,
        kwargs=record.kwargs,
        eta=record.eta,
        expires=record.expires,
        max_retries=options.retries,
        record=record,
        attempt=record.attempt,
    )
    with record._lock:
        extra = record._extra_locked()
        if extra.context is None:
            extra.context = context
        context = extra.context
    return context


def current_context() -> TaskContext | None:
    """The context of the task running here (in this thread, this coroutine
    or this worker process), bound or not; None outside a task."""
    record = getattr(running, "task", None)
    if record is None:
        record = coroutine_task.get()
    if record is not None:
        return context_of(record)
    return _process_context


def set_process_context(context: TaskContext | None) -> None:
    """A worker process: the context of the task it runs now (or None)."""
    global _process_context
    _process_context = context


def retries_spent(task: TaskInfo) -> bool:
    """True if the task's current attempt ran out of retries in
    ``retry()`` (its failure is then final)."""
    extra = task._extra
    context = None if extra is None else extra.context
    return context is not None and bool(context.retries_spent)
