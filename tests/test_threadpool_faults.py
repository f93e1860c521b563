"""Thread pool resize and refused thread starts; registry age order."""

from __future__ import annotations

import threading

from conftest import WAIT, Gate, supervisor_threads

from atasker import TASK_NORMAL, TT_THREAD, background_task
from atasker.core.registry import TaskRegistry
from atasker.core.task import TaskInfo


def test_configure_min_size_with_queued_tasks(make_supervisor, gate: Gate) -> None:
    sup = make_supervisor()
    sup.set_thread_pool(pool_size=0, reserve_normal=0, reserve_high=0, max_size=1)
    sup.start()
    block = background_task(gate.block, supervisor=sup)
    tasks = [block() for _ in range(5)]
    gate.wait_started()
    sup.set_thread_pool(min_size=10, max_size=10)
    gate.wait_started(4)
    assert sup._pool.size == 10
    assert len(supervisor_threads(sup.id)) == 10
    gate.release.set()
    assert [t.get(WAIT) for t in tasks] == ["released"] * 5


def test_refused_thread_start_dispatches_the_next_task(
    make_supervisor, gate: Gate, monkeypatch
) -> None:
    sup = make_supervisor()
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0, max_size=4)
    sup.start()
    first = background_task(gate.block, supervisor=sup)()
    gate.wait_started()
    started = threading.Event()
    refused = background_task(abs, supervisor=sup)(-1)
    after = background_task(started.set, supervisor=sup)()
    real_start = threading.Thread.start
    calls = []

    def start_once_refused(self):
        if self.name.startswith(f"supervisor_{sup.id}_pool_") and not calls:
            calls.append(self.name)
            raise RuntimeError("can't start new thread")
        return real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start_once_refused)
    sup.set_thread_pool(pool_size=2)
    # ``refused`` lost its thread and failed; its slot went to ``after``,
    # while ``first`` still runs.
    assert started.wait(WAIT)
    assert calls
    assert isinstance(refused.exception, RuntimeError)
    gate.release.set()
    assert first.get(WAIT) == "released"
    assert after.wait(WAIT)
    monkeypatch.undo()
    assert background_task(abs, supervisor=sup)(-3).get(WAIT) == 3


def _finished(task_id: str, completed: float) -> TaskInfo:
    task = TaskInfo(task_id, abs, (), {}, tt=TT_THREAD, priority=TASK_NORMAL)
    task.set_result(None)
    task.time_completed = completed
    return task


def test_reused_task_id_keeps_age_order() -> None:
    import time

    registry = TaskRegistry(keep_finished=100, keep_finished_age=None)
    now = time.time()
    for task in (_finished("a", now - 20), _finished("b", now - 20)):
        registry.add(task)
        registry.finish(task)
    registry.keep_finished_age = 10
    again = _finished("a", now)
    registry.add(again)
    registry.finish(again)
    assert registry.get("a") is again
    assert registry.get("b") is None  # older than 10 s: dropped
    assert registry.finished_count() == 1
