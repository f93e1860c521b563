"""The demo's tasks: functions and the class task. Worker processes import
this module by name to run a process task, so what they run lives at its top
level."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from typing import Any

from ..classtasks.base import Task
from ..core.constants import TASK_HIGH
from ..core.context import TaskContext
from ..core.errors import TaskError

CRASH_EXIT_CODE = 3  # crash_worker's exit status

# The class task indexes batches for about INDEXER_SPAN times the demo's
# length, so it still runs at the end, when stop_task stops it.
INDEXER_SPAN = 1.5
INDEXER_MIN_BATCHES = 20
INDEXER_MAX_BATCH_SECONDS = 0.5


def simulated_work(seconds: float, fail: bool) -> float:
    """A thread or process task of the feed: 'work' for a while, maybe fail."""
    time.sleep(seconds)
    if fail:
        raise TaskError("simulated failure")
    return seconds


async def nap(seconds: float) -> float:
    """A coroutine task of the feed (and, for a minute, the one canceled)."""
    await asyncio.sleep(seconds)
    return seconds


def crash_worker() -> None:
    """A process task whose worker dies: it fails with WorkerLostError."""
    os._exit(CRASH_EXIT_CODE)


def overrun(seconds: float) -> None:
    """A process task that outlives its time limit: its worker is killed."""
    time.sleep(seconds)


def flaky_fetch(context: TaskContext) -> str:
    """A thread task (``bind=True``) whose first attempt fails."""
    if context.retries == 0:
        raise ConnectionError("connection reset by peer")
    return "fetched"


def ignore_interrupts() -> None:
    """The worker processes' initializer. A Ctrl-C at a terminal signals the
    whole process group; the demo's process alone handles it (it stops the
    workers), or the running process tasks would fail with
    KeyboardInterrupt first. (Where threads have signal masks, the workers
    never see SIGINT anyway: see ``interrupts.threads_deaf_to_ctrl_c``.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


INDEXER = "demo/indexer"


class Indexer(Task):
    """A class task: indexes ``batches`` batches, one every
    ``seconds_per_batch``, emitting "progress" after each; stops early when
    asked (``stop_task``). Its result is the number of batches done."""

    NAME = INDEXER
    PRIORITY = TASK_HIGH

    def __init__(self, batches: int, seconds_per_batch: float) -> None:
        self.batches = batches
        self.seconds_per_batch = seconds_per_batch
        self.done = 0

    def start(self) -> int:
        stopping = self.stopping
        assert isinstance(stopping, threading.Event)  # start is not async
        while self.done < self.batches and not stopping.wait(self.seconds_per_batch):
            self.done += 1
            self.emit("progress", {"done": self.done, "total": self.batches})
        return self.done

    def stop(self) -> None:
        # Called once, from the thread that asked; start() sees `stopping`.
        self.emit("stopping", {"done": self.done, "total": self.batches})


def indexer_data(seconds: float) -> dict[str, Any]:
    """The class task's data for a demo of ``seconds``."""
    span = seconds * INDEXER_SPAN
    per_batch = min(INDEXER_MAX_BATCH_SECONDS, span / INDEXER_MIN_BATCHES)
    return {"batches": max(1, round(span / per_batch)), "seconds_per_batch": per_batch}
