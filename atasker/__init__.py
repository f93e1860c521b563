"""atasker: an in-process task supervisor, standard library only.

Importing the package creates the default ``task_supervisor``; it starts
nothing (no thread) until ``task_supervisor.start()``.
"""

from .aio.aloop import ALoop
from .aio.jobs import AsyncJob, AsyncJobScheduler
from .api import background_task, co_apply, co_mp_apply, wait_completed
from .core.attempts import Attempt
from .core.constants import (
    TASK_CRITICAL,
    TASK_HIGH,
    TASK_LOW,
    TASK_NORMAL,
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TASK_STATUS_DELAYED,
    TASK_STATUS_ERROR,
    TASK_STATUS_EXCEPTION,
    TASK_STATUS_QUEUED,
    TASK_STATUS_STARTED,
    TT_COROUTINE,
    TT_MP,
    TT_THREAD,
)
from .core.context import TaskContext, current_context
from .core.errors import (
    MaxRetriesExceededError,
    ProcessPoolBrokenError,
    ProcessPoolStartError,
    Retry,
    SoftTimeLimitExceeded,
    SupervisorNotRunningError,
    TaskCancelledError,
    TaskError,
    TaskTimeoutError,
    WaitTimeoutError,
    WorkerLostError,
    WorkerNotRunningError,
)
from .core.options import TaskOptions
from .core.task import TaskInfo, current_task
from .extras.collections import FunctionCollection, TaskCollection
from .extras.local import LocalProxy, g, set_debug
from .extras.locker import Locker
from .pools.mpworker import RemoteTraceback
from .supervisor import TaskSupervisor, task_supervisor
from .taskfunction import TaskFunction
from .workers import (
    BackgroundAsyncWorker,
    BackgroundEventWorker,
    BackgroundIntervalWorker,
    BackgroundQueueWorker,
    BackgroundWorker,
    background_worker,
)

__version__ = "0.8.0"

__all__ = [
    "TASK_CRITICAL",
    "TASK_HIGH",
    "TASK_LOW",
    "TASK_NORMAL",
    "TASK_STATUS_CANCELED",
    "TASK_STATUS_COMPLETED",
    "TASK_STATUS_DELAYED",
    "TASK_STATUS_ERROR",
    "TASK_STATUS_EXCEPTION",
    "TASK_STATUS_QUEUED",
    "TASK_STATUS_STARTED",
    "TT_COROUTINE",
    "TT_MP",
    "TT_THREAD",
    "ALoop",
    "AsyncJob",
    "AsyncJobScheduler",
    "Attempt",
    "BackgroundAsyncWorker",
    "BackgroundEventWorker",
    "BackgroundIntervalWorker",
    "BackgroundQueueWorker",
    "BackgroundWorker",
    "FunctionCollection",
    "LocalProxy",
    "Locker",
    "MaxRetriesExceededError",
    "ProcessPoolBrokenError",
    "ProcessPoolStartError",
    "RemoteTraceback",
    "Retry",
    "SoftTimeLimitExceeded",
    "SupervisorNotRunningError",
    "TaskCancelledError",
    "TaskCollection",
    "TaskContext",
    "TaskError",
    "TaskFunction",
    "TaskInfo",
    "TaskOptions",
    "TaskSupervisor",
    "TaskTimeoutError",
    "WaitTimeoutError",
    "WorkerLostError",
    "WorkerNotRunningError",
    "background_task",
    "background_worker",
    "co_apply",
    "co_mp_apply",
    "current_context",
    "current_task",
    "g",
    "set_debug",
    "task_supervisor",
    "wait_completed",
]
