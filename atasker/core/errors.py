"""Exception classes.

Each subclasses the standard exception a user would already catch, so
``except concurrent.futures.CancelledError`` or ``except TimeoutError`` keeps
working around atasker calls.
"""

from __future__ import annotations

import concurrent.futures
import sys
import traceback
from concurrent.futures.process import BrokenProcessPool
from typing import Any


class TaskError(Exception):
    """Raised by a task for an expected, reported failure.

    A task that raises it ends with status ``TASK_STATUS_ERROR`` instead of
    ``TASK_STATUS_EXCEPTION``.
    """


class TaskCancelledError(concurrent.futures.CancelledError):
    """The task was canceled and will never run (or never finish)."""


class TaskTimeoutError(TimeoutError):
    """The task ran past its time limit and was stopped."""


# On 3.9 and 3.10 concurrent.futures.TimeoutError is a class of its own; from
# 3.11 it is the builtin. A wait's timeout is both, so an ``except`` naming
# either catches it on every version.
if sys.version_info >= (3, 11):
    _TimeoutBase = TimeoutError
else:

    class _TimeoutBase(TimeoutError, concurrent.futures.TimeoutError):
        pass


class SoftTimeLimitExceeded(Exception):
    """Raised inside a task when its ``soft_time_limit`` passes.

    The task may catch it to clean up; its hard ``time_limit``, if any,
    still applies. In a thread task it is an asynchronous exception (it
    arrives when the thread next runs Python code); in a process task, a
    signal handler raises it; a coroutine task gets it at its ``await``.
    """


def time_limit_error(
    task: Any, seconds: float | None, detail: str = ""
) -> TaskTimeoutError:
    """The error of a task (its record) that ran past its hard time limit."""
    return TaskTimeoutError(
        f"task {task.id} ({task.name}) ran past its time limit of {seconds} s{detail}"
    )


def soft_limit_error(seconds: float) -> SoftTimeLimitExceeded:
    """What a task gets past its soft time limit."""
    return SoftTimeLimitExceeded(
        f"the task ran past its soft time limit of {seconds} s"
    )


class Retry(Exception):
    """The signal ``current_context().retry()`` raises: this attempt ends and
    another follows.

    Attributes:
        exc: the exception that made the task retry, or None.
        countdown: seconds until the next attempt; None: the task's retry
            policy decides.
        max_retries: the retries allowed; None: the task's ``retries``.
    """

    def __init__(
        self,
        message: str | None = None,
        exc: BaseException | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
    ) -> None:
        if message is None:
            message = "retry requested" if exc is None else f"retry after {exc!r}"
        super().__init__(message)
        self.exc = exc
        self.countdown = countdown
        self.max_retries = max_retries


class Replace(Exception):
    """The signal ``current_context().replace(sig)`` raises: this attempt
    ends and the signature runs in its place; its outcome becomes the task's
    (celery's ``replace``).

    Attributes:
        signature: what runs instead (a workflow Signature).
    """

    def __init__(self, signature: Any) -> None:
        super().__init__(f"replaced by {safe_repr(signature)}")
        self.signature = signature

    def __reduce__(self) -> tuple[Any, ...]:
        return (Replace, (self.signature,))


class UnknownTaskError(LookupError):
    """No task function is registered under that name."""


class MaxRetriesExceededError(Exception):
    """``retry()`` was called past ``max_retries`` without an exception to
    re-raise."""


class WaitTimeoutError(_TimeoutBase):
    """A wait (``get``, ``wait_completed``, ...) ran out of time; the task
    goes on. Both the builtin ``TimeoutError`` and
    ``concurrent.futures.TimeoutError``."""


class WorkerLostError(BrokenProcessPool):
    """The worker process running the task died (crash, kill, out of memory).

    Attributes:
        exitcode: the process exit code (negative: killed by that signal).
        pid: the process id of the lost worker.
    """

    def __init__(
        self, message: str, exitcode: int | None = None, pid: int | None = None
    ) -> None:
        super().__init__(message)
        self.exitcode = exitcode
        self.pid = pid


class SupervisorNotRunningError(RuntimeError):
    """A task was submitted to a supervisor that is not started or is stopping."""


class ProcessPoolStartError(RuntimeError):
    """A worker process could not start: its initializer raised, or it died."""


class ProcessPoolBrokenError(BrokenProcessPool):
    """The process pool cannot run tasks: its workers keep failing to start
    (or its manager ended). Every queued and new process task fails with it;
    ``create_mp_pool()`` makes a new pool. The cause is ``__cause__``."""


class WorkerNotRunningError(RuntimeError):
    """An item was put to a worker that is not started (or was stopped)."""


def format_exception(exc: BaseException) -> str:
    """The traceback text of ``exc``; never raises, whatever its ``__str__``
    (user code) does."""
    try:
        return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except BaseException:
        return f"{type(exc).__qualname__} (its traceback could not be formatted)\n"


def message_of(exception: BaseException | None) -> str:
    """``str(exception)``, or its repr if that raises (user code)."""
    try:
        return str(exception)
    except BaseException:  # a user __str__ may raise anything
        return safe_repr(exception)


def safe_repr(value: object) -> str:
    """``repr(value)``, or a placeholder if that raises (user code)."""
    try:
        return repr(value)
    except BaseException:  # a user __repr__ may raise anything
        return f"<{type(value).__qualname__} object (repr failed)>"
