"""Workers: objects that run an executor again and again, on a condition.

The base class and its lifecycle are in :mod:`atasker.workers.worker`, one
run and where it runs in :mod:`atasker.workers.workerrun`, the kinds (queue,
event, interval) and ``background_worker`` in :mod:`atasker.workers.kinds`.
``atasker.workers`` keeps the names atasker 0.7's module of that name had.
"""

from ..core.errors import WorkerNotRunningError
from .kinds import (
    BackgroundAsyncWorker,
    BackgroundEventWorker,
    BackgroundIntervalWorker,
    BackgroundQueueWorker,
    background_worker,
)
from .worker import BackgroundWorker

__all__ = [
    "BackgroundAsyncWorker",
    "BackgroundEventWorker",
    "BackgroundIntervalWorker",
    "BackgroundQueueWorker",
    "BackgroundWorker",
    "WorkerNotRunningError",
    "background_worker",
]
