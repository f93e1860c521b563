"""Look-up and statistics: ``get_task``, ``get_tasks``, ``get_info`` (a
snapshot of a supervisor's state, atasker 0.7's fields first) and 0.7's
``mark_task_completed``.

``get_info()`` costs O(running), however many tasks are queued: nothing
here scans the unfinished records. Where each field comes from::

    queued, mp_queued, pools     the pools' counters
    thread_tasks, mp_tasks       the records the pools' threads and worker
                                 processes run now (pool.running_tasks())
    delayed                      the timer's count + the registry's count of
                                 records waiting for their dependencies +
                                 thread tasks between two attempts (below)
    completed, failed, ...       the registry's counters
    tasks                        a TaskView: copied on first use, not here

``get_tasks()`` is a TaskView too: O(1) at the call.
"""

from __future__ import annotations

import types
from typing import Any

from ..core.constants import (
    PRIORITIES,
    TASK_STATUS_DELAYED,
    TASK_STATUS_STARTED,
    TT_MP,
    TT_THREAD,
)
from ..core.registry import TaskRegistry
from ..core.task import TaskInfo, current_task
from .taskview import TaskView


class TaskLookup:
    """The look-up calls of a supervisor (mixed into it)."""

    _registry: TaskRegistry

    def get_task(self, task_id: TaskInfo | str) -> TaskInfo | None:
        """The record with ``task_id`` while it is unfinished or kept; else
        None (as in atasker 0.7: None means completed)."""
        if isinstance(task_id, TaskInfo):
            task_id = task_id.id
        return self._registry.get(str(task_id))

    def get_tasks(self, tt: int | None = None) -> TaskView:
        """Unfinished records (queued, delayed, running) by id.

        Args:
            tt: only the tasks of this type (TT_THREAD, TT_MP,
                TT_COROUTINE); None: all.

        Returns:
            A read-only mapping, id -> record, that copies the records on
            first use (atasker 0.7 returned a dict: ``dict(...)`` gives one).
            O(1) here; the copy costs O(unfinished tasks).
        """
        return TaskView(self._registry, tt)

    def get_info(
        self,
        tt: int | bool | None = None,
        aloops: bool = True,
        schedulers: bool = True,
        async_job_schedulers: bool = True,
    ) -> types.SimpleNamespace:
        """A snapshot of the supervisor's state: atasker 0.7's fields and more.

        Args (atasker 0.7's): ``tt`` limits the task fields to TT_THREAD or
        TT_MP; ``tt=False`` gives counts only. ``aloops``, ``schedulers``,
        ``async_job_schedulers``: include those dicts.

        Returns:
            A namespace; see :func:`supervisor_info`.
        """
        return supervisor_info(self, tt, aloops, schedulers, async_job_schedulers)

    def mark_task_completed(
        self,
        task: TaskInfo | str | None = None,
        task_id: str | None = None,
        tt: int | None = None,
    ) -> bool:
        """Mark a running task completed (atasker's call; idempotent).

        Args:
            task: the record or its id; None: the task running in this thread.
            task_id: the id, as atasker passes it in ``_task_id``.
            tt: accepted for atasker 0.7 compatibility (the record knows it).

        Returns:
            True if the task was found (whether or not it was already final).
        """
        record: TaskInfo | None
        if isinstance(task, TaskInfo):
            record = task
        elif task is not None or task_id is not None:
            record = self._registry.get(str(task if task is not None else task_id))
        else:
            record = current_task()
        if record is None:
            return False
        if record.status == TASK_STATUS_STARTED:
            record.set_result(None)
        return True


