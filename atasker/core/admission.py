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

Each queue and heap has an owner, the container a record names in its
``_container`` field while it is held (the pool, or the timer): a record is
live here exactly while that field is the owner. Nothing here locks: the
owner holds its lock around every call. The pools' shared base class is in
:mod:`atasker.pools.pool`.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from typing import Any, Callable

from .constants import (
    PRIORITIES,
    TASK_CRITICAL,
    TASK_HIGH,
    TASK_LOW,
    TASK_NORMAL,
    TASK_STATUS_DELAYED,
    TASK_STATUS_QUEUED,
)
from .task import Container, TaskInfo

# Canceled records stay in a queue or heap until they reach its head (removing
# one from the middle is O(n)). Rebuild once they are this many and more than
# half of it, so the garbage is bounded and the rebuild cost is amortised.
# What stays is the bare record: a final record has dropped its target,
# arguments and payload, and a canceled one has no result.
COMPACT_MIN_GARBAGE = 1024


class TaskHeap:
    """A heap of ``(key, sequence, item)``, FIFO among equal keys: DELAYED
    records, and timer calls (anything with a ``_container`` field).

    Removal is lazy: :meth:`discard` clears the item's container,
    :meth:`peek` and :meth:`pop` skip entries that are no longer ours.

    Args:
        owner: the container items name while they are here.
    """

    def __init__(self, owner: Container) -> None:
        self._owner = owner
        self._entries: list[tuple[float, int, Any]] = []
        self._sequence = itertools.count()
        self._garbage = 0

    def __len__(self) -> int:
        return len(self._entries) - self._garbage

    def push(self, key: float, task: TaskInfo) -> bool:
        """Add ``task``; True if it is now the head.

        A record canceled meanwhile is not added (see :meth:`ReadyQueue.push`).
        """
        task._container = self._owner
        if task.status != TASK_STATUS_DELAYED:
            task._container = None
            return False
        return self.push_item(key, task)

    def push_item(self, key: float, item: Any) -> bool:
        """Add an item with no status to check; True if it is now the head."""
        item._container = self._owner
        entry = (key, next(self._sequence), item)
        heapq.heappush(self._entries, entry)
        return self._entries[0] is entry

    def discard(self, item: Any) -> bool:
        """Forget ``item`` if it is still here; True if it was."""
        owner = self._owner
        if item._container is not owner:
            return False
        item._container = None
        self._garbage += 1
        if self._garbage >= COMPACT_MIN_GARBAGE and self._garbage * 2 > len(
            self._entries
        ):
            self._entries = [e for e in self._entries if e[2]._container is owner]
            heapq.heapify(self._entries)
            self._garbage = 0
        return True

    def peek(self) -> tuple[float, Any] | None:
        """The head's key and item, or None if empty."""
        entries, owner = self._entries, self._owner
        while entries and entries[0][2]._container is not owner:
            heapq.heappop(entries)
            self._garbage -= 1
        if not entries:
            return None
        key, _, item = entries[0]
        return key, item

    def pop(self) -> Any:
        """Remove and return the head; call after :meth:`peek` found one."""
        item = heapq.heappop(self._entries)[2]
        item._container = None
        return item

    def drain(self, kind: type | None = None) -> list[Any]:
        """Remove the live items of ``kind`` (every live item if None) and
        return them in heap order; the others stay."""
        owner = self._owner
        taken: list[tuple[float, int, Any]] = []
        kept: list[tuple[float, int, Any]] = []
        for entry in self._entries:
            item = entry[2]
            if item._container is owner:
                (taken if kind is None or type(item) is kind else kept).append(entry)
        heapq.heapify(kept)
        self._entries, self._garbage = kept, 0
        for entry in taken:
            entry[2]._container = None
        return [entry[2] for entry in sorted(taken)]


