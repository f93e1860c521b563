"""The class tasks every supervisor has (pytask's monitor and cleanup).

``atasker/monitor`` reports, every ``interval`` seconds, the tasks running
longer than ``task_timeout`` (``stuck``) and the pools whose oldest queued
task waited longer than the supervisor's ``timeout_warning``
(``saturated``). ``atasker/cleanup`` drops, every ``interval`` seconds, the
finished records older than ``max_age`` from the look-up store, and hands
each to the function registered under the name ``handler``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ..core import names
from ..core.constants import (
    TASK_CRITICAL,
    TASK_STATUS_QUEUED,
    TASK_STATUS_STARTED,
    TT_MP,
    TT_THREAD,
)
from ..core.task import TaskInfo, current_task
from ..core.validation import check_limit
from ..pools.queuewait import queue_wait
from .base import Task

logger = logging.getLogger("atasker")

POOL_NAMES = {TT_THREAD: "thread", TT_MP: "process"}


def _seconds(value: Any, argument: str) -> float:
    """A number of seconds > 0 (the data of a built-in task)."""
    seconds = check_limit(value, argument)
    if seconds is None:
        raise TypeError(f"{argument} must be a number of seconds > 0; got None")
    return seconds


def _supervisor() -> Any:
    """The supervisor of the task running in this thread."""
    record = current_task()
    assert record is not None
    return record._owner


class _Periodic(Task):
    """A built-in task: one round every ``interval`` seconds until stopped,
    in a thread that runs even when the pools are full; its data checked
    at ``start_task`` (by making an instance)."""

    PRIORITY = TASK_CRITICAL
    interval: float

    @classmethod
    def _check(cls, data: dict[str, Any]) -> None:
        super()._check(data)
        cls(**data)

    def start(self) -> None:
        supervisor = _supervisor()
        stopping = self.stopping
        assert isinstance(stopping, threading.Event)
        while not stopping.wait(self.interval):
            self.round(supervisor)

    def round(self, supervisor: Any) -> None:
        raise NotImplementedError


class Monitor(_Periodic):
    """Reports stuck tasks and saturated pools (see the module docstring)."""

    NAME = "atasker/monitor"

    def __init__(self, interval: float = 10, task_timeout: float = 60) -> None:
        self.interval = _seconds(interval, "interval")
        self.task_timeout = _seconds(task_timeout, "task_timeout")

    def round(self, supervisor: Any) -> None:
        """One round: emit ``stuck`` and ``saturated`` events, and log them."""
        now = time.time()
        waits: dict[str, tuple[float, int]] = {}
        for record in supervisor._registry.active():
            if record.status == TASK_STATUS_STARTED and record.id != self.id:
                seconds = now - (record.time_started or now)
                if seconds > self.task_timeout:
                    self._stuck(record, seconds)
            elif record.status == TASK_STATUS_QUEUED and record.tt in POOL_NAMES:
                pool = POOL_NAMES[record.tt]
                waited, count = waits.get(pool, (0.0, 0))
                waits[pool] = (max(waited, queue_wait(record, now)), count + 1)
        warning = supervisor.timeout_warning
        for pool, (waited, count) in waits.items():
            if warning is not None and waited > warning:
                logger.warning(
                    "%s pool saturated: %d tasks queued, the oldest for %.3f s",
                    pool,
                    count,
                    waited,
                )
                self.emit(
                    "saturated", {"pool": pool, "waited": waited, "queued": count}
                )

    def _stuck(self, record: TaskInfo, seconds: float) -> None:
        logger.warning(
            "task %s (%s) has run for %.3f s (task_timeout: %s s)",
            record.id,
            record.name,
            seconds,
            self.task_timeout,
        )
        self.emit(
            "stuck",
            {"task_id": record.id, "task_name": record.name, "seconds": seconds},
        )


class Cleanup(_Periodic):
    """Drops old finished records (see the module docstring)."""

    NAME = "atasker/cleanup"

    def __init__(
        self, interval: float = 60, max_age: float = 3600, handler: str | None = None
    ) -> None:
        self.interval = _seconds(interval, "interval")
        self.max_age = _seconds(max_age, "max_age")
        self.handler = None
        if handler is not None:
            task_function = names.lookup(handler)
            self.handler = getattr(task_function, "__atasker_function__", task_function)

    def round(self, supervisor: Any) -> None:
        """One round: drop the records, call the handler with each."""
        dropped = supervisor._registry.drop_finished_before(time.time() - self.max_age)
        if not dropped:
            return
        handler = self.handler
        if handler is not None:
            for record in dropped:
                try:
                    handler(record)
                except Exception:  # user code: the next record still goes
                    logger.exception(
                        "cleanup handler %r failed on task %s", handler, record.id
                    )
        self.emit("cleaned", {"dropped": len(dropped)})


BUILTIN_TASKS = (Monitor, Cleanup)