def supervisor_info(
    supervisor: Any,
    tt: int | bool | None = None,
    aloops: bool = True,
    schedulers: bool = True,
    async_job_schedulers: bool = True,
) -> types.SimpleNamespace:
    """Build the namespace ``TaskSupervisor.get_info()`` returns.

    Args (atasker 0.7's):
        tt: None for every task type; TT_THREAD or TT_MP for that type's
            fields and tasks only; False for counts only (no task lists).
        aloops, schedulers, async_job_schedulers: include those dicts.

    Costs O(running tasks + pools + loops + schedulers), not O(queued):
    see the module docstring.

    Returns:
        A namespace with atasker 0.7's fields ``id, active, started,
        thread_pool_size, thread_reserve_normal, thread_reserve_high,
        thread_tasks`` (ids of running thread tasks, oldest submitted
        first), ``thread_tasks_count``, the ``mp_`` twins, ``tasks`` (id ->
        unfinished record: a read-only TaskView, copied on first use),
        ``aloops, schedulers, async_job_schedulers``; and ``thread_pool_threads,
        abandoned_threads`` (threads still running a task past its time
        limit and grace, no longer counted), ``queued``
        (priority -> count), ``mp_queued, mp_pids, default_aloop, delayed,
        completed, failed, canceled, kept_finished``; ``pools`` (name ->
        PoolInfo of each external pool: ``size, reserve_normal,
        reserve_high, running, queued``).
    """
    registry = supervisor._registry
    threads = tt is None or tt is False or tt == TT_THREAD
    processes = tt is None or tt is False or tt == TT_MP
    lists = tt is not False
    pool, mp_pool, timer = supervisor._pool, supervisor._mp_pool, supervisor._timer
    held = pool.running_tasks() if pool is not None else []
    info = types.SimpleNamespace(
        id=supervisor.id,
        active=supervisor.active,
        started=supervisor.active,
        default_aloop=supervisor.default_aloop,
        delayed=_delayed(timer, registry, held),
        completed=registry.completed,
        failed=registry.failed,
        canceled=registry.canceled,
        kept_finished=registry.finished_count(),
    )
    info.pools = supervisor._pools_info()
    # The built-in pools' running tasks: an external pool's are in
    # ``pools``, and coroutine tasks are in neither list.
    if threads:
        thread_ids = _running_ids(held, TT_THREAD)
        info.thread_pool_size = supervisor.pool_size
        info.thread_reserve_normal = supervisor.reserve_normal
        info.thread_reserve_high = supervisor.reserve_high
        info.thread_pool_threads = pool.size if pool is not None else 0
        info.abandoned_threads = pool.abandoned if pool is not None else 0
        info.queued = _queued(pool)
        info.thread_tasks_count = len(thread_ids)
        if lists:
            info.thread_tasks = thread_ids
    if processes:
        mp_ids = _running_ids(
            mp_pool.running_tasks() if mp_pool is not None else [], TT_MP
        )
        info.mp_pool_size = supervisor.mp_pool_size
        info.mp_reserve_normal = supervisor.mp_reserve_normal
        info.mp_reserve_high = supervisor.mp_reserve_high
        info.mp_queued = _queued(mp_pool)
        info.mp_pids = mp_pool.pids() if mp_pool is not None else []
        info.mp_tasks_count = len(mp_ids)
        if lists:
            info.mp_tasks = mp_ids
    if lists:
        info.tasks = TaskView(registry, tt)  # None, or one task type
    if aloops:
        info.aloops = supervisor.get_aloops()
    if schedulers:
        info.schedulers = supervisor.get_schedulers()
    if async_job_schedulers:
        info.async_job_schedulers = supervisor.get_async_job_schedulers()
    return info


def _queued(pool: Any) -> dict[int, int]:
    return pool.queued() if pool is not None else dict.fromkeys(PRIORITIES, 0)


def _running_ids(held: list[TaskInfo], tt: int) -> list[str]:
    """Ids of the records a pool holds that run now, oldest submitted first.

    A pool may hold a record that has not started yet, or has ended, or
    waits for its next attempt: only STARTED ones count. A thread task whose
    time limit abandoned its thread may run again on another thread: listed
    once.
    """
    running = {
        task.id: task
        for task in held
        if task.status == TASK_STATUS_STARTED and task.tt == tt
    }
    # The order the registry lists them in (submit order), for a handful.
    return [task.id for task in sorted(running.values(), key=_submitted)]


def _submitted(task: TaskInfo) -> float:
    return task.time_queued


def _delayed(timer: Any, registry: TaskRegistry, held: list[TaskInfo]) -> int:
    """Records DELAYED now, from counters, each counted once: in the timer
    (a delay, an eta, a retry's countdown), waiting for dependencies (the
    registry's count, kept by deps.py), or a thread task whose attempt just
    failed and whose retry hooks run in its pool thread before the timer
    takes it (DELAYED in no container: the pool thread still holds it).

    Not counted: a record in hand-over between those (microseconds), and a
    process, coroutine or external-pool task while its retry hooks run
    (they run on a callbacks thread or its loop, which no pool lists).
    """
    delayed = registry.waiting_for_dependencies
    if timer is not None:
        delayed += timer.delayed
    retrying = {
        id(task)
        for task in held
        if task.status == TASK_STATUS_DELAYED and task._container is None
    }
    return delayed + len(retrying)