class ReadyQueue:
    """Ready tasks in (priority, arrival) order: one FIFO per priority.

    With four priorities this bucket queue gives exactly the order of a heap
    of ``(priority, sequence, task)``, with O(1) push and pop and no tuple
    per task (a 50,000-task backlog made heap operations a measurable part
    of each task's cost). Removal is lazy, as in :class:`TaskHeap`.

    Args:
        owner: the container records name while they are here.
    """

    def __init__(self, owner: Container) -> None:
        self._owner = owner
        self._fifos: dict[int, deque[TaskInfo]] = {
            priority: deque() for priority in sorted(PRIORITIES)
        }
        self._in_order = list(self._fifos.values())
        self._live = 0
        self._garbage = 0
        # Live tasks by priority (a FIFO's length counts canceled ones too).
        self.queued = dict.fromkeys(PRIORITIES, 0)

    def __len__(self) -> int:
        return self._live

    def push(self, task: TaskInfo) -> bool:
        """Add ``task`` behind the others of its priority; False if it was
        canceled meanwhile (it is not added).

        The container is written before the status is read, and a cancel
        writes the status before it reads the container: one of the two sees
        the other, so a record canceled at this moment is either not added
        or removed by the cancel (which waits for the owner's lock).
        """
        task._container = self._owner
        if task.status != TASK_STATUS_QUEUED:
            task._container = None
            return False
        self._fifos[task.priority].append(task)
        self._live += 1
        self.queued[task.priority] += 1
        return True

    def discard(self, task: TaskInfo) -> bool:
        """Forget ``task`` if it is still here; True if it was."""
        owner = self._owner
        if task._container is not owner:
            return False
        task._container = None
        self._live -= 1
        self.queued[task.priority] -= 1
        self._garbage += 1
        if self._garbage >= COMPACT_MIN_GARBAGE and self._garbage > self._live:
            for fifo in self._in_order:
                kept = [t for t in fifo if t._container is owner]
                fifo.clear()
                fifo.extend(kept)
            self._garbage = 0
        return True

    def peek(self) -> TaskInfo | None:
        """The oldest task of the highest priority, or None if empty."""
        owner = self._owner
        for fifo in self._in_order:
            while fifo:
                task = fifo[0]
                if task._container is owner:
                    return task
                fifo.popleft()
                self._garbage -= 1
        return None

    def pop_admitted(self, limits: dict[int, float], running: int) -> TaskInfo | None:
        """Remove and return the head if ``running < limits[its priority]``;
        else None (:meth:`peek` and :meth:`pop` in one call: a pool takes
        its next task so, once per task)."""
        owner = self._owner
        for fifo in self._in_order:
            while fifo:
                task = fifo[0]
                if task._container is not owner:  # canceled meanwhile
                    fifo.popleft()
                    self._garbage -= 1
                    continue
                if running >= limits[task.priority]:
                    return None
                fifo.popleft()
                task._container = None
                self._live -= 1
                self.queued[task.priority] -= 1
                return task
        return None

    def drain(self) -> list[TaskInfo]:
        """Remove every task; return the live ones in order."""
        owner = self._owner
        live = [t for fifo in self._in_order for t in fifo if t._container is owner]
        for fifo in self._in_order:
            fifo.clear()
        for task in live:
            task._container = None
        self._live = self._garbage = 0
        self.queued = dict.fromkeys(PRIORITIES, 0)
        return live


class Admission:
    """The ready queue of one pool and its reserve limits.

    Args:
        owner: the pool (what queued records name as their container).
        pool_size, reserve_normal, reserve_high: the reserve rule.

    Attributes:
        running: tasks admitted and not yet released.
        queued: live tasks in the ready queue, by priority.
    """

    def __init__(
        self,
        owner: Container,
        pool_size: int = 0,
        reserve_normal: int = 0,
        reserve_high: int = 0,
    ) -> None:
        self.ready = ReadyQueue(owner)
        # Queue a task in (priority, arrival) order; False if it was canceled
        # meanwhile (not queued). The queue's own method: one call, not two.
        self.push: Callable[[TaskInfo], bool] = self.ready.push
        self.running = 0
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

    @property
    def queued(self) -> dict[int, int]:
        """Live tasks in the ready queue, by priority."""
        return self.ready.queued

    def discard(self, task: TaskInfo) -> None:
        """Forget a queued task that was canceled."""
        self.ready.discard(task)

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
        if not self.ready._live:  # (most calls, when the pool keeps up)
            return None
        task = self.ready.pop_admitted(self._limits, self.running)
        if task is not None:
            self.running += 1
        return task

    def admit_now(self, task: TaskInfo) -> bool:
        """Take ``task`` without queueing it, if nothing is queued and the
        reserve rule lets it start now (it would be the head, admitted at
        once). The taken task holds a slot until :meth:`release`.

        A record canceled meanwhile may be taken: it holds its slot until
        the worker finds it final, as a head canceled after its admission.
        """
        if self.ready._live or self.running >= self._limits[task.priority]:
            return False
        self.running += 1
        return True

    def reclaim(self) -> None:
        """A task that lent its slot while it blocked runs again: it holds a
        slot once more, even past the limits, until it ends."""
        self.running += 1

    def release(self) -> None:
        """A task admitted earlier has finished: free its slot."""
        self.running -= 1

    def drain(self) -> list[TaskInfo]:
        """Remove and return every queued task (supervisor stop)."""
        return self.ready.drain()
