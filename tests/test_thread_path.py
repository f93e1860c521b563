"""The thread path's short cuts keep what the long way gives: a waiter's
bare lock, a task handed straight to a parked thread, the queue skipped
while every thread is busy, and a waiter woken once its slot is free."""

from __future__ import annotations

import threading

import pytest
from conftest import WAIT

from atasker import (
    TASK_CRITICAL,
    TASK_LOW,
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TaskSupervisor,
    WaitTimeoutError,
    background_task,
    wait_completed,
)


def _pool(make_supervisor, threads: int = 1) -> TaskSupervisor:  # type: ignore[no-untyped-def]
    supervisor: TaskSupervisor = make_supervisor()
    supervisor.set_thread_pool(
        pool_size=threads, reserve_normal=0, reserve_high=0, max_size=threads
    )
    supervisor.start()
    return supervisor


def test_a_timed_out_wait_leaves_no_waiter_behind(make_supervisor) -> None:
    sup = _pool(make_supervisor)
    gate = threading.Event()
    task = background_task(gate.wait, supervisor=sup)(WAIT)
    for _ in range(3):
        assert task.wait(0.001) is False
        with pytest.raises(WaitTimeoutError):
            task.get(0.001)
    assert task._waiters == []  # each timed-out waiter took its lock back
    gate.set()
    assert task.get(WAIT) is True
    assert background_task(lambda: 7, supervisor=sup)().get(WAIT) == 7


def test_every_waiting_thread_wakes(make_supervisor) -> None:
    sup = _pool(make_supervisor)
    gate = threading.Event()
    task = background_task(gate.wait, supervisor=sup)(WAIT)
    waiting = threading.Barrier(9, timeout=WAIT)
    results: list[object] = []

    def wait_for_it() -> None:
        waiting.wait()
        results.append(task.get(WAIT))

    threads = [threading.Thread(target=wait_for_it) for _ in range(8)]
    for thread in threads:
        thread.start()
    waiting.wait()
    completed = task.completed  # atasker 0.7's Event, beside the bare locks
    gate.set()
    for thread in threads:
        thread.join(WAIT)
    assert results == [True] * 8
    assert completed.wait(WAIT)
    assert background_task(lambda: 7, supervisor=sup)().get(WAIT) == 7


def test_a_woken_waiter_finds_the_slot_free(make_supervisor) -> None:
    # The pool thread wakes the waiter after it has freed the slot: no poll.
    sup = _pool(make_supervisor)
    run = background_task(lambda: 1, supervisor=sup)
    for _ in range(200):
        assert run().get(WAIT) == 1
        info = sup.get_info()
        assert info.thread_tasks_count == 0
        assert info.thread_tasks == []


def test_a_waiter_is_woken_before_the_callbacks_run(make_supervisor) -> None:
    sup = _pool(make_supervisor)
    in_callback, release = threading.Event(), threading.Event()

    def slow_callback(_result: object) -> None:
        in_callback.set()
        release.wait(WAIT)

    task = background_task(lambda: 5, callback=slow_callback, supervisor=sup)()
    assert task.get(WAIT) == 5  # while the callback still blocks
    assert in_callback.wait(WAIT)
    release.set()
    assert background_task(lambda: 7, supervisor=sup)().get(WAIT) == 7


def test_tasks_queued_behind_a_busy_thread_keep_priority_order(make_supervisor) -> None:
    sup = _pool(make_supervisor)
    gate = threading.Event()
    order: list[int] = []
    busy = background_task(gate.wait, supervisor=sup)(WAIT)
    low = [
        background_task(order.append, priority=TASK_LOW, supervisor=sup)(n)
        for n in range(5)
    ]
    normal = [background_task(order.append, supervisor=sup)(n) for n in range(5, 10)]
    # A CRITICAL task starts at once on a thread of its own, busy or not.
    critical = background_task(lambda: "now", priority=TASK_CRITICAL, supervisor=sup)
    assert critical().get(WAIT) == "now"
    assert order == []
    gate.set()
    wait_completed([busy, *low, *normal], timeout=WAIT)
    assert order == [5, 6, 7, 8, 9, 0, 1, 2, 3, 4]
    assert background_task(lambda: 7, supervisor=sup)().get(WAIT) == 7


def test_a_task_canceled_while_handed_to_a_parked_thread_never_runs(
    make_supervisor,
) -> None:
    # Canceled between the hand-off and its start: the thread finds it
    # final, does not run it, and frees its slot.
    sup = _pool(make_supervisor)
    ran: list[int] = []
    for n in range(300):
        task = background_task(ran.append, supervisor=sup)(n)
        canceled = task.cancel()
        assert task.wait(WAIT)
        assert task.status == (
            TASK_STATUS_CANCELED if canceled else TASK_STATUS_COMPLETED
        )
        assert (n in ran) is not canceled
    assert background_task(lambda: 7, supervisor=sup)().get(WAIT) == 7
    assert sup.get_info().thread_tasks_count == 0


def test_an_id_in_use_is_refused_once_and_free_again_after(make_supervisor) -> None:
    # The registry takes an id in one atomic step, without its lock: of many
    # threads submitting the same id at once, exactly one gets it.
    sup = _pool(make_supervisor)
    gate = threading.Event()
    blocked = background_task(gate.wait, supervisor=sup)
    start = threading.Barrier(8, timeout=WAIT)
    won: list[object] = []
    refused: list[BaseException] = []

    def submit() -> None:
        start.wait()
        try:
            won.append(blocked.apply_async((WAIT,), task_id="same"))
        except ValueError as exc:
            refused.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert len(won) == 1 and len(refused) == 7
    assert "'same' is already in use" in str(refused[0])
    gate.set()
    assert won[0].get(WAIT) is True  # type: ignore[attr-defined]
    again = background_task(lambda: 7, supervisor=sup).apply_async(task_id="same")
    assert again.get(WAIT) == 7


def test_a_record_run_by_hand_wakes_its_own_waiters() -> None:
    # Only a pool thread asks run() for the waiters back; run() itself
    # leaves none asleep.
    from atasker.core.constants import TT_THREAD
    from atasker.core.task import TaskInfo

    record = TaskInfo("by-hand", lambda: 3, (), {}, TT_THREAD, 100)
    completed = record.completed  # a waiter, registered before it runs
    assert record.run() is None
    assert completed.is_set()
    assert record.get(0) == 3
