"""The supervisor's lifecycle: restart during a stop, concurrent start and stop,
stop from the supervisor's own threads and from a signal handler, bounded
stops, interpreter exit, fork."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import mptasks
import pytest
from conftest import WAIT, Gate, supervisor_threads

from atasker import (
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TT_COROUTINE,
    TT_MP,
    FunctionCollection,
    Locker,
    TaskSupervisor,
    background_task,
    background_worker,
)

TESTS = Path(__file__).resolve().parent


class LogSignal(logging.Handler):
    """Sets an Event when the atasker logger emits a message containing a text."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text = text
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


@pytest.fixture
def log_signal():
    logger = logging.getLogger("atasker")
    handlers: list[LogSignal] = []
    level = logger.level
    logger.setLevel(logging.DEBUG)

    def make(text: str) -> LogSignal:
        handler = LogSignal(text)
        logger.addHandler(handler)
        handlers.append(handler)
        return handler

    yield make
    for handler in handlers:
        logger.removeHandler(handler)
    logger.setLevel(level)


def _single_slot(make_supervisor, **kwargs) -> TaskSupervisor:
    sup = make_supervisor(**kwargs)
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    sup.start()
    return sup


def _alive(sup: TaskSupervisor, tt: int = 0) -> None:
    """One more task through the supervisor's pool proves it runs."""
    if tt == TT_MP:
        task = background_task(mptasks.add, tt=TT_MP, supervisor=sup)(2, 3)
        assert task.get(WAIT) == 5
    else:
        assert background_task(abs, supervisor=sup)(-5).get(WAIT) == 5


def _run_script(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=TESTS,
    )


# ----------------------------------------------------------------------
# Restart while a stop drains; concurrent start and stop
# ----------------------------------------------------------------------


def test_start_during_a_stop_waits_for_it_then_starts_fresh(
    make_supervisor, gate: Gate, log_signal
) -> None:
    sup = _single_slot(make_supervisor)
    stopping = log_signal("stopping")
    blocker = background_task(gate.block, supervisor=sup)()
    gate.wait_started()
    queued = [background_task(abs, supervisor=sup)(-i) for i in range(3)]
    stopper = threading.Thread(target=sup.stop)
    stopper.start()
    assert stopping.seen.wait(WAIT)
    starter = threading.Thread(target=sup.start)
    starter.start()
    # A record canceled while the old pool drains leaves that pool, whatever
    # the starter does meanwhile.
    assert queued[0].cancel()
    gate.release.set()
    stopper.join(WAIT)
    starter.join(WAIT)
    assert not stopper.is_alive() and not starter.is_alive()
    assert blocker.status == TASK_STATUS_COMPLETED
    assert [t.status for t in queued] == [
        TASK_STATUS_CANCELED,
        TASK_STATUS_COMPLETED,
        TASK_STATUS_COMPLETED,
    ]
    assert sup.active
    _alive(sup)
    sup.stop(wait=WAIT)
    assert not sup.active


def test_concurrent_stops_all_return_when_the_shared_stop_is_done(
    make_supervisor, gate: Gate, log_signal
) -> None:
    sup = _single_slot(make_supervisor)
    stopping = log_signal("stopping")
    joined = log_signal("joins the stop")
    blocker = background_task(gate.block, supervisor=sup)()
    gate.wait_started()
    seen: list[int] = []

    def stop_and_look() -> None:
        sup.stop(wait=True)
        seen.append(blocker.status)

    first = threading.Thread(target=stop_and_look)
    first.start()
    assert stopping.seen.wait(WAIT)
    second = threading.Thread(target=stop_and_look)
    second.start()
    assert joined.seen.wait(WAIT)
    gate.release.set()
    first.join(WAIT)
    second.join(WAIT)
    assert seen == [TASK_STATUS_COMPLETED, TASK_STATUS_COMPLETED]


def test_start_stop_race_leaves_nothing_behind(make_supervisor) -> None:
    sup = make_supervisor()
    sup.create_mp_pool(processes=1)
    sup.start()
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        barrier = threading.Barrier(4)

        def churn(action: str) -> None:
            barrier.wait(WAIT)
            for _ in range(5):
                getattr(sup, action)()

        threads = [
            threading.Thread(target=churn, args=(a,))
            for a in ("start", "stop", "start", "stop")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT * 3)
        assert not any(t.is_alive() for t in threads)
    finally:
        sys.setswitchinterval(switch)
    sup.start()
    _alive(sup, TT_MP)
    _alive(sup)
    pids = sup.get_info().mp_pids
    sup.stop(wait=WAIT)
    for thread in supervisor_threads(sup.id):
        thread.join(WAIT)
    assert not supervisor_threads(sup.id)
    assert not [pid for pid in pids if _pid_alive(pid)]


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


