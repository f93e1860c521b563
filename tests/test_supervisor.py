"""Supervisor lifecycle, look-up, compatibility calls, load."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time

import pytest
from conftest import WAIT, Gate, supervisor_threads

from atasker import (
    TASK_NORMAL,
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TASK_STATUS_STARTED,
    TT_THREAD,
    SupervisorNotRunningError,
    TaskSupervisor,
    background_task,
    wait_completed,
)


def _single_slot(make_supervisor) -> TaskSupervisor:
    sup = make_supervisor()
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    sup.start()
    return sup


def test_importing_starts_no_thread() -> None:
    code = (
        "import threading, atasker; "
        "assert not atasker.task_supervisor.active; "
        "print(threading.active_count())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT
    )
    assert out.stdout.strip() == "1", out.stderr


def test_submit_before_start_and_after_stop(make_supervisor) -> None:
    sup = make_supervisor()
    with pytest.raises(SupervisorNotRunningError, match="start"):
        background_task(int, supervisor=sup)()
    sup.start()
    sup.stop()
    with pytest.raises(SupervisorNotRunningError):
        background_task(int, supervisor=sup)()
    with pytest.raises(SupervisorNotRunningError):
        sup.put_task(int)


def test_stop_waits_for_queued_tasks(make_supervisor, gate: Gate) -> None:
    sup = _single_slot(make_supervisor)
    blocker = background_task(gate.block, supervisor=sup)()
    gate.wait_started()
    queued = [background_task(abs, supervisor=sup)(-i) for i in range(5)]
    stopper = threading.Thread(target=sup.stop)
    stopper.start()
    gate.release.set()
    stopper.join(WAIT)
    assert not stopper.is_alive()
    assert blocker.status == TASK_STATUS_COMPLETED
    assert [t.result for t in queued] == [0, 1, 2, 3, 4]
    assert not supervisor_threads(sup.id)


def test_stop_cancel_tasks(make_supervisor, gate: Gate) -> None:
    sup = _single_slot(make_supervisor)
    blocker = background_task(gate.block, supervisor=sup)()
    gate.wait_started()
    queued = [background_task(abs, supervisor=sup)(-i) for i in range(5)]
    delayed = background_task(abs, delay=3600, supervisor=sup)(-1)
    stopper = threading.Thread(target=sup.stop, kwargs={"cancel_tasks": True})
    stopper.start()
    for task in [*queued, delayed]:
        assert task.wait(WAIT)
        assert task.status == TASK_STATUS_CANCELED
    assert blocker.status == TASK_STATUS_STARTED
    gate.release.set()
    stopper.join(WAIT)
    assert blocker.status == TASK_STATUS_COMPLETED
    info = sup.get_info()
    assert (info.completed, info.canceled, info.active) == (1, 6, False)


def test_stop_deadline_with_hung_task(make_supervisor, gate: Gate) -> None:
    sup = _single_slot(make_supervisor)
    hung = background_task(gate.block, supervisor=sup)()
    gate.wait_started()
    queued = background_task(int, supervisor=sup)()
    started = time.monotonic()
    sup.stop(wait=0.2)
    assert time.monotonic() - started < WAIT
    assert queued.status == TASK_STATUS_CANCELED
    assert hung.status == TASK_STATUS_STARTED
    gate.release.set()
    assert hung.get(WAIT) == "released"


def test_stop_wait_false_returns_at_once(make_supervisor, gate: Gate) -> None:
    sup = _single_slot(make_supervisor)
    hung = background_task(gate.block, supervisor=sup)()
    gate.wait_started()
    queued = background_task(int, supervisor=sup)()
    sup.stop(wait=False)
    assert queued.status == TASK_STATUS_CANCELED
    gate.release.set()
    assert hung.get(WAIT) == "released"


def test_running_task_does_not_keep_interpreter_alive() -> None:
    code = """
import threading
from atasker import TaskSupervisor, background_task
sup = TaskSupervisor("exit")
sup.start()
started = threading.Event()
def hang():
    started.set()
    threading.Event().wait()
background_task(hang, supervisor=sup)()
started.wait(5)
sup.stop(wait=0.1)
print("stopped")
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "stopped"


def test_task_may_stop_its_own_supervisor(make_supervisor) -> None:
    sup = make_supervisor()
    sup.start()
    task = background_task(sup.stop, supervisor=sup)()
    assert task.wait(WAIT)
    assert task.status == TASK_STATUS_COMPLETED
    sup.block()  # returns: stopped


def test_restart_after_stop(make_supervisor) -> None:
    sup = make_supervisor(keep_finished=10)
    sup.start()
    first = background_task(abs, supervisor=sup)(-1)
    first.wait(WAIT)
    sup.stop()
    sup.start()
    second = background_task(abs, supervisor=sup)(-2)
    assert second.get(WAIT) == 2
    assert sup.get_task(first.id) is first
    assert first.id != second.id


def test_block_returns_when_stopped(make_supervisor) -> None:
    sup = make_supervisor()
    sup.start()
    blocked = threading.Thread(target=sup.block)
    blocked.start()
    sup.stop()
    blocked.join(WAIT)
    assert not blocked.is_alive()


