"""Exact priorities: admission order, reserve levels, CRITICAL past max_size."""

from __future__ import annotations

import threading

from conftest import WAIT, Gate

from atasker import (
    TASK_CRITICAL,
    TASK_HIGH,
    TASK_LOW,
    TASK_NORMAL,
    TaskSupervisor,
    background_task,
    wait_completed,
)


def test_start_order_under_saturation(make_supervisor, gate: Gate) -> None:
    sup = make_supervisor()
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    sup.start()
    blocker = background_task(gate.block, supervisor=sup)()
    gate.wait_started()
    order: list[str] = []

    def record(label: str) -> None:
        order.append(label)

    tasks = []
    for priority, label in (
        (TASK_LOW, "L"),
        (TASK_HIGH, "H"),
        (TASK_NORMAL, "N"),
        (TASK_LOW, "L"),
        (TASK_HIGH, "H"),
        (TASK_NORMAL, "N"),
    ):
        n = len(tasks)
        tasks.append(
            background_task(record, priority=priority, supervisor=sup)(f"{label}{n}")
        )
    gate.release.set()
    wait_completed([blocker, *tasks], timeout=WAIT)
    assert order == ["H1", "H4", "N2", "N5", "L0", "L3"]


def test_reserve_levels(make_supervisor, gate: Gate) -> None:
    sup = make_supervisor()
    sup.set_thread_pool(pool_size=2, reserve_normal=1, reserve_high=1)
    sup.start()
    low = [
        background_task(gate.block, priority=TASK_LOW, supervisor=sup)()
        for _ in range(3)
    ]
    gate.wait_started(2)
    # Admission happens inside the submit call, so the counts are exact now.
    assert sup.get_info().queued[TASK_LOW] == 1
    normal = [
        background_task(gate.block, priority=TASK_NORMAL, supervisor=sup)()
        for _ in range(2)
    ]
    gate.wait_started(1)
    assert sup.get_info().queued == {
        TASK_CRITICAL: 0,
        TASK_HIGH: 0,
        TASK_NORMAL: 1,
        TASK_LOW: 1,
    }
    high = [
        background_task(gate.block, priority=TASK_HIGH, supervisor=sup)()
        for _ in range(2)
    ]
    gate.wait_started(1)
    assert sup.get_info().queued == {
        TASK_CRITICAL: 0,
        TASK_HIGH: 1,
        TASK_NORMAL: 1,
        TASK_LOW: 1,
    }
    critical = background_task(gate.block, priority=TASK_CRITICAL, supervisor=sup)()
    gate.wait_started(1)
    assert critical.is_started()
    assert [t.is_started() for t in (low[2], normal[1], high[1])] == [False] * 3
    gate.release.set()
    wait_completed([*low, *normal, *high, critical], timeout=WAIT)


def test_critical_grows_past_max_size(make_supervisor, gate: Gate) -> None:
    sup = make_supervisor()
    sup.set_thread_pool(pool_size=2, reserve_normal=0, reserve_high=0, max_size=2)
    sup.start()
    blockers = [background_task(gate.block, supervisor=sup)() for _ in range(2)]
    gate.wait_started(2)
    critical = [
        background_task(gate.block, priority=TASK_CRITICAL, supervisor=sup)()
        for _ in range(3)
    ]
    gate.wait_started(3)
    assert sup.get_info().thread_pool_threads == 5
    gate.release.set()
    wait_completed(blockers + critical, timeout=WAIT)


def test_unlimited_pool_size(make_supervisor, gate: Gate) -> None:
    sup = make_supervisor()
    sup.set_thread_pool(pool_size=0, max_size=6)
    sup.start()
    tasks = [
        background_task(gate.block, priority=TASK_LOW, supervisor=sup)()
        for _ in range(6)
    ]
    gate.wait_started(6)
    gate.release.set()
    assert wait_completed(tasks, timeout=WAIT) == ["released"] * 6


def test_set_thread_pool_while_running_admits_more(make_supervisor, gate: Gate) -> None:
    sup = make_supervisor()
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    sup.start()
    tasks = [background_task(gate.block, supervisor=sup)() for _ in range(3)]
    gate.wait_started(1)
    assert sup.get_info().queued[TASK_NORMAL] == 2
    sup.set_thread_pool(pool_size=3)
    gate.wait_started(2)
    gate.release.set()
    wait_completed(tasks, timeout=WAIT)


def test_min_size_prestarts_and_idle_threads_retire(make_supervisor) -> None:
    sup: TaskSupervisor = make_supervisor()
    sup.set_thread_pool(pool_size=4, min_size=2, max_size=4)
    sup.start()
    assert sup.get_info().thread_pool_threads == 2
    pool = sup._pool
    assert pool is not None
    pool.idle_timeout = 0.05
    barrier = threading.Barrier(4, timeout=WAIT)  # all four threads at once
    tasks = [background_task(barrier.wait, supervisor=sup)() for _ in range(4)]
    wait_completed(tasks, timeout=WAIT)
    # Two surplus threads retire after the idle timeout, down to min_size; an
    # exiting thread notifies the pool's condition.
    with pool._drained:
        assert pool._drained.wait_for(lambda: len(pool._threads) == 2, WAIT)
    assert sup.get_info().thread_pool_threads == 2


def test_min_size_max(make_supervisor) -> None:
    sup = make_supervisor()
    sup.set_thread_pool(
        pool_size=3, reserve_normal=0, reserve_high=0, min_size="max", max_size=3
    )
    sup.start()
    assert sup.get_info().thread_pool_threads == 3
