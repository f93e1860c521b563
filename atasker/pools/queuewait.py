"""Queue-wait reports (atasker's timeout_warning / timeout_critical).

A thread task that starts after waiting in the queue longer than
``timeout_warning`` seconds is logged at WARNING and ``timeout_warning_func``
is called with its record; past ``timeout_critical``, CRITICAL and
``timeout_critical_func``. The check runs in the pool thread, just before the
task, so it costs one clock read per task and no thread of its own.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from ..core.task import TaskInfo
from ..core.waiting import Waiter
from .threadattempt import ThreadLimits, run_attempt

logger = logging.getLogger("atasker")

# atasker 0.7's defaults.
DEFAULT_TIMEOUT_WARNING = 5.0
DEFAULT_TIMEOUT_CRITICAL = 10.0


class QueueWaitReports:
    """The thresholds and the thread-task runner that checks them (mixed into
    the supervisor).

    Attributes:
        timeout_warning, timeout_critical: seconds; None turns a check off.
        timeout_warning_func, timeout_critical_func: called with the record.
    """

    _limits: ThreadLimits | None  # the supervisor's, while it runs

    def __init__(self) -> None:
        super().__init__()
        self.timeout_warning: float | None = DEFAULT_TIMEOUT_WARNING
        self.timeout_warning_func: Callable[[TaskInfo], Any] | None = None
        self.timeout_critical: float | None = DEFAULT_TIMEOUT_CRITICAL
        self.timeout_critical_func: Callable[[TaskInfo], Any] | None = None

    def _run_thread_task(self, task: TaskInfo) -> list[Waiter] | None:
        """Pool thread: report a long queue wait, then run the task; the
        waiters left for the pool thread to wake (see TaskInfo.run)."""
        # queue_wait(), inlined: a call costs a no-op task 0.7% more
        # instructions (callgrind), and this runs before every thread task.
        extra = task._extra
        if extra is not None and extra.queued_at is not None:
            waited = time.time() - extra.queued_at
        else:
            waited = time.time() - task.time_queued - (task.delay or 0.0)
        critical, warning = self.timeout_critical, self.timeout_warning
        if critical is not None and waited > critical:
            _report_wait(task, waited, logging.CRITICAL, self.timeout_critical_func)
        elif warning is not None and waited > warning:
            _report_wait(task, waited, logging.WARNING, self.timeout_warning_func)
        if task._options is None:
            return task.run(True)  # atasker 0.7's options only: the short path
        run_attempt(task, self._limits)
        return None


def queue_wait(task: TaskInfo, now: float) -> float:
    """Seconds ``task`` has waited in its queue by ``now``.

    ``time_queued`` is the submit time; a delay, a retry's wait or a wait
    for dependencies is not time spent queued.
    """
    extra = task._extra
    if extra is not None and extra.queued_at is not None:
        return now - extra.queued_at
    return now - task.time_queued - (task.delay or 0.0)


def _report_wait(
    task: TaskInfo,
    waited: float,
    level: int,
    func: Callable[[TaskInfo], Any] | None,
) -> None:
    logger.log(
        level,
        "task %s (%s) started after %.3f s in the queue: "
        "increase the pool size or reduce the load",
        task.id,
        task.name,
        waited,
    )
    if func is not None:
        try:
            func(task)
        except BaseException:
            logger.exception("timeout function %r failed", func)
