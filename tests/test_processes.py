"""Process tasks: results, failures, crashes, time limits, cancel, order, shutdown."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path

import mptasks
import pytest
from conftest import WAIT, supervisor_threads

from atasker import (
    TASK_CRITICAL,
    TASK_HIGH,
    TASK_LOW,
    TASK_NORMAL,
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TASK_STATUS_EXCEPTION,
    TASK_STATUS_QUEUED,
    TASK_STATUS_STARTED,
    TT_MP,
    ProcessPoolBrokenError,
    ProcessPoolStartError,
    RemoteTraceback,
    TaskCancelledError,
    TaskTimeoutError,
    WorkerLostError,
    background_task,
    co_mp_apply,
    wait_completed,
)
from atasker.pools import mproster


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pid: int) -> bool:
    """Wait (signalled, via a pidfd) until process ``pid`` has exited."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([handle], [], [], WAIT)
        return bool(readable)
    finally:
        os.close(handle)


@pytest.fixture
def mp_supervisor(make_supervisor):
    """A started supervisor with two worker processes; at teardown, none left."""
    sup = make_supervisor()
    sup.create_mp_pool(processes=2)
    sup.start()
    pids = ready_pids(sup, 2)
    assert len(pids) == 2
    yield sup
    pids += sup.get_info().mp_pids
    sup.stop(wait=WAIT)
    assert not [pid for pid in pids if _alive(pid)]
    assert not supervisor_threads(sup.id)


@pytest.fixture
def one_worker(make_supervisor):
    """A started supervisor with a single worker process."""
    sup = make_supervisor(keep_finished=100)
    sup.create_mp_pool(processes=1)
    sup.start()
    ready_pids(sup, 1)
    return sup


def ready_pids(sup, count):
    """Wait until ``count`` workers have started; their process ids."""
    assert sup._mp_pool.wait_workers(count, WAIT), "workers did not start"
    return sup.get_info().mp_pids


def mp(f, sup, **options):
    return background_task(f, tt=TT_MP, supervisor=sup, **options)


def test_result_and_callback(mp_supervisor) -> None:
    results = []
    called = threading.Event()

    def on_result(result):
        results.append(result)
        called.set()

    task = mp(mptasks.add, mp_supervisor, priority=TASK_HIGH, callback=on_result)(
        1, 2, x=3
    )
    assert wait_completed(task, timeout=WAIT) == 6
    assert called.wait(WAIT)
    assert results == [6]
    assert task.status == TASK_STATUS_COMPLETED and task.tt == TT_MP
    assert task.time_queued <= task.time_started <= task.time_completed


def test_exception_carries_remote_traceback(mp_supervisor) -> None:
    task = mp(mptasks.fail, mp_supervisor)("bad input")
    with pytest.raises(ValueError, match="bad input") as raised:
        task.get(WAIT)
    cause = raised.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "mptasks.py" in cause.text and "in fail" in cause.text
    assert task.status == TASK_STATUS_EXCEPTION
    assert "in fail" in task.traceback


@pytest.mark.parametrize(
    "crash", [mptasks.exit_now, mptasks.kill_self, mptasks.segfault]
)
def test_dead_process_fails_one_task_only(mp_supervisor, crash) -> None:
    before = set(mp_supervisor.get_info().mp_pids)
    task = mp(crash, mp_supervisor)()
    with pytest.raises(WorkerLostError) as lost:
        task.get(WAIT)
    assert lost.value.pid in before
    assert lost.value.exitcode in (3, -signal.SIGKILL, -signal.SIGSEGV)
    after = [mp(mptasks.add, mp_supervisor)(i, 1) for i in range(50)]
    assert wait_completed(after, timeout=WAIT) == [i + 1 for i in range(50)]
    assert len(mp_supervisor.get_info().mp_pids) == 2


def test_hundred_tasks_ten_crashes(mp_supervisor) -> None:
    tasks = [mp(mptasks.maybe_die, mp_supervisor)(i, 10) for i in range(100)]
    for task in tasks:
        assert task.wait(WAIT)
    failed = [t for t in tasks if t.status != TASK_STATUS_COMPLETED]
    assert len(failed) == 10
    assert all(isinstance(t.exception, WorkerLostError) for t in failed)
    assert [tasks.index(t) for t in failed] == list(range(0, 100, 10))
    info = mp_supervisor.get_info()
    assert info.mp_tasks_count == 0 and info.mp_queued[TASK_NORMAL] == 0


def test_unpicklable_argument_and_lambda_refused_at_call(mp_supervisor) -> None:
    with pytest.raises(TypeError, match="arguments"):
        mp(mptasks.add, mp_supervisor)(threading.Lock(), 1)
    with pytest.raises(TypeError, match="top level"):
        mp(lambda: 1, mp_supervisor)()

    def nested():
        return 1

    with pytest.raises(TypeError, match="top level"):
        mp(nested, mp_supervisor)()
    assert mp_supervisor.get_tasks() == {}


