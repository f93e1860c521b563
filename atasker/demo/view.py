"""The view: the supervisor as its events tell it, counted by kind, state and
priority, with the recent notable events."""

from __future__ import annotations

import collections
import logging
import statistics
import threading
import time
from typing import Any, NamedTuple

from ..core.constants import PRIORITIES
from ..core.events import TaskEvent
from .catalogue import (
    CANCELED,
    CANCELS,
    CATALOGUE,
    CRASH,
    CRASHES,
    INCIDENTS,
    KINDS,
    OVERTIME,
    PROCESS,
    RETRIES,
    TIME_LIMITS,
    Kind,
)
from .tasks import INDEXER

RECENT_WAITS = 200  # queue waits kept by kind and priority, for the median
LOG_KEPT = 100  # recent notable events kept

FINAL_EVENTS = frozenset(("success", "error", "exception", "canceled"))


class LogEntry(NamedTuple):
    seq: int
    at: float  # seconds since the demo started
    tag: str  # "crash", "time limit", "retry", "cancel", "class task", ...
    text: str


class KindStats:
    """The tasks of one kind (thread, process, coroutine)."""

    __slots__ = (
        "submitted",
        "queued",
        "running",
        "done",
        "failed",
        "canceled",
        "retries",
        "done_times",
    )

    def __init__(self) -> None:
        self.submitted = self.queued = self.running = 0
        self.done = self.failed = self.canceled = self.retries = 0
        # When tasks succeeded, over the last second: the rate.
        self.done_times: collections.deque[float] = collections.deque()

    def rate(self, now: float) -> int:
        """Tasks that succeeded in the second before ``now``."""
        times = self.done_times
        while times and times[0] <= now - 1.0:
            times.popleft()
        return len(times)


class QueueStats:
    """The tasks of one kind and priority waiting for their pool."""

    __slots__ = ("queued", "started", "longest", "waits")

    def __init__(self) -> None:
        self.queued = self.started = 0
        self.longest = 0.0
        self.waits: collections.deque[float] = collections.deque(maxlen=RECENT_WAITS)

    def add_wait(self, seconds: float) -> None:
        self.started += 1
        self.longest = max(self.longest, seconds)
        self.waits.append(seconds)

    def median(self) -> float | None:
        return statistics.median(self.waits) if self.waits else None


class OpenTask:
    """A task seen queued and not ended yet."""

    __slots__ = ("kind", "queued_at", "attempts", "running")

    def __init__(self, kind: Kind | None, queued_at: float) -> None:
        self.kind = kind
        self.queued_at = queued_at
        self.attempts = 0
        self.running = False


class IndexerState:
    __slots__ = ("done", "total", "status")

    def __init__(self) -> None:
        self.done = self.total = 0
        self.status = "not started"


