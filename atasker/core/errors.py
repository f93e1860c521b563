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