def test_unpicklable_result_fails_that_task(mp_supervisor) -> None:
    task = mp(mptasks.unpicklable_result, mp_supervisor)()
    with pytest.raises(TypeError, match="cannot be pickled"):
        task.get(WAIT)
    assert mp(mptasks.add, mp_supervisor)(2, 2).get(WAIT) == 4


def test_time_limit(mp_supervisor) -> None:
    task = mp(mptasks.sleep, mp_supervisor, time_limit=0.2)(60)
    with pytest.raises(TaskTimeoutError, match="time limit"):
        task.get(WAIT)
    assert mp(mptasks.add, mp_supervisor)(1, 1).get(WAIT) == 2
    assert len(mp_supervisor.get_info().mp_pids) == 2


class Fifo:
    """Cross-process gate: a task blocks reading it; ``open()`` in the test
    returns once the task is running, ``release()`` lets it finish."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        self._writer = None

    def wait_reader(self) -> None:
        self._writer = self.path.open("w")  # blocks until the task opens it

    def release(self) -> None:
        if self._writer is None:
            self.wait_reader()
        self._writer.close()


def test_cancel_queued_and_running(one_worker, tmp_path: Path) -> None:
    sup = one_worker
    gate = Fifo(tmp_path / "gate")
    running = mp(mptasks.read_fifo, sup)(str(gate.path))
    queued = mp(mptasks.add, sup)(1, 2)
    assert queued.status == TASK_STATUS_QUEUED
    assert queued.cancel() is True and queued.status == TASK_STATUS_CANCELED
    gate.wait_reader()
    assert running.status == TASK_STATUS_STARTED
    pid = sup.get_info().mp_pids[0]
    assert running.cancel() is True
    assert running.status == TASK_STATUS_CANCELED
    with pytest.raises(TaskCancelledError):
        running.get(WAIT)
    assert mp(mptasks.add, sup)(2, 3).get(WAIT) == 5
    assert _wait_gone(pid)
    gate.release()


def test_exact_start_order_with_one_worker(one_worker, tmp_path: Path) -> None:
    sup = one_worker
    log = tmp_path / "order.txt"
    gate = Fifo(tmp_path / "gate")
    blocker = mp(mptasks.read_fifo, sup)(str(gate.path))
    gate.wait_reader()
    tasks = [
        mp(mptasks.record, sup, priority=priority)(str(log), label)
        for priority, label in (
            (TASK_LOW, "L1"),
            (TASK_NORMAL, "N1"),
            (TASK_HIGH, "H1"),
            (TASK_LOW, "L2"),
            (TASK_HIGH, "H2"),
            (TASK_NORMAL, "N2"),
        )
    ]
    gate.release()
    wait_completed([blocker, *tasks], timeout=WAIT)
    assert log.read_text().split() == ["H1", "H2", "N1", "N2", "L1", "L2"]


def test_max_tasks_per_child_recycles_and_drains_backlog(make_supervisor) -> None:
    sup = make_supervisor()
    sup.create_mp_pool(processes=2, maxtasksperchild=3)
    sup.start()
    first = set(sup.get_info().mp_pids)
    tasks = [mp(mptasks.pid, sup)() for _ in range(30)]
    pids = wait_completed(tasks, timeout=WAIT)
    assert len(set(pids)) >= 10
    assert max(pids.count(p) for p in set(pids)) <= 3
    assert not first & set(sup.get_info().mp_pids)


def test_initializer_failure_breaks_the_pool(make_supervisor, monkeypatch) -> None:
    monkeypatch.setattr(mproster, "RETRY_BASE", 0.01)
    sup = make_supervisor()
    sup.create_mp_pool(processes=2, initializer=mptasks.failing_initializer)
    sup.start()  # does not wait for the workers, so it cannot fail here
    assert sup.active
    with pytest.raises(ProcessPoolBrokenError, match="initializer refused") as error:
        mp(mptasks.add, sup)(1, 1).get(WAIT)
    assert isinstance(error.value.__cause__, ProcessPoolStartError)
    assert "initializer refused" in str(error.value.__cause__)


def test_initializer_failure_when_running(make_supervisor, monkeypatch) -> None:
    monkeypatch.setattr(mproster, "RETRY_BASE", 0.01)
    sup = make_supervisor()
    sup.start()
    sup.create_mp_pool(processes=1, initializer=mptasks.failing_initializer)
    with pytest.raises(ProcessPoolBrokenError):
        mp(mptasks.add, sup)(1, 1).get(WAIT)
    assert sup.get_info().mp_pids == []
    sup.create_mp_pool(processes=1)  # a broken pool is replaced
    assert mp(mptasks.add, sup)(1, 1).get(WAIT) == 2


def test_set_mp_pool_creates_the_pool_at_start(make_supervisor) -> None:
    sup = make_supervisor()
    sup.set_mp_pool(pool_size=2, reserve_normal=1, reserve_high=0)
    sup.start()  # set_mp_pool asked for a pool: start() creates it
    assert mp(mptasks.add, sup)(1, 1).get(WAIT) == 2
    info = sup.get_info()
    assert len(ready_pids(sup, 3)) == 3
    assert (info.mp_pool_size, info.mp_reserve_normal, info.mp_reserve_high) == (
        2,
        1,
        0,
    )


def test_task_id_only_where_accepted(mp_supervisor) -> None:
    sup = mp_supervisor
    named = sup.put_task(mptasks.with_task_id, args=(1,), tt=TT_MP)
    assert named.get(WAIT) == (1, named.id)
    open_kwargs = sup.put_task(mptasks.with_kwargs, args=(2,), tt=TT_MP)
    assert open_kwargs.get(WAIT) == (2, ["_task_id"])
    plain = sup.put_task(mptasks.without_task_id, args=(3,), tt=TT_MP)
    assert plain.get(WAIT) == 3


def test_co_mp_apply(mp_supervisor) -> None:
    async def main():
        value = await co_mp_apply(
            mptasks.add,
            args=(1, 2),
            kwargs={"x": 3},
            priority=TASK_HIGH,
            supervisor=mp_supervisor,
        )
        with pytest.raises(ValueError, match="remote"):
            await co_mp_apply(mptasks.fail, args=("remote",), supervisor=mp_supervisor)
        return value

    assert asyncio.run(main()) == 6


def test_co_mp_apply_cancellation_cancels_the_task(one_worker, tmp_path: Path) -> None:
    sup = one_worker
    gate = Fifo(tmp_path / "gate")
    pid = sup.get_info().mp_pids[0]

    async def main():
        waiter = asyncio.ensure_future(
            co_mp_apply(mptasks.read_fifo, args=(str(gate.path),), supervisor=sup)
        )
        await asyncio.get_running_loop().run_in_executor(None, gate.wait_reader)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    asyncio.run(main())
    (task,) = [t for t in [sup.get_task(i) for i in list(sup._registry._finished)] if t]
    assert task.status == TASK_STATUS_CANCELED
    assert _wait_gone(pid)
    gate.release()


def test_stop_leaves_no_process_and_no_thread(make_supervisor, tmp_path: Path) -> None:
    sup = make_supervisor()
    sup.create_mp_pool(processes=2)
    sup.start()
    gate = Fifo(tmp_path / "gate")
    pids = sup.get_info().mp_pids
    running = mp(mptasks.read_fifo, sup)(str(gate.path))
    gate.wait_reader()
    queued = [mp(mptasks.add, sup)(i, 0) for i in range(3)]
    sup.stop(wait=0.2)
    assert running.status == TASK_STATUS_CANCELED
    assert all(t.done() for t in queued)
    assert not [pid for pid in pids if _alive(pid)]
    assert not supervisor_threads(sup.id)
    gate.release()


def test_stop_waits_for_process_tasks(make_supervisor) -> None:
    sup = make_supervisor()
    sup.create_mp_pool(processes=2)
    sup.start()
    tasks = [mp(mptasks.add, sup)(i, 1) for i in range(20)]
    sup.stop()
    assert [t.result for t in tasks] == [i + 1 for i in range(20)]


def test_workers_exit_when_parent_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(
        f"""
