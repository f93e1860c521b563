"""Exception classes.

Each subclasses the standard exception a user would already catch, so
``except concurrent.futures.CancelledError`` or ``except TimeoutError`` keeps
working around atasker calls.
"""

from __future__ import annotations

import concurrent.futures
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