# ----------------------------------------------------------------------
# stop() from a thread the supervisor owns
# ----------------------------------------------------------------------


def _stopped_and_restartable(sup: TaskSupervisor, tt: int = 0) -> None:
    blocker = threading.Thread(target=sup.block, daemon=True)
    blocker.start()
    blocker.join(WAIT)
    assert not blocker.is_alive(), "block() did not return"
    assert not sup.active
    for thread in supervisor_threads(sup.id):
        thread.join(WAIT)
    assert not supervisor_threads(sup.id)
    sup.stop()  # a second stop is harmless
    sup.start()
    _alive(sup, tt)


def test_stop_from_a_thread_task(make_supervisor) -> None:
    sup = _single_slot(make_supervisor)
    task = background_task(sup.stop, supervisor=sup)()
    assert task.wait(WAIT)
    _stopped_and_restartable(sup)


def test_stop_from_a_worker_executor(make_supervisor) -> None:
    sup = _single_slot(make_supervisor)
    calls = []

    @background_worker(interval=0.001, supervisor=sup)
    def stopper(**kwargs):
        calls.append(1)
        sup.stop()

    stopper.start()
    _stopped_and_restartable(sup)
    assert calls


def test_stop_from_a_coroutine_task(make_supervisor) -> None:
    sup = _single_slot(make_supervisor)
    sup.create_aloop("work", default=True)

    async def stop_me():
        sup.stop()
        await asyncio.sleep(0)
        return "stopping"

    task = background_task(stop_me, supervisor=sup)()
    assert task.get(WAIT) == "stopping"
    _stopped_and_restartable(sup)


def test_stop_from_an_aloop_callback(make_supervisor) -> None:
    sup = _single_slot(make_supervisor)
    aloop = sup.create_aloop("cb")
    aloop.get_loop().call_soon_threadsafe(sup.stop)
    _stopped_and_restartable(sup)


def test_stop_from_a_process_task_callback(make_supervisor) -> None:
    sup = _single_slot(make_supervisor)
    sup.create_mp_pool(processes=1)
    task = background_task(
        mptasks.add, tt=TT_MP, supervisor=sup, callback=lambda result: sup.stop()
    )(1, 2)
    assert task.get(WAIT) == 3
    _stopped_and_restartable(sup, TT_MP)


def test_stop_from_a_signal_handler_that_interrupts_submit() -> None:
    # The handler runs while submit holds the pool's lock: the stop must not
    # take that lock in this thread, and block() must still return.
    result = _run_script(
        """
        import signal, threading
        from atasker import TaskSupervisor, background_task, SupervisorNotRunningError

        sup = TaskSupervisor(supervisor_id="sig")
        sup.start()
        signal.signal(signal.SIGUSR1, lambda *a: sup.stop())
        pool = sup._pool
        push = pool._admission.push

        def push_then_signal(task):
            queued = push(task)
            signal.raise_signal(signal.SIGUSR1)  # handled here, lock held
            return queued

        pool._admission.push = push_then_signal
        first = background_task(abs, supervisor=sup)(-1)
        sup.block()
        assert first.wait(10), first
        try:
            background_task(abs, supervisor=sup)(-2)
        except SupervisorNotRunningError:
            pass
        else:
            raise AssertionError("still running")
        left = [t for t in threading.enumerate() if t.name.startswith("supervisor_sig")]
        for t in left:
            t.join(10)
        sup.start()
        assert background_task(abs, supervisor=sup)(-3).get(10) == 3
        sup.stop()
        print("ok")
        """
    )
    assert result.stdout.strip() == "ok", result.stderr


# ----------------------------------------------------------------------
# Bounded stops
# ----------------------------------------------------------------------


def test_stop_wait_n_is_bounded_with_a_busy_worker(make_supervisor, gate: Gate) -> None:
    sup = _single_slot(make_supervisor)

    @background_worker(interval=0.001, supervisor=sup)
    def busy(**kwargs):
        gate.block()

    busy.start()
    gate.wait_started()
    started = time.monotonic()
    sup.stop(wait=0.5)
    elapsed = time.monotonic() - started
    gate.release.set()
    assert elapsed < 0.5 + 3, elapsed


def test_stop_without_stopping_schedulers_returns(make_supervisor) -> None:
    sup = _single_slot(make_supervisor)

    @background_worker(interval=60, supervisor=sup)
    def idle(**kwargs):
        pass

    idle.start()
    done = threading.Event()

    def stop() -> None:
        sup.stop(wait=True, stop_schedulers=False)
        done.set()

    threading.Thread(target=stop, daemon=True).start()
    assert done.wait(WAIT), "stop(stop_schedulers=False) hung on a live worker"
    assert not idle.is_started()