import os, signal, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import mptasks
from atasker import TaskSupervisor, background_task, TT_MP
if __name__ == "__main__":
    sup = TaskSupervisor("orphans")
    sup.create_mp_pool(processes=2)
    sup.start()
    background_task(mptasks.sleep, tt=TT_MP, supervisor=sup)(60)
    assert sup._mp_pool.wait_workers(2, 10)
    print(" ".join(map(str, sup.get_info().mp_pids)), flush=True)
    sys.stdin.readline()
    os.kill(os.getpid(), signal.SIGKILL)
"""
    )
    parent = subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    pids = [int(p) for p in parent.stdout.readline().split()]
    assert len(pids) == 2
    handles = [os.pidfd_open(pid) for pid in pids]
    try:
        parent.stdin.write("go\n")
        parent.stdin.flush()
        assert parent.wait(WAIT) == -signal.SIGKILL
        for handle in handles:
            readable, _, _ = select.select([handle], [], [], WAIT)
            assert readable, "a worker outlived its killed parent"
    finally:
        for handle in handles:
            os.close(handle)
        parent.stdout.close()
        parent.stdin.close()


def test_critical_starts_at_once_in_a_temporary_worker(
    one_worker, tmp_path: Path
) -> None:
    sup = one_worker
    gate = Fifo(tmp_path / "gate")
    busy = mp(mptasks.read_fifo, sup)(str(gate.path))
    gate.wait_reader()
    normal = mp(mptasks.add, sup)(1, 1)
    critical = mp(mptasks.pid, sup, priority=TASK_CRITICAL)()
    worker_pid = critical.get(WAIT)
    assert worker_pid not in sup.get_info().mp_pids or len(sup.get_info().mp_pids) > 1
    assert normal.status == TASK_STATUS_QUEUED
    gate.release()
    assert wait_completed([busy, normal], timeout=WAIT) == ["", 2]
    assert _wait_gone(worker_pid)
    assert len(sup.get_info().mp_pids) == 1