def test_retention_bound_by_count(make_supervisor) -> None:
    sup = make_supervisor(keep_finished=10)
    sup.start()
    tasks = [background_task(abs, supervisor=sup)(-i) for i in range(100)]
    wait_completed(tasks, timeout=WAIT)
    kept = [t for t in tasks if sup.get_task(t.id) is not None]
    assert len(kept) == 10
    assert sup.get_info().kept_finished == 10
    assert sup.get_info().completed == 100


def test_retention_bound_by_age(make_supervisor) -> None:
    sup = make_supervisor(keep_finished_age=0)
    sup.start()
    old = background_task(abs, supervisor=sup)(-1)
    old.wait(WAIT)
    new = background_task(abs, supervisor=sup)(-2)
    new.wait(WAIT)
    assert sup.get_task(old.id) is None


def test_memory_stays_flat(make_supervisor) -> None:
    import tracemalloc

    sup = make_supervisor(keep_finished=100)
    sup.start()
    run = background_task(int, supervisor=sup)

    def batch():
        wait_completed([run() for _ in range(2000)], timeout=WAIT)

    batch()
    tracemalloc.start()
    try:
        batch()
        first, _ = tracemalloc.get_traced_memory()
        for _ in range(5):
            batch()
        last, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert last - first < 200_000, (first, last)


def test_many_producers_each_task_runs_once(make_supervisor) -> None:
    sup = make_supervisor()
    sup.set_thread_pool(pool_size=8, reserve_normal=2, reserve_high=2)
    sup.start()
    producers, per_producer = 8, 2000
    counts = [0] * (producers * per_producer)
    lock = threading.Lock()

    def count(i):
        with lock:
            counts[i] += 1

    tasks: list = [None] * producers
    barrier = threading.Barrier(producers, timeout=WAIT)

    def produce(p):
        barrier.wait()
        tasks[p] = [
            background_task(count, priority=(50, 100, 200)[i % 3], supervisor=sup)(
                p * per_producer + i
            )
            for i in range(per_producer)
        ]

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    wait_completed([t for batch in tasks for t in batch], timeout=60)
    assert counts == [1] * len(counts)
    assert sup.get_info().completed == len(counts)


def test_put_task_and_mark_task_completed(supervisor) -> None:
    calls = []

    def target(a, b=None, _task_id=None):
        calls.append((a, b, _task_id))
        assert supervisor.mark_task_completed(task_id=_task_id) is True
        assert supervisor.mark_task_completed(task_id=_task_id) is True
        assert supervisor.mark_task_completed() is True
        return "ignored: already completed"

    task = supervisor.put_task(
        target, args=(1,), kwargs={"b": 2}, priority=TASK_NORMAL, tt=TT_THREAD
    )
    assert task.get(WAIT) is None
    assert calls == [(1, 2, task.id)]
    assert task.status == TASK_STATUS_COMPLETED
    custom = supervisor.put_task(lambda _task_id: _task_id, task_id="my-id")
    assert custom.get(WAIT) == "my-id"
    assert supervisor.get_task("my-id") is custom
    assert supervisor.mark_task_completed(task_id="no-such-task") is False


def test_put_task_returns_when_target_returns(supervisor) -> None:
    task = supervisor.put_task(lambda _task_id: 42, delay=0.01)
    assert task.get(WAIT) == 42


def test_get_tasks_and_info(make_supervisor, gate: Gate) -> None:
    sup = _single_slot(make_supervisor)
    running = background_task(gate.block, supervisor=sup)()
    gate.wait_started()
    queued = background_task(int, supervisor=sup)()
    delayed = background_task(int, delay=3600, supervisor=sup)()
    assert sup.get_tasks() == {t.id: t for t in (running, queued, delayed)}
    assert sup.get_tasks(tt=TT_THREAD) == sup.get_tasks()
    info = sup.get_info()
    assert info.thread_tasks == [running.id] and info.thread_tasks_count == 1
    assert info.queued[TASK_NORMAL] == 1 and info.delayed == 1
    assert info.tasks == {t.id: t for t in (running, queued, delayed)}
    assert (info.mp_tasks, info.mp_tasks_count) == ([], 0)
    gate.release.set()


def test_queue_wait_warnings(make_supervisor, gate: Gate, caplog) -> None:
    sup = _single_slot(make_supervisor)
    warned, critical = [], []
    sup.timeout_warning, sup.timeout_warning_func = 0.0, warned.append
    sup.timeout_critical, sup.timeout_critical_func = 3600.0, critical.append
    blocker = background_task(gate.block, supervisor=sup)()
    gate.wait_started()
    waited = background_task(int, supervisor=sup)()
    with caplog.at_level(logging.WARNING, logger="atasker"):
        gate.release.set()
        wait_completed([blocker, waited], timeout=WAIT)
    assert waited in warned and not critical
    assert "in the queue" in caplog.text
    sup.timeout_critical = 0.0
    late = background_task(int, supervisor=sup)()
    late.wait(WAIT)
    assert critical == [late]


def test_demo_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "atasker", "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "every task ended in a final state: True" in out.stdout
