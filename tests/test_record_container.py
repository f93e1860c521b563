"""A queued or delayed record knows its container; cancel removes it from that one."""

from __future__ import annotations

from conftest import WAIT, Gate

from atasker import TASK_NORMAL, TT_THREAD, background_task
from atasker.core.task import TaskInfo
from atasker.core.timer import Timer
from atasker.pools.threadpool import ThreadPool


def _pool(size: int = 1) -> ThreadPool:
    return ThreadPool(
        "test_container_pool_",
        lambda task: task.run(),
        pool_size=size,
        reserve_normal=0,
        reserve_high=0,
        min_size=0,
        max_size=size,
    )


def _record(target=abs, args=(-1,)) -> TaskInfo:
    return TaskInfo("t", target, args, {}, tt=TT_THREAD, priority=TASK_NORMAL)


def test_cancel_removes_from_the_pool_holding_it(gate: Gate) -> None:
    # No owner at all: the record alone must find the pool that holds it.
    pool = _pool()
    try:
        running = TaskInfo("r", gate.block, (), {}, tt=TT_THREAD, priority=TASK_NORMAL)
        assert pool.submit(running)
        gate.wait_started()
        queued = _record()
        assert pool.submit(queued)
        assert pool.queued()[TASK_NORMAL] == 1
        assert queued.cancel()
        assert pool.queued()[TASK_NORMAL] == 0
        assert len(pool._admission.ready) == 0
        gate.release.set()
        assert running.wait(WAIT)
        assert pool.shutdown(None) == []
    finally:
        gate.release.set()
        pool.shutdown(None)
        pool.join(WAIT)


def test_cancel_removes_from_the_timer_holding_it() -> None:
    timer = Timer("test_container_timer", lambda task: None)
    try:
        delayed = TaskInfo(
            "d", abs, (-1,), {}, tt=TT_THREAD, priority=TASK_NORMAL, delay=60
        )
        assert timer.schedule(delayed, 60)
        assert len(timer) == 1
        assert delayed.cancel()
        assert len(timer) == 0
    finally:
        assert timer.stop() == []
        timer.close()


def test_cancel_after_the_supervisor_swapped_pools(make_supervisor, gate: Gate) -> None:
    # What a restart during a draining stop does: the supervisor holds a new
    # pool and timer while the old ones still hold records. Cancel must
    # remove each record from the container that holds it, not the current one.
    sup = make_supervisor()
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0, max_size=1)
    sup.start()
    background_task(gate.block, supervisor=sup)()
    gate.wait_started()
    queued = background_task(abs, supervisor=sup)(-1)
    delayed = background_task(abs, delay=60, supervisor=sup)(-1)
    old_pool, old_timer = sup._pool, sup._timer
    new_pool = _pool()
    new_timer = Timer("test_container_timer2", lambda task: None)
    sup._pool, sup._timer = new_pool, new_timer
    try:
        assert queued.cancel()
        assert delayed.cancel()
        assert old_pool.queued()[TASK_NORMAL] == 0
        assert len(old_pool._admission.ready) == 0
        assert len(old_timer) == 0
        assert new_pool.queued()[TASK_NORMAL] == 0
        assert len(new_pool._admission.ready) == 0
        assert len(new_timer) == 0
    finally:
        sup._pool, sup._timer = old_pool, old_timer
        new_pool.shutdown(None)
        new_pool.join(WAIT)
        new_timer.stop()
        new_timer.close()
    gate.release.set()
    # The old pool drains: its count dropped, so the stop does not hang.
    sup.stop(wait=WAIT)
    assert not sup.active
