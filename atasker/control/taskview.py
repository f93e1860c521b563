"""TaskView: what ``get_tasks()`` and ``get_info().tasks`` return.

Every unfinished record (queued, delayed, running) by id: O(queued) by
nature. Copying 100,000 of them costs milliseconds, and most callers of
``get_info()`` read its counters and never look at ``tasks``; so the call
returns this view at once, and the copy is made on first use and kept::

    get_tasks(tt)  ──>  TaskView(registry, tt)        O(1), nothing copied
    first len / iter / [] / in / == / copy()  ──>  registry.snapshot(tt)
    every later use  ──>  that same dict            (a snapshot: it does
                                                     not follow the tasks)

A read-only ``collections.abc.Mapping``, equal to a dict with the same
items (both ways round); ``dict(view)`` or ``view.copy()`` gives a dict.
"""

from __future__ import annotations

import threading
from collections.abc import ItemsView, Iterator, KeysView, Mapping, ValuesView

from ..core.registry import TaskRegistry
from ..core.task import TaskInfo


class TaskView(Mapping[str, TaskInfo]):
    """The unfinished records of a supervisor by id, read-only, copied on
    first use (see the module docstring).

    Args:
        registry: the supervisor's store of records.
        tt: only the records of this task type; None: every record.
    """

    __slots__ = ("_registry", "_tt", "_tasks", "_lock")

    def __init__(self, registry: TaskRegistry, tt: int | None = None) -> None:
        self._registry = registry
        self._tt = tt
        self._tasks: dict[str, TaskInfo] | None = None
        self._lock = threading.Lock()

    def _snapshot(self) -> dict[str, TaskInfo]:
        tasks = self._tasks
        if tasks is None:
            # One copy, even if two threads use the view first at once: each
            # must see the same items from then on.
            with self._lock:
                tasks = self._tasks
                if tasks is None:
                    tasks = self._tasks = self._registry.snapshot(self._tt)
        return tasks

    def __getitem__(self, task_id: str) -> TaskInfo:
        return self._snapshot()[task_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._snapshot())

    def __len__(self) -> int:
        return len(self._snapshot())

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._snapshot()

    def __eq__(self, other: object) -> bool:
        """Equal to a mapping with the same items (a dict, another view).

        ``dict == view`` works too: dict's own comparison gives up on a
        non-dict, and Python then asks this one.
        """
        if isinstance(other, TaskView):
            return self._snapshot() == other._snapshot()
        if isinstance(other, dict):
            return self._snapshot() == other
        if isinstance(other, Mapping):
            return self._snapshot() == dict(other.items())
        return NotImplemented

    def keys(self) -> KeysView[str]:
        return self._snapshot().keys()

    def values(self) -> ValuesView[TaskInfo]:
        return self._snapshot().values()

    def items(self) -> ItemsView[str, TaskInfo]:
        return self._snapshot().items()

    def copy(self) -> dict[str, TaskInfo]:
        """A plain dict of the same items (a new one each call).

        Returns:
            The snapshot's items, id -> record.
        """
        return dict(self._snapshot())

    def __repr__(self) -> str:
        return repr(self._snapshot())
