"""atasker: an in-process task supervisor, standard library only.

Importing the package creates the default ``task_supervisor``; it starts
nothing (no thread) until ``task_supervisor.start()``.
"""

from .aio.aloop import ALoop
from .aio.jobs import AsyncJob, AsyncJobScheduler
from .api import background_task, co_apply, co_mp_apply, wait_completed
from .classtasks.base import Task
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
    Replace,
    Retry,
    SoftTimeLimitExceeded,
    SupervisorNotRunningError,
    TaskCancelledError,
    TaskError,
    TaskTimeoutError,
    UnknownTaskError,
    WaitTimeoutError,
    WorkerLostError,
    WorkerNotRunningError,
)
from .core.events import (
    LIFECYCLE_EVENTS,
    EventStream,
    Subscription,
    TaskEvent,
)
from .core.names import registered as registered_tasks
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
from .workflow.results import GroupResult, MapResult
from .workflow.signature import Signature, chain, chord, group, signature
from .workflow.waits import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    FIRST_EXCEPTION,
    as_completed,
    wait,
)

__version__ = "0.8.0"

__all__ = [
    "ALL_COMPLETED",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "LIFECYCLE_EVENTS",
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
    "EventStream",
    "FunctionCollection",
    "GroupResult",
    "LocalProxy",
    "Locker",
    "MapResult",
    "MaxRetriesExceededError",
    "ProcessPoolBrokenError",
    "ProcessPoolStartError",
    "RemoteTraceback",
    "Replace",
    "Retry",
    "Signature",
    "SoftTimeLimitExceeded",
    "Subscription",
    "SupervisorNotRunningError",
    "Task",
    "TaskCancelledError",
    "TaskCollection",
    "TaskContext",
    "TaskError",
    "TaskEvent",
    "TaskFunction",
    "TaskInfo",
    "TaskOptions",
    "TaskSupervisor",
    "TaskTimeoutError",
    "UnknownTaskError",
    "WaitTimeoutError",
    "WorkerLostError",
    "WorkerNotRunningError",
    "as_completed",
    "background_task",
    "background_worker",
    "chain",
    "chord",
    "co_apply",
    "co_mp_apply",
    "current_context",
    "current_task",
    "g",
    "group",
    "registered_tasks",
    "set_debug",
    "signature",
    "task_supervisor",
    "wait",
    "wait_completed",
]
