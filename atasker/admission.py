"""Ready queue and the reserve rule, shared by the pools; the timer's heap.

A pool admits the head of its ready queue (highest priority, then oldest)
while fewer tasks run than the head's priority allows::

    LOW       running < pool_size
    NORMAL    running < pool_size + reserve_normal
    HIGH      running < pool_size + reserve_normal + reserve_high
    CRITICAL  always
    (pool_size=0: every priority always)

The limit grows as the priority rises, so if the head (the highest priority,
oldest task) may not start, nothing behind it may either: checking the head
alone is exact, and nothing is scanned.

Neither class here locks: the pool that owns them holds its lock around every
call.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections import deque
from collections.abc import Iterator

from .constants import PRIORITIES, TASK_CRITICAL, TASK_HIGH, TASK_LOW, TASK_NORMAL
from .task import TaskInfo

# Canceled records stay in a queue or heap until they reach its head (removing
# one from the middle is O(n)). Rebuild once they are this many and more than
# half of it, so the garbage is bounded and the rebuild cost is amortised.
COMPACT_MIN_GARBAGE = 1024


class TaskHeap:
    """A heap of ``(key, sequence, task)``; FIFO among equal keys.

    Removal is lazy: :meth:`discard` marks the record, :meth:`peek` and
    :meth:`pop` skip marked entries.
    """

    def __init__(self) -> None:
        self._entries: list[tuple[float, int, TaskInfo]] = []
        self._sequence = itertools.count()
        self._garbage = 0

    def __len__(self) -> int:
        return len(self._entries) - self._garbage

    def push(self, key: float, task: TaskInfo) -> bool:
        """Add ``task``; True if it is now the head."""
        task.in_heap = True
        entry = (key, next(self._sequence), task)
        heapq.heappush(self._entries, entry)
        return self._entries[0] is entry

    def discard(self, task: TaskInfo) -> bool:
        """Forget ``task`` if it is still here; True if it was."""
        if not task.in_heap:
            return False
        task.in_heap = False
        self._garbage += 1
        if self._garbage >= COMPACT_MIN_GARBAGE and self._garbage * 2 > len(
            self._entries
        ):
            self._entries = [e for e in self._entries if e[2].in_heap]
            heapq.heapify(self._entries)
            self._garbage = 0
        return True

    def peek(self) -> tuple[float, TaskInfo] | None:
        """The head's key and record, or None if empty."""
        entries = self._entries
        while entries and not entries[0][2].in_heap:
            heapq.heappop(entries)
            self._garbage -= 1
        if not entries:
            return None
        key, _, task = entries[0]
        return key, task

    def pop(self) -> TaskInfo:
        """Remove and return the head; call after :meth:`peek` found one."""
        task = heapq.heappop(self._entries)[2]
        task.in_heap = False
        return task

    def drain(self) -> Iterator[TaskInfo]:
        """Remove every record, yielding the live ones."""
        entries, self._entries, self._garbage = self._entries, [], 0
        for _, _, task in entries:
            if task.in_heap:
                task.in_heap = False
                yield task


class ReadyQueue:
    """Ready tasks in (priority, arrival) order: one FIFO per priority.

    With four priorities this bucket queue gives exactly the order of a heap
    of ``(priority, sequence, task)``, with O(1) push and pop and no tuple
    per task (a 50,000-task backlog made heap operations a measurable part
    of each task's cost). Removal is lazy, as in :class:`TaskHeap`.
    """

    def __init__(self) -> None:
        self._fifos: dict[int, deque[TaskInfo]] = {
            priority: deque() for priority in sorted(PRIORITIES)
        }
        self._in_order = list(self._fifos.values())
        self._live = 0
        self._garbage = 0

    def __len__(self) -> int:
        return self._live

    def push(self, task: TaskInfo) -> None:
        """Add ``task`` behind the others of its priority."""
        task.in_heap = True
        self._fifos[task.priority].append(task)
        self._live += 1

    def discard(self, task: TaskInfo) -> bool:
        """Forget ``task`` if it is still here; True if it was."""
        if not task.in_heap:
            return False
        task.in_heap = False
        self._live -= 1
        self._garbage += 1
        if self._garbage >= COMPACT_MIN_GARBAGE and self._garbage > self._live:
            for fifo in self._in_order:
                kept = [t for t in fifo if t.in_heap]
                fifo.clear()
                fifo.extend(kept)
            self._garbage = 0
        return True

    def peek(self) -> TaskInfo | None:
        """The oldest task of the highest priority, or None if empty."""
        for fifo in self._in_order:
            while fifo:
                task = fifo[0]
                if task.in_heap:
                    return task
                fifo.popleft()
                self._garbage -= 1
        return None

    def pop(self, task: TaskInfo) -> None:
        """Remove ``task``, the head that :meth:`peek` returned."""
        self._fifos[task.priority].popleft()
        task.in_heap = False
        self._live -= 1

    def drain(self) -> list[TaskInfo]:
        """Remove every task; return the live ones in order."""
        live = [t for fifo in self._in_order for t in fifo if t.in_heap]
        for fifo in self._in_order:
            fifo.clear()
        for task in live:
            task.in_heap = False
        self._live = self._garbage = 0
        return live


