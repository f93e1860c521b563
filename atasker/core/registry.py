"""The look-up store of task records.

Unfinished records are kept until they finish. Finished ones are kept in
finish order for look-up and dropped oldest first once there are more than
``keep_finished`` or they are older than ``keep_finished_age`` seconds
(``keep_finished=0`` keeps none: a finished task is then looked up as None,
as atasker 0.7 documents). The pruning happens when a task finishes, so no
thread sweeps the store and memory stays flat however many tasks run. A
record dropped here is referenced by nothing of the package's: its result
goes with it once the user drops their handles.

Nothing here is scanned for statistics: the finished totals are counters,
and so is the number of records waiting for their dependencies
(:mod:`atasker.core.deps` keeps it here, one store per supervisor).
:meth:`TaskRegistry.snapshot` copies the unfinished records under the lock
at C speed (a few ms for 100,000) and filters outside it, so a reader never
holds up a submit for longer than that copy.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Protocol

from .constants import (
    FINAL_STATUSES,
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TASK_STATUS_ERROR,
    TASK_STATUS_EXCEPTION,
)
from .task import TaskInfo


class DependencyCount(Protocol):
    """What the registry counts a dependency wait by (deps.DependencyWait):
    whether it is counted now, read and written under the registry's lock."""

    counted: bool


class TaskRegistry:
    """Records by id, with totals of finished tasks by outcome."""

    def __init__(self, keep_finished: int, keep_finished_age: float | None) -> None:
        self.keep_finished = keep_finished
        self.keep_finished_age = keep_finished_age
        self._lock = threading.Lock()
        self._active: dict[str, TaskInfo] = {}
        # OrderedDict, not dict: deleting the oldest entry of a plain dict
        # leaves a hole that next(iter(d)) must skip, so a long-running store
        # slows down; popitem(last=False) is O(1).
        self._finished: OrderedDict[str, TaskInfo] = OrderedDict()
        self._outcomes = dict.fromkeys(FINAL_STATUSES, 0)
        # Records DELAYED until their dependencies complete (see deps.py).
        self._waiting = 0

    def add(self, task: TaskInfo) -> None:
        """Register an accepted task.

        Raises:
            ValueError: an unfinished task already has this id.
        """
        with self._lock:
            if task.id in self._active:
                raise ValueError(f"task_id {task.id!r} is already in use")
            self._active[task.id] = task

    def remove(self, task: TaskInfo) -> None:
        """Forget a task that was refused before it was accepted."""
        with self._lock:
            self._active.pop(task.id, None)

    def finish(self, task: TaskInfo) -> None:
        """Move a task that reached its final status to the finished store."""
        with self._lock:
            if self._active.pop(task.id, None) is None:
                return  # refused before it was accepted: not counted
            self._outcomes[task.status] += 1
            finished = self._finished
            # A reused id: drop the old record first, so the new one goes to
            # the end (assigning to an existing key keeps its old place, and
            # the store must stay in finish order for the age check).
            finished.pop(task.id, None)
            if self.keep_finished <= 0:
                return  # nothing kept: get() of a finished task is None
            finished[task.id] = task
            while len(finished) > self.keep_finished:
                finished.popitem(last=False)
            if self.keep_finished_age is not None:
                oldest_allowed = time.time() - self.keep_finished_age
                while finished:
                    oldest = next(iter(finished.values()))
                    if (oldest.time_completed or 0) >= oldest_allowed:
                        break
                    finished.popitem(last=False)

    def drop_finished_before(self, time_completed: float) -> list[TaskInfo]:
        """Drop the finished records completed before ``time_completed``
        (a ``time.time()`` value); those dropped, oldest first."""
        dropped = []
        with self._lock:
            finished = self._finished
            while finished:
                oldest = next(iter(finished.values()))
                if (oldest.time_completed or 0) >= time_completed:
                    break
                dropped.append(finished.popitem(last=False)[1])
        return dropped

    @property
    def completed(self) -> int:
        """Tasks that returned a value."""
        return self._outcomes[TASK_STATUS_COMPLETED]

    @property
    def failed(self) -> int:
        """Tasks that raised (status ERROR or EXCEPTION)."""
        return self._outcomes[TASK_STATUS_ERROR] + self._outcomes[TASK_STATUS_EXCEPTION]

    @property
    def canceled(self) -> int:
        """Tasks canceled before they ran."""
        return self._outcomes[TASK_STATUS_CANCELED]

    def get(self, task_id: str) -> TaskInfo | None:
        """The record with ``task_id``, unfinished or still kept; else None."""
        with self._lock:
            task = self._active.get(task_id)
            return task if task is not None else self._finished.get(task_id)

    def active(self) -> list[TaskInfo]:
        """Every unfinished record, oldest first."""
        with self._lock:
            return list(self._active.values())

    def snapshot(self, tt: int | None = None) -> dict[str, TaskInfo]:
        """The unfinished records by id, oldest first.

        Args:
            tt: only the records of this task type; None: all of them.

        Returns:
            A new dict: copied under the lock, filtered after it.
        """
        with self._lock:
            records = dict(self._active)
        if tt is None:
            return records
        return {task_id: task for task_id, task in records.items() if task.tt == tt}

    @property
    def waiting_for_dependencies(self) -> int:
        """Records DELAYED until their dependencies complete."""
        return self._waiting

    def dependency_wait_began(self, wait: DependencyCount) -> None:
        """Count a record that waits for its dependencies from now on."""
        with self._lock:
            wait.counted = True
            self._waiting += 1

    def dependency_wait_ended(self, wait: DependencyCount) -> None:
        """Its wait is over (released, or the record is final); counted out
        once, however many threads say so."""
        with self._lock:
            if wait.counted:
                wait.counted = False
                self._waiting -= 1

    def finished_count(self) -> int:
        """Finished records kept now."""
        return len(self._finished)