# ----------------------------------------------------------------------
# Interpreter exit and fork
# ----------------------------------------------------------------------


def test_exit_without_stop_runs_queued_tasks_and_ends_aloops() -> None:
    result = _run_script(
        """
        import threading
        from atasker import task_supervisor, background_task

        task_supervisor.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0)
        task_supervisor.create_aloop("work", default=True)  # non-daemon, as in 0.7
        task_supervisor.start()
        gate = threading.Event()
        background_task(gate.wait)(5)
        for i in range(20):
            background_task(print)(i)

        async def coro():
            return 1

        assert background_task(coro)().get(10) == 1
        gate.set()
        """,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(i) for i in range(20)]


def test_exit_wait_false_cancels_queued_tasks() -> None:
    result = _run_script(
        """
        import threading
        from atasker import TaskSupervisor, background_task

        sup = TaskSupervisor(supervisor_id="x", exit_wait=False)
        sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0)
        sup.start()
        gate = threading.Event()
        background_task(gate.wait, supervisor=sup)(0.5)
        for i in range(20):
            background_task(print, supervisor=sup)(i)
        """,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []


def test_exit_without_stop_ends_workers_without_reporting_them_lost() -> None:
    script = textwrap.dedent(
        """
        import logging, sys
        import mptasks
        from atasker import task_supervisor, background_task, TT_MP

        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        task_supervisor.create_mp_pool(processes=2)
        task_supervisor.start()
        assert background_task(mptasks.add, tt=TT_MP)(1, 2).get(30) == 3
        print(" ".join(map(str, task_supervisor.get_info().mp_pids)), flush=True)
        sys.stdin.readline()  # exit when the test has the workers in hand
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=TESTS,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None and process.stdin is not None
        pids = [int(p) for p in process.stdout.readline().split()]
        handles = [os.pidfd_open(pid) for pid in pids]
        try:
            process.stdin.close()
            assert process.wait(60) == 0
            stderr = process.stderr.read() if process.stderr else ""
            assert "lost" not in stderr and "died" not in stderr, stderr
            for handle in handles:  # exited, whoever reaps them
                readable, _, _ = select.select([handle], [], [], WAIT)
                assert readable
        finally:
            for handle in handles:
                os.close(handle)
    assert len(pids) == 2


def test_fork_leaves_the_child_a_stopped_supervisor_it_can_start() -> None:
    result = _run_script(
        """
        import os, warnings
        from atasker import TaskSupervisor, background_task

        warnings.simplefilter("ignore", DeprecationWarning)  # fork of a threaded parent
        sup = TaskSupervisor(supervisor_id="forked")
        sup.start()
        assert background_task(abs, supervisor=sup)(-1).get(10) == 1
        import threading
        from atasker import background_worker
        ran = threading.Event()
        worker = background_worker(lambda **kw: ran.set(), supervisor=sup, interval=60)
        worker.start()
        assert ran.wait(10)
        pid = os.fork()
        if pid == 0:
            ok = not sup.active
            sup.start()
            ok = ok and background_task(abs, supervisor=sup)(-2).get(10) == 2
            ran.clear()
            ok = ok and worker.start() and ran.wait(10)  # stopped in the child
            sup.stop()
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        assert background_task(abs, supervisor=sup)(-3).get(10) == 3
        sup.stop()
        print("ok")
        """,
        timeout=30,
    )
    assert result.stdout.strip() == "ok", result.stderr


# ----------------------------------------------------------------------
# Found in review: stops from more places, and bounds
# ----------------------------------------------------------------------


def test_stop_from_an_aloop_executor_thread(make_supervisor) -> None:
    sup = make_supervisor()
    sup.start()
    sup.create_aloop("jobs", default=True, daemon=True)
    sup.create_async_job_scheduler("js", default=True)
    names: list[str] = []

    def job() -> None:  # a plain function runs in the loop's executor
        names.append(threading.current_thread().name)
        sup.stop(wait=True)

    sup.create_async_job(target=job, number=1, interval=0.01)
    _stopped_and_restartable(sup)
    assert names[0].startswith(f"supervisor_{sup.id}_aloop_jobs_executor")


def test_stop_from_a_done_callback_that_a_stop_runs(make_supervisor) -> None:
    sup = _single_slot(make_supervisor)
    delayed = background_task(abs, delay=3600, supervisor=sup)(-1)
    delayed.add_done_callback(lambda record: sup.stop(wait=True))
    sup.stop(wait=WAIT)  # cancels the delayed task: its callback stops again
    assert delayed.cancelled()
    _stopped_and_restartable(sup)


def test_ctrl_c_during_stop_interrupts_the_wait_not_the_stop() -> None:
    result = _run_script(
        """
        import os, signal, threading
        import mptasks
        from atasker import TaskSupervisor, background_task, TT_MP

        def interrupt(*args):
            raise KeyboardInterrupt

        signal.signal(signal.SIGUSR1, interrupt)
        sup = TaskSupervisor(supervisor_id="kb")
        sup.create_mp_pool(processes=1)
        sup.start()
        assert background_task(mptasks.add, tt=TT_MP, supervisor=sup)(1, 2).get(30) == 3
        gate = threading.Event()
        background_task(gate.wait, supervisor=sup)(30)
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1)).start()
        try:
            sup.stop(wait=True)
        except KeyboardInterrupt:
            print("interrupted")
        gate.set()
        sup.block()
        left = [t for t in threading.enumerate() if t.name.startswith("supervisor_kb")]
        for t in left:
            t.join(10)
        assert sup.get_info().mp_pids == [], sup.get_info().mp_pids
        sup.start()
        assert background_task(mptasks.add, tt=TT_MP, supervisor=sup)(2, 2).get(30) == 4
        sup.stop()
        print("ok")
        """
    )
    assert result.stdout.split() == ["interrupted", "ok"], result.stderr


def test_exit_drains_a_coroutine_that_uses_the_executor() -> None:
    result = _run_script(
        """
        import asyncio, threading
        from atasker import TaskSupervisor, TT_COROUTINE

        sup = TaskSupervisor(supervisor_id="exe")
        sup.start()
        sup.create_aloop("a", default=True)
        first = threading.Event()

        async def co():
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, first.set)
            await asyncio.sleep(0.2)
            await loop.run_in_executor(None, print, "second call ran")

        sup.submit(co, (), {}, tt=TT_COROUTINE)
        first.wait(10)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "second call ran", result.stderr


