"""Look-up and statistics: ``get_task``, ``get_tasks``, ``get_info`` (a
snapshot of a supervisor's state, atasker 0.7's fields first) and 0.7's
``mark_task_completed``."""

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
from ..pools.external import ExternalPool


class TaskLookup:
    """The look-up calls of a supervisor (mixed into it)."""

    _registry: TaskRegistry

    def get_task(self, task_id: TaskInfo | str) -> TaskInfo | None:
        """The record with ``task_id`` while it is unfinished or kept; else
        None (as in atasker 0.7: None means completed)."""
        if isinstance(task_id, TaskInfo):
            task_id = task_id.id
        return self._registry.get(str(task_id))

    def get_tasks(self, tt: int | None = None) -> dict[str, TaskInfo]:
        """Unfinished records (queued, delayed, running) by id, of type ``tt``
        if given (atasker 0.7 returns a dict too)."""
        return {
            task.id: task
            for task in self._registry.active()
            if tt is None or task.tt == tt
        }

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

    Returns:
        A namespace with atasker 0.7's fields ``id, active, started,
        thread_pool_size, thread_reserve_normal, thread_reserve_high,
        thread_tasks`` (ids of running thread tasks), ``thread_tasks_count``,
        the ``mp_`` twins, ``tasks`` (id -> unfinished record), ``aloops,
        schedulers, async_job_schedulers``; and ``thread_pool_threads,
        abandoned_threads`` (threads still running a task past its time
        limit and grace, no longer counted), ``queued``
        (priority -> count), ``mp_queued, mp_pids, default_aloop, delayed,
        completed, failed, canceled, kept_finished``; ``pools`` (name ->
        PoolInfo of each external pool: ``size, reserve_normal,
        reserve_high, running, queued``).
    """
    registry = supervisor._registry
    active = registry.active()
    threads = tt is None or tt is False or tt == TT_THREAD
    processes = tt is None or tt is False or tt == TT_MP
    lists = tt is not False
    info = types.SimpleNamespace(
        id=supervisor.id,
        active=supervisor.active,
        started=supervisor.active,
        default_aloop=supervisor.default_aloop,
        delayed=sum(1 for t in active if t.status == TASK_STATUS_DELAYED),
        completed=registry.completed,
        failed=registry.failed,
        canceled=registry.canceled,
        kept_finished=registry.finished_count(),
    )
    info.pools = supervisor._pools_info()
    # Tasks in the built-in pools (an external pool's are in ``pools``).
    running = [
        t
        for t in active
        if t.status == TASK_STATUS_STARTED and type(t.handle) is not ExternalPool
    ]
    if threads:
        pool = supervisor._pool
        thread_ids = [t.id for t in running if t.tt == TT_THREAD]
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
        mp_pool = supervisor._mp_pool
        mp_ids = [t.id for t in running if t.tt == TT_MP]
        info.mp_pool_size = supervisor.mp_pool_size
        info.mp_reserve_normal = supervisor.mp_reserve_normal
        info.mp_reserve_high = supervisor.mp_reserve_high
        info.mp_queued = _queued(mp_pool)
        info.mp_pids = mp_pool.pids() if mp_pool is not None else []
        info.mp_tasks_count = len(mp_ids)
        if lists:
            info.mp_tasks = mp_ids
    if lists:
        info.tasks = {t.id: t for t in active if tt is None or t.tt == tt}
    if aloops:
        info.aloops = supervisor.get_aloops()
    if schedulers:
        info.schedulers = supervisor.get_schedulers()
    if async_job_schedulers:
        info.async_job_schedulers = supervisor.get_async_job_schedulers()
    return info


def _queued(pool: Any) -> dict[int, int]:
    return pool.queued() if pool is not None else dict.fromkeys(PRIORITIES, 0)