class Admission:
    """The ready queue of one pool and its reserve limits.

    Attributes:
        running: tasks admitted and not yet released.
        queued: live tasks in the ready queue, by priority.
    """

    def __init__(
        self, pool_size: int = 0, reserve_normal: int = 0, reserve_high: int = 0
    ) -> None:
        self.ready = ReadyQueue()
        self.running = 0
        self.queued = dict.fromkeys(PRIORITIES, 0)
        self._limits: dict[int, float] = {}
        self.configure(pool_size, reserve_normal, reserve_high)

    def configure(self, pool_size: int, reserve_normal: int, reserve_high: int) -> None:
        """Set the reserve rule (see the module docstring)."""
        if pool_size == 0:
            self._limits = dict.fromkeys(PRIORITIES, math.inf)
            return
        self._limits = {
            TASK_LOW: pool_size,
            TASK_NORMAL: pool_size + reserve_normal,
            TASK_HIGH: pool_size + reserve_normal + reserve_high,
            TASK_CRITICAL: math.inf,
        }

    def push(self, task: TaskInfo) -> None:
        """Queue ``task`` in (priority, arrival) order."""
        self.ready.push(task)
        self.queued[task.priority] += 1

    def discard(self, task: TaskInfo) -> None:
        """Forget a queued task that was canceled."""
        if self.ready.discard(task):
            self.queued[task.priority] -= 1

    def admissible(self) -> TaskInfo | None:
        """The head, if the reserve rule lets it start now; else None."""
        task = self.ready.peek()
        if task is not None and self.running < self._limits[task.priority]:
            return task
        return None

    def admit_next(self) -> TaskInfo | None:
        """Take the head if the reserve rule lets it start now; else None.

        The taken task holds a slot until :meth:`release`.
        """
        task = self.ready.peek()
        if task is None or self.running >= self._limits[task.priority]:
            return None
        self.ready.pop(task)
        self.queued[task.priority] -= 1
        self.running += 1
        return task

    def release(self) -> None:
        """A task admitted earlier has finished: free its slot."""
        self.running -= 1

    def drain(self) -> list[TaskInfo]:
        """Remove and return every queued task (supervisor stop)."""
        self.queued = dict.fromkeys(PRIORITIES, 0)
        return self.ready.drain()


class AdmittingPool:
    """What the thread and process pools share: one lock, one Admission,
    whether tasks are accepted, and waiting for the queue to drain.

    Subclasses notify ``_drained`` whenever a slot frees while
    ``_accepting`` is False.
    """

    def __init__(self, pool_size: int, reserve_normal: int, reserve_high: int) -> None:
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._admission = Admission(pool_size, reserve_normal, reserve_high)
        self._accepting = True

    def queued(self) -> dict[int, int]:
        """Tasks waiting for a slot, by priority."""
        with self._lock:
            return dict(self._admission.queued)

    def discard(self, task: TaskInfo) -> None:
        """Forget a queued task that was canceled."""
        with self._lock:
            self._admission.discard(task)
            if not self._accepting:
                self._drained.notify_all()

    def close(self, cancel_queued: bool) -> list[TaskInfo]:
        """Stop accepting tasks.

        Args:
            cancel_queued: also take every queued task out.

        Returns:
            The tasks taken out; the caller cancels them.
        """
        with self._lock:
            self._accepting = False
            return self._admission.drain() if cancel_queued else []

    def _wait_drained_locked(self, deadline: float | None, own: int = 0) -> None:
        """Wait (lock held) until nothing is queued and at most ``own``
        tasks run, or until ``deadline`` (``time.monotonic()``; None: never)."""
        self._accepting = False
        while len(self._admission.ready) or self._admission.running > own:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            self._drained.wait(remaining)