def test_aloops_stop_together_within_the_deadline(make_supervisor) -> None:
    sup = make_supervisor()
    sup.start()
    release = threading.Event()

    async def stubborn():
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):  # ignores cancel
                await asyncio.sleep(30)

    for name in ("a", "b", "c"):
        aloop = sup.create_aloop(name, daemon=True)
        aloop.background_task(stubborn())
    started = time.monotonic()
    sup.stop(wait=0.2)
    elapsed = time.monotonic() - started
    release.set()
    # One shared deadline plus one grace, not one per aloop.
    assert elapsed < 0.2 + 3 * 1.0, elapsed


def test_timer_thread_runs_no_user_code(make_supervisor) -> None:
    sup = make_supervisor()
    sup.start()
    aloop = sup.create_aloop("a", default=True, daemon=True)

    async def nothing():
        return 1

    ran = threading.Event()
    names: list[str] = []
    task = sup.submit(nothing, (), {}, tt=TT_COROUTINE, delay=0.05)
    task.add_done_callback(
        lambda record: (names.append(threading.current_thread().name), ran.set())
    )
    aloop.stop()  # the task fails when due: its loop is gone
    assert ran.wait(WAIT)
    assert task.exception is not None
    assert not names[0].startswith(f"supervisor_{sup.id}_timer"), names
    _alive(sup)


def test_stop_inside_a_locker_or_collection_waits(make_supervisor, gate: Gate) -> None:
    sup = _single_slot(make_supervisor)
    blocker = background_task(gate.block, supervisor=sup)()
    gate.wait_started()
    statuses: list[int] = []
    lock = Locker(mod="test", timeout=WAIT)

    @lock
    def shutdown() -> None:
        threading.Timer(0.05, gate.release.set).start()
        sup.stop(wait=True)
        statuses.append(blocker.status)

    collection = FunctionCollection()
    collection.append(shutdown)
    # In the main thread, below atasker code that only calls user code.
    runner = threading.main_thread() is threading.current_thread()
    collection.run()
    assert runner
    assert statuses == [TASK_STATUS_COMPLETED]


def test_a_supervisor_does_not_own_the_threads_of_one_whose_id_it_prefixes(
    make_supervisor, gate: Gate
) -> None:
    short = _single_slot(make_supervisor, supervisor_id="pfx")
    longer = _single_slot(make_supervisor, supervisor_id="pfx_y")
    blocker = background_task(gate.block, supervisor=short)()
    gate.wait_started()
    seen: list[int] = []

    def stop_short() -> None:
        threading.Timer(0.05, gate.release.set).start()
        short.stop(wait=True)  # from a pool thread of pfx_y: may wait
        seen.append(blocker.status)

    assert background_task(stop_short, supervisor=longer)().wait(WAIT)
    assert seen == [TASK_STATUS_COMPLETED]
    assert not short.active
    longer.stop(wait=WAIT)
