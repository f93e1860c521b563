"""Submit, cancel and resize raced from many threads: every record ends once."""

from __future__ import annotations

import sys
import threading
from collections import Counter

import pytest
from conftest import WAIT

from atasker import (
    TASK_HIGH,
    TASK_LOW,
    TASK_NORMAL,
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    background_task,
)


@pytest.fixture
def fast_switching():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def test_submit_cancel_resize_race(make_supervisor, fast_switching) -> None:
    sup = make_supervisor(keep_finished=0)
    sup.set_thread_pool(pool_size=2, reserve_normal=1, reserve_high=1, max_size=4)
    sup.start()
    producers, per_producer = 6, 150
    finals: Counter = Counter()
    finals_lock = threading.Lock()
    records = []
    records_lock = threading.Lock()
    barrier = threading.Barrier(producers + 2)

    def on_final(task):
        with finals_lock:
            finals[task.id] += 1

    def produce(n):
        barrier.wait(WAIT)
        priorities = (TASK_LOW, TASK_NORMAL, TASK_HIGH)
        for i in range(per_producer):
            delay = 0.001 if i % 7 == 0 else None
            task = background_task(
                abs, priority=priorities[i % 3], delay=delay, supervisor=sup
            )(-i)
            task.add_done_callback(on_final)
            with records_lock:
                records.append(task)
            if i % 3 == n % 3:
                task.cancel()

    def canceler():
        barrier.wait(WAIT)
        for _ in range(per_producer):
            with records_lock:
                recent = records[-5:]
            for task in recent:
                task.cancel()

    def resizer():
        barrier.wait(WAIT)
        for i in range(60):
            sup.set_thread_pool(pool_size=1 + i % 3, max_size=1 + i % 4, min_size=i % 2)

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(producers)]
    threads += [threading.Thread(target=canceler), threading.Thread(target=resizer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 3)
        assert not thread.is_alive()
    total = producers * per_producer
    assert len(records) == total
    for task in records:
        assert task.wait(WAIT)
        assert task.status in (TASK_STATUS_COMPLETED, TASK_STATUS_CANCELED)
    # Done callbacks may run just after the waiters are woken.
    sup.set_thread_pool(pool_size=2, max_size=4)
    assert background_task(abs, supervisor=sup)(-9).get(WAIT) == 9
    by_status = Counter(task.status for task in records)
    registry = sup._registry
    pool = sup._pool
    # Waiters wake before the pool thread frees its slot and runs the done
    # callbacks: count only once the stop has joined the pool's threads.
    sup.stop(wait=WAIT)
    assert registry.completed == by_status[TASK_STATUS_COMPLETED] + 1
    assert registry.canceled == by_status[TASK_STATUS_CANCELED]
    assert registry.active() == []
    assert pool.queued() == dict.fromkeys(pool.queued(), 0)
    assert len(pool._admission.ready) == 0
    assert pool._admission.running == 0
    with finals_lock:
        assert all(count == 1 for count in finals.values())
        assert len(finals) == total


def test_push_and_cancel_race_leaves_exact_counts(fast_switching) -> None:
    # A record canceled while a pool pushes it is either not queued or
    # removed by the cancel: the pool's count never includes a final record.
    from conftest import Gate

    from atasker import TT_THREAD
    from atasker.core.task import TaskInfo
    from atasker.pools.threadpool import ThreadPool

    gate = Gate()
    pool = ThreadPool(
        "test_race_pool_",
        lambda task: task.run(),
        pool_size=1,
        reserve_normal=0,
        reserve_high=0,
        min_size=0,
        max_size=1,
    )
    try:
        blocker = TaskInfo("b", gate.block, (), {}, tt=TT_THREAD, priority=TASK_NORMAL)
        assert pool.submit(blocker)
        gate.wait_started()
        records = [
            TaskInfo(str(i), abs, (-i,), {}, tt=TT_THREAD, priority=TASK_NORMAL)
            for i in range(3000)
        ]
        barrier = threading.Barrier(2)

        def submit_all():
            barrier.wait(WAIT)
            for record in records:
                pool.submit(record)

        def cancel_every_other():
            barrier.wait(WAIT)
            for record in records[::2]:
                record.cancel()

        threads = [
            threading.Thread(target=submit_all),
            threading.Thread(target=cancel_every_other),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        live = [r for r in records if not r.cancelled()]
        assert len(live) == 1500
        assert pool.queued()[TASK_NORMAL] == len(live)
        assert len(pool._admission.ready) == len(live)
        gate.release.set()
        for record in live:
            assert record.get(WAIT) == int(record.id)
        assert pool.queued()[TASK_NORMAL] == 0
    finally:
        gate.release.set()
        pool.shutdown(None)
        pool.join(None)
