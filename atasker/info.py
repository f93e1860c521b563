"""``get_info()``: a snapshot of a supervisor's state, atasker 0.7's fields first."""

from __future__ import annotations

import types
from typing import Any

from .constants import (
    PRIORITIES,
    TASK_STATUS_DELAYED,
    TASK_STATUS_STARTED,
    TT_MP,
    TT_THREAD,
)


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
        schedulers, async_job_schedulers``; and ``thread_pool_threads, queued``
        (priority -> count), ``mp_queued, mp_pids, default_aloop, delayed,
        completed, failed, canceled, kept_finished``.
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
    running = [t for t in active if t.status == TASK_STATUS_STARTED]
    if threads:
        pool = supervisor._pool
        thread_ids = [t.id for t in running if t.tt == TT_THREAD]
        info.thread_pool_size = supervisor.pool_size
        info.thread_reserve_normal = supervisor.reserve_normal
        info.thread_reserve_high = supervisor.reserve_high
        info.thread_pool_threads = pool.size if pool is not None else 0
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
