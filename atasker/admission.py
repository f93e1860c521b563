"""Ready heap and the reserve rule, shared by the pools.

A pool admits the head of its ready heap while fewer tasks run than the
head's priority allows::

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
from collections.abc import Iterator

from .constants import PRIORITIES, TASK_CRITICAL, TASK_HIGH, TASK_LOW, TASK_NORMAL
from .task import TaskInfo

# Canceled records stay in a heap until they reach its top (removing one from
# the middle is O(n)). Rebuild the heap once they are this many and more than
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


class Admission:
    """The ready heap of one pool and its reserve limits.

    Attributes:
        running: tasks admitted and not yet released.
        queued: live records in the ready heap, by priority.
    """

    def __init__(
        self, pool_size: int = 0, reserve_normal: int = 0, reserve_high: int = 0
    ) -> None:
        self.ready = TaskHeap()
        self.running = 0
        self.queued = dict.fromkeys(PRIORITIES, 0)
        self._limits: dict[int, float] = {}
        self.configure(pool_size, reserve_normal, reserve_high)

    def configure(self, pool_size: int, reserve_normal: int, reserve_high: int) -> None:
        """Set the reserve rule (see the module docstring)."""
        if pool_size == 0:
            unlimited = math.inf
            self._limits = dict.fromkeys(PRIORITIES, unlimited)
            return
        self._limits = {
            TASK_LOW: pool_size,
            TASK_NORMAL: pool_size + reserve_normal,
            TASK_HIGH: pool_size + reserve_normal + reserve_high,
            TASK_CRITICAL: math.inf,
        }

    def limit(self, priority: int) -> float:
        """How many tasks may run when one of ``priority`` starts."""
        return self._limits[priority]

    def push(self, task: TaskInfo) -> None:
        """Queue ``task`` in (priority, arrival) order."""
        self.ready.push(task.priority, task)
        self.queued[task.priority] += 1

    def discard(self, task: TaskInfo) -> None:
        """Forget a queued task that was canceled."""
        if self.ready.discard(task):
            self.queued[task.priority] -= 1

    def admissible(self) -> TaskInfo | None:
        """The head, if the reserve rule lets it start now; else None."""
        head = self.ready.peek()
        if head is None:
            return None
        task = head[1]
        if self.running < self._limits[task.priority]:
            return task
        return None

    def admit(self) -> TaskInfo:
        """Take the head found by :meth:`admissible`; it now holds a slot."""
        task = self.ready.pop()
        self.queued[task.priority] -= 1
        self.running += 1
        return task

    def admit_next(self) -> TaskInfo | None:
        """Take the head if the reserve rule lets it start now; else None."""
        if self.admissible() is None:
            return None
        return self.admit()

    def release(self) -> None:
        """A task admitted earlier has finished: free its slot."""
        self.running -= 1

    def drain(self) -> list[TaskInfo]:
        """Remove and return every queued task (supervisor stop)."""
        tasks = list(self.ready.drain())
        self.queued = dict.fromkeys(PRIORITIES, 0)
        return tasks