class View:
    """The supervisor as its events tell it. ``on_event`` runs on the
    subscription's thread; the screen reads under ``lock``."""

    def __init__(self, started_at: float) -> None:
        self.lock = threading.Lock()
        self._all_ended = threading.Condition(self.lock)
        self.started_at = started_at  # time.time(), as the events' times
        self.kinds = {kind: KindStats() for kind in KINDS}
        self.queues = {Kind(k, p): QueueStats() for k in KINDS for p in PRIORITIES}
        self.indexer = IndexerState()
        self.incidents = dict.fromkeys(INCIDENTS, 0)
        self.process_done_after_incident = 0
        self.events = 0
        self.stopping = False
        self.log: collections.deque[LogEntry] = collections.deque(maxlen=LOG_KEPT)
        # Set at each notable event: the main thread shows it at once.
        self.notable = threading.Event()
        self._seq = 0
        self._open: dict[str, OpenTask] = {}
        # A crash or time limit that the process pool has yet to be seen
        # surviving (by a process task that succeeds): (what, when).
        self._recovery: tuple[str, float] | None = None

    @property
    def unfinished(self) -> int:
        """Tasks seen queued that have not ended."""
        with self.lock:
            return len(self._open)

    def wait_all_ended(self, timeout: float) -> bool:
        """Wait until every task seen queued has been seen ending; False if
        some had not within ``timeout`` seconds."""
        with self._all_ended:
            return self._all_ended.wait_for(lambda: not self._open, timeout)

    def queued(self, kind: str) -> int:
        with self.lock:
            return self.kinds[kind].queued

    def note(self, tag: str, text: str) -> None:
        """Add a notable event of the demo's own."""
        with self.lock:
            self._note(time.time(), tag, text)

    def stop_began(self, text: str) -> None:
        """The demo stops: what is canceled from now on is not news."""
        with self.lock:
            self.stopping = True
            self._note(time.time(), "stop", text)

    def entries_after(self, seq: int) -> list[LogEntry]:
        with self.lock:
            return [entry for entry in self.log if entry.seq > seq]

    def on_event(self, event: TaskEvent) -> None:
        """The subscription's callback: one event of one task."""
        with self.lock:
            self.events += 1
            if event.event == "queued":
                kind = CATALOGUE.get(event.task_name or "")
                self._queued(event.task_id, kind, event.time)
                return
            task = self._open.get(event.task_id)
            if task is None:  # queued before the subscription: not the demo's
                return
            if event.event == "started":
                self._started(event, task)
            elif event.event == "retry":
                self._retried(event, task)
            elif event.event in FINAL_EVENTS:
                del self._open[event.task_id]
                self._ended(event, task)
                if not self._open:
                    self._all_ended.notify_all()
            else:
                self._emitted(event)

    def _queued(self, task_id: str, kind: Kind | None, at: float) -> None:
        self._open[task_id] = OpenTask(kind, at)
        if kind is not None:
            stats = self.kinds[kind.kind]
            stats.submitted += 1
            stats.queued += 1
            self.queues[kind].queued += 1

    def _started(self, event: TaskEvent, task: OpenTask) -> None:
        task.attempts += 1
        task.running = True
        if task.kind is None:
            return
        stats = self.kinds[task.kind.kind]
        stats.running += 1
        if task.attempts == 1:  # a retry's wait is its delay, not the queue's
            stats.queued -= 1
            queue = self.queues[task.kind]
            queue.queued -= 1
            queue.add_wait(event.time - task.queued_at)
        if event.task_name == INDEXER and task.attempts == 1:
            self.indexer.status = "running"
            self._note(event.time, "class task", f"{INDEXER} started by start_task")

    def _retried(self, event: TaskEvent, task: OpenTask) -> None:
        if task.kind is not None:
            stats = self.kinds[task.kind.kind]
            stats.retries += 1
            if task.running:
                stats.running -= 1
        task.running = False
        self.incidents[RETRIES] += 1
        self._note(
            event.time,
            "retry",
            f"{event.task_name}: attempt {task.attempts} failed ({event.data}); "
            "it runs again",
        )

    def _ended(self, event: TaskEvent, task: OpenTask) -> None:
        outcome, name = event.event, event.task_name or event.task_id
        if task.kind is not None:
            stats = self.kinds[task.kind.kind]
            if task.running:
                stats.running -= 1
            elif task.attempts == 0:
                stats.queued -= 1
                self.queues[task.kind].queued -= 1
            if outcome == "success":
                stats.done += 1
                stats.done_times.append(event.time)
            elif outcome == "canceled":
                stats.canceled += 1
            else:
                stats.failed += 1
        if outcome == "exception":
            self._failed(event, name)
        elif outcome == "canceled":
            self._canceled(event, name, task)
        elif outcome == "success":
            if task.attempts > 1:
                self._note(
                    event.time, "retry", f"{name}: succeeded on attempt {task.attempts}"
                )
            if task.kind is not None and task.kind.kind == PROCESS:
                self._process_succeeded(event, name)
        if name == INDEXER:
            self._indexer_ended(event)

    def _canceled(self, event: TaskEvent, name: str, task: OpenTask) -> None:
        if name == CANCELED:
            self.incidents[CANCELS] += 1
        elif self.stopping or event.data == "stopped":
            # What the stop cancels. (A coroutine task canceled by the stop
            # says "canceled", not "stopped": see the flag.)
            return
        when = "while running" if task.running else "before it started"
        self._note(event.time, "cancel", f"{name}: canceled {when} ({event.data})")

    def _failed(self, event: TaskEvent, name: str) -> None:
        # "... task <id> (<name>) ..." says again what the line starts with.
        reason = last_line(event.data).replace(
            f"task {event.task_id} ({name})", "the task"
        )
        if name == CRASH:
            self.incidents[CRASHES] += 1
            self._recovery = ("crash", event.time)
            self._note(event.time, "crash", f"{name}: {reason}")
        elif name == OVERTIME:
            self.incidents[TIME_LIMITS] += 1
            self._recovery = ("time limit", event.time)
            self._note(event.time, "time limit", f"{name}: {reason}")
        else:
            self._note(event.time, "exception", f"{name}: {reason}")

    def _process_succeeded(self, event: TaskEvent, name: str) -> None:
        if self.incidents[CRASHES] or self.incidents[TIME_LIMITS]:
            self.process_done_after_incident += 1
        if self._recovery is not None:
            what, when = self._recovery
            self._recovery = None
            self._note(
                event.time,
                "pool",
                f"the process pool goes on: {name} succeeded "
                f"{event.time - when:.2f} s after the {what}",
            )

    def _indexer_ended(self, event: TaskEvent) -> None:
        state = self.indexer
        if event.event == "canceled":
            state.status = "stopped" if event.data == "stopped" else "canceled"
            text = (
                f"{INDEXER}: stopped at {state.done}/{state.total} batches; "
                f"its record ends CANCELED ({event.data})"
            )
        elif event.event == "success":
            state.status = "finished"
            text = f"{INDEXER}: finished, {event.data} batches"
        else:
            state.status = "failed"
            text = f"{INDEXER}: failed: {last_line(event.data)}"
        self._note(event.time, "class task", text)

    def _emitted(self, event: TaskEvent) -> None:
        data = event.data if isinstance(event.data, dict) else {}
        done, total = data.get("done"), data.get("total")
        if event.task_name != INDEXER or not (
            isinstance(done, int) and isinstance(total, int) and total > 0
        ):
            self._note(event.time, "event", f"{event.task_name}: {event.event} {data}")
            return
        state = self.indexer
        if event.event == "progress":
            quarter = state.done * 4 // total if state.total else 0
            state.done, state.total = done, total
            if done * 4 // total > quarter:
                self._note(
                    event.time,
                    "class task",
                    f"{INDEXER}: emitted progress {done * 100 // total}% "
                    f"({done}/{total} batches)",
                )
        elif event.event == "stopping":
            state.done, state.total = done, total
            self._note(
                event.time,
                "class task",
                f"{INDEXER}: stop_task called its stop() at {done}/{total} batches",
            )

    def _note(self, at: float, tag: str, text: str) -> None:
        self._seq += 1
        self.log.append(LogEntry(self._seq, at - self.started_at, tag, text))
        self.notable.set()


def last_line(traceback_text: Any) -> str:
    """``WorkerLostError: ...`` of a traceback's text (its last line, the
    exception's module dropped)."""
    lines = [line for line in str(traceback_text).splitlines() if line.strip()]
    line = lines[-1] if lines else str(traceback_text)
    head, colon, message = line.partition(": ")
    if colon and " " not in head:
        return f"{head.rsplit('.', 1)[-1]}: {message}"
    return line


class ViewLog(logging.Handler):
    """Warnings of the atasker logger go to the view's recent events: written
    to stderr they would tear the in-place view."""

    def __init__(self, view: View) -> None:
        super().__init__(logging.WARNING)
        self._view = view

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._view.note("log", f"{record.levelname}: {record.getMessage()}")
        except Exception:
            self.handleError(record)
