"""External pools (add_pool, remove_pool, get_info().pools, pool=, mp_pool
as a multiprocessing Pool): results and exceptions, exact priorities and the
reserve rule behind a busy executor, cancel, retries, time limits, lost
workers, pickling at the call, bad arguments, the supervisor's lifecycle,
remove_pool, stop, hooks and events, co_apply and map.

Each test runs on its own executors (worker processes from the
"forkserver": a fork of this multi-threaded process warns on 3.12+). Tasks block at an
``external_mp.Gate`` (a Unix socket: a thread or a worker process alike) and
every wait has a timeout. Every fault test ends with one more task through
the same pool."""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import queue
import shutil
import signal
import tempfile
import threading
from pathlib import Path

import external_mp
import pytest
from conftest import WAIT

from atasker import (
    TASK_CRITICAL,
    TASK_HIGH,
    TASK_LOW,
    TASK_NORMAL,
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TASK_STATUS_ERROR,
    TASK_STATUS_EXCEPTION,
    TASK_STATUS_QUEUED,
    TASK_STATUS_STARTED,
    TT_MP,
    TaskError,
    TaskEvent,
    TaskTimeoutError,
    WorkerLostError,
    background_task,
    co_apply,
    wait_completed,
)

# Not "fork": a fork of this multi-threaded process warns on 3.12+ (an
# error here). The forkserver starts workers faster than "spawn".
MP_CONTEXT = multiprocessing.get_context("forkserver")
KINDS = ("thread", "process")
EXECUTOR_THREADS = "xp_executor"  # the thread_name_prefix of our TPEs
NO_QUEUE = {TASK_CRITICAL: 0, TASK_HIGH: 0, TASK_NORMAL: 0, TASK_LOW: 0}


# ----------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------


def signal_on(obj, method):
    """An Event set when ``obj.method`` is next called (it then runs)."""
    called = threading.Event()
    inner = getattr(obj, method)

    def noting(*args, **kwargs):
        called.set()
        return inner(*args, **kwargs)

    setattr(obj, method, noting)
    return called


def done_event(future):
    """An Event set when ``future`` is done."""
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    return done


class Spy:
    """Keeps the futures an executor's ``submit`` returned: a count of what
    was handed over (the executor's type is unchanged, so a
    ProcessPoolExecutor is still pickled at the call)."""

    def __init__(self, executor):
        self.futures = []
        self._changed = threading.Condition()
        submit = executor.submit

        def spying(*args, **kwargs):
            future = submit(*args, **kwargs)
            with self._changed:
                self.futures.append(future)
                self._changed.notify_all()
            return future

        executor.submit = spying

    @property
    def count(self):
        with self._changed:
            return len(self.futures)

    def wait_for(self, count):
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.futures) >= count, WAIT)


class Events:
    """A subscriber: the events it was given, in order, through a queue."""

    def __init__(self):
        self.queue = queue.Queue()
        self.events = []

    def __call__(self, event):
        self.queue.put(event)

    def take(self, count):
        """Wait for ``count`` more events; all taken so far."""
        for _ in range(count):
            try:
                self.events.append(self.queue.get(timeout=WAIT))
            except queue.Empty:
                pytest.fail(f"no event within {WAIT}s; got {self.events}")
        return self.events

    def until_final(self, task_id):
        final = ("success", "error", "exception", "canceled")
        while not any(e.task_id == task_id and e.event in final for e in self.events):
            self.take(1)
        return [e.event for e in self.events if e.task_id == task_id]


class Lab:
    """Supervisors, executors, Pools and gates of one test. ``close()``
    releases the gates, stops the supervisors, then shuts every executor
    and Pool down (terminates the Pools)."""

    def __init__(self, make_supervisor):
        self._make = make_supervisor
        # A Unix socket's path must be short: not under pytest's tmp_path.
        self.dir = Path(tempfile.mkdtemp(prefix="xp", dir="/tmp"))
        self._gates = []
        self._supervisors = []
        self._executors = []
        self._pools = []

    def supervisor(self, start=True, **kwargs):
        kwargs.setdefault("keep_finished", 100)
        sup = self._make(**kwargs)
        sup.log_exceptions = False
        self._supervisors.append(sup)
        if start:
            sup.start()
        return sup

    def executor(self, kind, workers=2):
        if kind == "thread":
            executor = concurrent.futures.ThreadPoolExecutor(
                workers, thread_name_prefix=EXECUTOR_THREADS
            )
        else:
            executor = concurrent.futures.ProcessPoolExecutor(
                workers, mp_context=MP_CONTEXT
            )
        self._executors.append(executor)
        return executor

    def keep(self, executor):
        """Shut ``executor`` down at the end too."""
        self._executors.append(executor)
        return executor

    def mp_pool(self, processes=1):
        pool = MP_CONTEXT.Pool(processes)
        self._pools.append(pool)
        return pool

    def gate(self):
        gate = external_mp.Gate(self.dir / f"gate{len(self._gates)}")
        self._gates.append(gate)
        return gate

    def pooled(self, kind, size=1, workers=2, name="x", **pool_options):
        """A started supervisor with pool ``name`` on a new executor."""
        sup = self.supervisor()
        executor = self.executor(kind, workers)
        sup.add_pool(name, executor, size, **pool_options)
        return sup, executor

    def close(self):
        try:
            for gate in self._gates:
                gate.release()
            for sup in self._supervisors:
                sup.stop(wait=WAIT)
            for executor in self._executors:
                executor.shutdown(wait=True)
            for pool in self._pools:
                pool.terminate()
                pool.join()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def lab(make_supervisor):
    made = Lab(make_supervisor)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


def run(sup, f, *args, pool="x", **options):
    """``f(*args)`` as a task of pool ``pool``."""
    return sup.submit(f, args, pool=pool, **options)


def blocker(sup, gate, label="released", pool="x", **options):
    """A task that holds a slot of ``pool`` until ``gate`` is released;
    returns once it runs there. Its record and the pid it runs in."""
    record = run(sup, external_mp.wait_at_gate, gate.path, label, pool=pool, **options)
    return record, gate.arrived()


def alive(sup, pool="x"):
    assert run(sup, external_mp.add, 2, 3, pool=pool).get(WAIT) == 5


def pool_info(sup, name="x"):
    return sup.get_info().pools[name]


def mp_task(sup, f, **options):
    return background_task(f, tt=TT_MP, supervisor=sup, **options)


# ----------------------------------------------------------------------
# Results, exceptions, get_info().pools
# ----------------------------------------------------------------------


def test_results(lab, kind) -> None:
    sup, _ = lab.pooled(kind)
    record = run(sup, external_mp.add, 1, 2)
    assert record.get(WAIT) == 3
    assert record.status == TASK_STATUS_COMPLETED and record.is_started()
    decorated = background_task(external_mp.add, pool="x", supervisor=sup)
    assert decorated(2, 2).get(WAIT) == 4
    plain = background_task(external_mp.add, supervisor=sup)
    assert plain.apply_async((3, 3), pool="x").get(WAIT) == 6
    pids = wait_completed([run(sup, external_mp.pid) for _ in range(3)], timeout=WAIT)
    if kind == "process":
        assert os.getpid() not in pids
    else:
        assert set(pids) == {os.getpid()}


def test_exceptions(lab, kind) -> None:
    sup, _ = lab.pooled(kind)
    failed = run(sup, external_mp.remote_failure, "boom")
    with pytest.raises(ValueError, match="boom"):
        failed.get(WAIT)
    assert failed.status == TASK_STATUS_EXCEPTION
    assert type(failed.exception) is ValueError
    # The frame of the function that raised, in the executor (for a process
    # executor: the remote traceback).
    assert "remote_failure" in failed.traceback
    assert "ValueError: boom" in failed.traceback
    error = run(sup, external_mp.remote_task_error, "bad input")
    with pytest.raises(TaskError, match="bad input"):
        error.get(WAIT)
    assert error.status == TASK_STATUS_ERROR
    alive(sup)


def test_pools_info(lab, kind) -> None:
    sup, executor = lab.pooled(kind)
    sup.add_pool("y", executor, 3, reserve_normal=2, reserve_high=1)
    info = sup.get_info().pools
    assert set(info) == {"x", "y"}
    y = info["y"]
    assert (y.size, y.reserve_normal, y.reserve_high) == (3, 2, 1)
    assert (y.running, y.queued) == (0, NO_QUEUE)
    names = {t.name for t in threading.enumerate()}
    assert {f"supervisor_{sup.id}_pool_x", f"supervisor_{sup.id}_pool_y"} <= names
    gate = lab.gate()
    held, _ = blocker(sup, gate)
    queued = [
        run(sup, external_mp.add, i, 0, priority=priority)
        for i, priority in enumerate(
            (TASK_LOW, TASK_HIGH, TASK_LOW, TASK_NORMAL, TASK_HIGH, TASK_HIGH)
        )
    ]
    x = pool_info(sup)
    assert (x.size, x.reserve_normal, x.reserve_high) == (1, 0, 0)
    assert x.running == 1
    assert x.queued == {TASK_CRITICAL: 0, TASK_HIGH: 3, TASK_NORMAL: 1, TASK_LOW: 2}
    # The built-in pools' lists do not hold an external pool's tasks.
    everything = sup.get_info()
    assert everything.thread_tasks == [] and everything.mp_tasks == []
    assert everything.queued == NO_QUEUE
    gate.release()
    assert wait_completed([held, *queued], timeout=WAIT) == [
        "released",
        *range(6),
    ]
    assert pool_info(sup).running == 0  # freed before the records woke
    assert pool_info(sup).queued == NO_QUEUE


# ----------------------------------------------------------------------
# Exact priorities, the reserve rule
# ----------------------------------------------------------------------


def test_priority_order_behind_a_busy_pool(lab, kind) -> None:
    sup, _ = lab.pooled(kind, size=1, workers=2)
    got = Events()
    sup.subscribe("order/*", got)
    gate = lab.gate()
    first = run(sup, external_mp.wait_at_gate, gate.path, name="order/first")
    gate.arrived()
    tasks = [first]
    for label, priority in (
        ("L0", TASK_LOW),
        ("H1", TASK_HIGH),
        ("N2", TASK_NORMAL),
        ("L3", TASK_LOW),
        ("H4", TASK_HIGH),
        ("N5", TASK_NORMAL),
    ):
        tasks.append(
            run(sup, external_mp.add, 0, 0, priority=priority, name=f"order/{label}")
        )
    # CRITICAL: handed over at once, beyond the size.
    critical = run(
        sup,
        external_mp.wait_at_gate,
        gate.path,
        priority=TASK_CRITICAL,
        name="order/critical",
    )
    gate.arrived()
    assert critical.status == TASK_STATUS_STARTED
    assert pool_info(sup).running == 2
    assert all(t.status == TASK_STATUS_QUEUED for t in tasks[1:])
    gate.release()
    wait_completed([*tasks, critical], timeout=WAIT)
    events = got.take(3 * 8)  # queued, started, success of each
    started = [e.task_name for e in events if e.event == "started"]
    assert started == [
        f"order/{label}"
        for label in ("first", "critical", "H1", "H4", "N2", "N5", "L0", "L3")
    ]
    # Each was handed over only once the one before had ended.
    ordered = sorted(tasks[1:], key=lambda t: t.time_started)
    for before, after in zip(ordered, ordered[1:]):
        assert before.time_completed <= after.time_started


def test_reserve_rule(lab, kind) -> None:
    sup, _ = lab.pooled(kind, size=1, workers=2, reserve_high=1)
    gate = lab.gate()
    low, _ = blocker(sup, gate, priority=TASK_LOW)
    normal = run(sup, external_mp.add, 1, 1, priority=TASK_NORMAL)
    high, _ = blocker(sup, gate, priority=TASK_HIGH)  # starts beside the LOW
    # One thread hands over, in queue order: the NORMAL was passed over.
    assert normal.status == TASK_STATUS_QUEUED and normal.time_started is None
    info = pool_info(sup)
    assert info.running == 2
    assert info.queued[TASK_NORMAL] == 1
    gate.release()
    assert wait_completed([low, high, normal], timeout=WAIT) == [
        "released",
        "released",
        2,
    ]
    alive(sup)


def test_size_zero_hands_everything_over(lab) -> None:
    sup, _ = lab.pooled("thread", size=0, workers=3)
    gate = lab.gate()
    tasks = [
        run(sup, external_mp.wait_at_gate, gate.path, priority=TASK_LOW)
        for _ in range(3)
    ]
    for _ in tasks:
        gate.arrived()
    assert pool_info(sup).running == 3
    gate.release()
    assert wait_completed(tasks, timeout=WAIT) == ["released"] * 3


# ----------------------------------------------------------------------
# Cancel
# ----------------------------------------------------------------------


def test_cancel_queued_task(lab, kind) -> None:
    sup, executor = lab.pooled(kind)
    spy = Spy(executor)
    gate = lab.gate()
    held, _ = blocker(sup, gate)
    canceled = run(sup, external_mp.add, 1, 1)
    other = run(sup, external_mp.add, 2, 2)
    assert canceled.cancel() is True
    assert canceled.status == TASK_STATUS_CANCELED
    assert canceled.cancel_reason == "canceled"
    assert pool_info(sup).queued[TASK_NORMAL] == 1
    gate.release()
    assert wait_completed([held, other], timeout=WAIT) == ["released", 4]
    assert canceled.time_started is None
    # Handed over in queue order: the canceled task never reached the
    # executor (a future may end before the spy notes it: wait for both).
    spy.wait_for(2)
    assert spy.count == 2
    alive(sup)


def test_cancel_running_task(lab, kind) -> None:
    sup, _ = lab.pooled(kind)
    gate = lab.gate()
    running, _ = blocker(sup, gate)
    # Running in the executor: it cannot be stopped from outside.
    assert running.cancel() is False
    assert running.cancel_requested is True
    assert running.status == TASK_STATUS_STARTED
    gate.release()
    assert running.get(WAIT) == "released"  # it ignored the request
    assert running.status == TASK_STATUS_COMPLETED
    alive(sup)


def test_cancel_task_pending_in_the_executor(lab) -> None:
    # Our pool hands everything over (size=0); the executor's single thread
    # is busy, so the next calls wait in the executor's own queue.
    sup, executor = lab.pooled("thread", size=0, workers=1)
    spy = Spy(executor)
    gate = lab.gate()
    held, _ = blocker(sup, gate)
    ran = []
    pending = run(sup, ran.append, "pending")
    behind = run(sup, external_mp.add, 1, 1)
    # One thread hands over, in order: once the third call is in, the
    # second's future is known to its record.
    spy.wait_for(3)
    assert pending.status == TASK_STATUS_STARTED
    assert pending.cancel() is True
    assert pending.status == TASK_STATUS_CANCELED
    assert pending.cancel_reason == "canceled"
    assert spy.futures[1].cancelled()
    gate.release()
    assert wait_completed([held, behind], timeout=WAIT) == ["released", 2]
    assert ran == []
    alive(sup)


# ----------------------------------------------------------------------
# Retries, time limits
# ----------------------------------------------------------------------


def test_retry_is_a_new_submission(lab, kind) -> None:
    sup, executor = lab.pooled(kind)
    spy = Spy(executor)
    record = run(sup, external_mp.fail_first, str(lab.dir / "count"), retries=1)
    assert record.get(WAIT) == 2  # the second call
    assert record.retries == 1
    assert len(record.attempts) == 1  # the failed one
    spy.wait_for(2)
    assert spy.count == 2
    assert spy.futures[0] is not spy.futures[1]
    alive(sup)


def test_time_limit(lab, kind) -> None:
    sup, executor = lab.pooled(kind, size=1, workers=2)
    spy = Spy(executor)
    gate = lab.gate()
    limited, _ = blocker(sup, gate, time_limit=0.2)
    with pytest.raises(TaskTimeoutError):
        limited.get(WAIT)
    assert limited.status == TASK_STATUS_EXCEPTION
    assert isinstance(limited.exception, TaskTimeoutError)
    assert pool_info(sup).running == 0  # freed before the record woke
    # The executor's first worker is still blocked: the second runs this.
    alive(sup)
    gate.release()
    spy.wait_for(1)
    assert spy.futures[0].result(WAIT) == "released"  # a late answer...
    alive(sup)
    assert isinstance(limited.exception, TaskTimeoutError)  # ...is dropped
    assert limited.status == TASK_STATUS_EXCEPTION


def test_time_limit_cancels_a_call_pending_in_the_executor(lab) -> None:
    sup, executor = lab.pooled("thread", size=0, workers=1)
    spy = Spy(executor)
    gate = lab.gate()
    held, _ = blocker(sup, gate)
    ran = []
    pending = run(sup, ran.append, "pending", time_limit=0.1)
    with pytest.raises(TaskTimeoutError):
        pending.get(WAIT)
    spy.wait_for(2)
    assert done_event(spy.futures[1]).wait(WAIT)  # cancelled after the limit
    assert spy.futures[1].cancelled()
    gate.release()
    assert held.get(WAIT) == "released"
    alive(sup)
    assert ran == []


def test_task_raising_cancelled_error_ends_in_exception(lab, kind) -> None:
    # The executor's future was not cancelled: the task raised (as one that
    # waits on a canceled record does). A thread task ends in EXCEPTION.
    sup, _ = lab.pooled(kind)
    record = run(sup, external_mp.raise_cancelled, "inner wait canceled")
    assert record.wait(WAIT)
    assert record.status == TASK_STATUS_EXCEPTION, record.cancel_reason
    assert type(record.exception) is concurrent.futures.CancelledError
    assert record.cancel_reason is None
    alive(sup)


# ----------------------------------------------------------------------
# multiprocessing.Pool as mp_pool
# ----------------------------------------------------------------------


def test_mp_pool_results_and_exceptions(lab) -> None:
    sup = lab.supervisor(start=False)
    assert sup.mp_pool is None
    pool = lab.mp_pool(2)
    sup.mp_pool = pool  # before start(): the pool is made by start()
    assert sup.mp_pool is pool
    sup.start()
    info = pool_info(sup, "mp_pool")
    assert (info.size, info.reserve_normal, info.reserve_high) == (2, 0, 0)
    assert mp_task(sup, external_mp.add)(2, 3).get(WAIT) == 5
    failed = mp_task(sup, external_mp.remote_failure)("boom")
    with pytest.raises(ValueError, match="boom"):
        failed.get(WAIT)
    assert failed.status == TASK_STATUS_EXCEPTION
    assert "remote_failure" in failed.traceback
    # The user's Pool ran it.
    assert mp_task(sup, external_mp.pid)().get(WAIT) in {p.pid for p in pool._pool}
    assert mp_task(sup, external_mp.add)(1, 1).get(WAIT) == 2


def test_mp_pool_size_from_set_mp_pool(lab) -> None:
    sup = lab.supervisor()
    sup.set_mp_pool(pool_size=3, reserve_normal=1, reserve_high=2)
    sup.mp_pool = lab.mp_pool(1)
    info = pool_info(sup, "mp_pool")
    assert (info.size, info.reserve_normal, info.reserve_high) == (3, 1, 2)
    assert mp_task(sup, external_mp.add)(1, 2).get(WAIT) == 3


def test_mp_pool_none_goes_back_and_the_pool_stays_open(lab) -> None:
    sup = lab.supervisor()
    pool = lab.mp_pool(1)
    sup.mp_pool = pool
    assert mp_task(sup, external_mp.add)(1, 2).get(WAIT) == 3
    sup.mp_pool = None
    assert sup.mp_pool is not pool
    assert "mp_pool" not in sup.get_info().pools
    sup.mp_pool = pool
    assert mp_task(sup, external_mp.add)(2, 2).get(WAIT) == 4
    sup.stop(wait=WAIT)
    # atasker never closes the user's Pool.
    assert pool.apply_async(external_mp.add, (3, 3)).get(WAIT) == 6


def test_mp_pool_replaced_while_running(lab) -> None:
    sup = lab.supervisor()
    old, new = lab.mp_pool(1), lab.mp_pool(1)
    sup.mp_pool = old
    gate = lab.gate()
    held = mp_task(sup, external_mp.wait_at_gate)(gate.path)
    old_pid = gate.arrived()
    queued = mp_task(sup, external_mp.pid)()
    sup.mp_pool = new
    assert sup.mp_pool is new
    # New tasks go to the new Pool at once; the old one is still blocked.
    new_pid = mp_task(sup, external_mp.pid)().get(WAIT)
    assert new_pid != old_pid
    assert queued.status == TASK_STATUS_QUEUED
    gate.release()
    assert held.get(WAIT) == "released"
    assert queued.get(WAIT) == old_pid  # it stayed where it was


def test_retry_after_mp_pool_replaced(lab) -> None:
    sup = lab.supervisor()
    first, second = lab.mp_pool(1), lab.mp_pool(1)
    sup.mp_pool = first

    def replace(record, exc):  # runs before the next attempt is scheduled
        sup.mp_pool = second

    record = mp_task(sup, external_mp.fail_first, retries=1, on_retry=replace)(
        str(lab.dir / "count")
    )
    assert record.wait(WAIT)
    assert sup.mp_pool is second
    assert record.retries == 1
    assert record.get(WAIT) == 2  # the retry ran (in either Pool)
    assert mp_task(sup, external_mp.add)(1, 1).get(WAIT) == 2


def test_mp_pool_worker_killed_ends_by_time_limit(lab) -> None:
    sup = lab.supervisor()
    pool = lab.mp_pool(1)
    sup.mp_pool = pool
    before = mp_task(sup, external_mp.pid)().get(WAIT)  # the worker is up
    gate = lab.gate()
    lost = mp_task(sup, external_mp.wait_at_gate, time_limit=0.5)(gate.path)
    pid = gate.arrived()
    assert pid == before
    os.kill(pid, signal.SIGKILL)
    # A Pool never reports the lost call: the time limit ends it.
    with pytest.raises(TaskTimeoutError):
        lost.get(WAIT)
    assert pool_info(sup, "mp_pool").running == 0
    # The same Pool, through its new worker.
    assert mp_task(sup, external_mp.pid)().get(WAIT) != pid
    assert sup.mp_pool is pool


# ----------------------------------------------------------------------
# Lost workers, pickling at the call
# ----------------------------------------------------------------------


def test_process_executor_worker_killed(lab) -> None:
    sup, _ = lab.pooled("process", size=1, workers=1)
    gate = lab.gate()
    lost = run(sup, external_mp.wait_at_gate, gate.path)
    behind = run(sup, external_mp.add, 1, 1)
    os.kill(gate.arrived(), signal.SIGKILL)
    with pytest.raises(WorkerLostError) as error:
        lost.get(WAIT)
    assert lost.status == TASK_STATUS_EXCEPTION
    assert isinstance(error.value.__cause__, concurrent.futures.BrokenExecutor)
    # The stdlib broke the whole executor: what comes next is lost too.
    with pytest.raises(WorkerLostError):
        behind.get(WAIT)
    sup.remove_pool("x", wait=False)
    sup.add_pool("x", lab.executor("process", 1), 1)
    alive(sup)


def test_executor_shut_down_by_its_owner(lab, kind) -> None:
    sup, executor = lab.pooled(kind)
    alive(sup)
    executor.shutdown(wait=True)
    refused = run(sup, external_mp.add, 1, 1)
    with pytest.raises(RuntimeError):  # its submit refuses: the task fails
        refused.get(WAIT)
    assert refused.status == TASK_STATUS_EXCEPTION
    sup.remove_pool("x")
    sup.add_pool("x", lab.executor(kind), 1)
    alive(sup)


def test_unpicklable_arguments_refused_at_the_call(lab) -> None:
    sup, _ = lab.pooled("process")
    pool = lab.mp_pool(1)
    sup.mp_pool = pool
    with pytest.raises(TypeError, match="pickle"):
        sup.submit(external_mp.add, (threading.Lock(), 1), pool="x", task_id="xp-args")
    assert sup.get_task("xp-args") is None
    with pytest.raises(TypeError, match="pickle"):
        sup.submit(lambda: 1, pool="x", task_id="xp-target")
    assert sup.get_task("xp-target") is None
    with pytest.raises(TypeError, match="pickle"):
        mp_task(sup, external_mp.add).apply_async(
            (threading.Lock(), 1), task_id="xp-mp-args"
        )
    assert sup.get_task("xp-mp-args") is None
    alive(sup)
    assert mp_task(sup, external_mp.add)(1, 1).get(WAIT) == 2


def test_thread_executor_takes_anything(lab) -> None:
    sup, _ = lab.pooled("thread")
    lock = threading.Lock()
    assert run(sup, lambda lk: lk.locked(), lock).get(WAIT) is False


# ----------------------------------------------------------------------
# Bad arguments
# ----------------------------------------------------------------------


def test_add_pool_bad_arguments(lab) -> None:
    sup = lab.supervisor()
    executor = lab.executor("thread")
    with pytest.raises(TypeError, match="executor"):
        sup.add_pool("x", object(), 1)
    with pytest.raises(TypeError, match="executor"):
        sup.add_pool("x", lambda f: f(), 1)
    with pytest.raises(ValueError, match="mp_pool"):
        sup.add_pool("mp_pool", executor, 1)
    with pytest.raises((TypeError, ValueError), match="name"):
        sup.add_pool("", executor, 1)
    with pytest.raises(ValueError, match="size"):
        sup.add_pool("x", executor, -1)
    with pytest.raises(ValueError, match="reserve_normal"):
        sup.add_pool("x", executor, 1, reserve_normal=-1)
    with pytest.raises(ValueError, match="reserve_high"):
        sup.add_pool("x", executor, 1, reserve_high=-1)
    with pytest.raises(TypeError, match="size"):
        sup.add_pool("x", executor, "1")
    assert sup.get_info().pools == {}  # nothing refused was kept
    sup.add_pool("x", executor, 1)
    with pytest.raises(ValueError, match="'x'"):
        sup.add_pool("x", lab.executor("thread"), 1)
    assert set(sup.get_info().pools) == {"x"}
    with pytest.raises(ValueError, match="no pool"):
        sup.remove_pool("nope")
    alive(sup)


def test_pool_option_bad_uses(lab) -> None:
    sup, _ = lab.pooled("thread")
    with pytest.raises(ValueError, match=r"pool: supervisor .* has no pool 'nope'"):
        sup.submit(external_mp.add, (1, 1), pool="nope", task_id="xp-unknown")
    assert sup.get_task("xp-unknown") is None
    with pytest.raises(ValueError, match="no pool 'nope'"):
        background_task(external_mp.add, supervisor=sup).apply_async(
            (1, 1), pool="nope"
        )
    with pytest.raises(TypeError, match="pool"):
        sup.submit(external_mp.add, (1, 1), pool=5)

    async def coroutine():
        return 1

    with pytest.raises(TypeError, match="coroutine"):
        sup.submit(coroutine, pool="x", task_id="xp-coroutine")
    assert sup.get_task("xp-coroutine") is None
    with pytest.raises(TypeError, match="coroutine"):
        background_task(coroutine, supervisor=sup).apply_async(pool="x")
    # bind and soft_time_limit: refused when the options are made.
    with pytest.raises(ValueError, match="bind"):
        background_task(external_mp.add, pool="x", bind=True, supervisor=sup)
    with pytest.raises(ValueError, match="soft_time_limit"):
        background_task(external_mp.add, pool="x", soft_time_limit=1)
    bound = background_task(external_mp.add, bind=True, supervisor=sup)
    with pytest.raises(ValueError, match="bind"):
        bound.apply_async((1, 1), pool="x")
    plain = background_task(external_mp.add, supervisor=sup)
    with pytest.raises(ValueError, match="soft_time_limit"):
        plain.apply_async((1, 1), pool="x", soft_time_limit=1)
    alive(sup)


def test_mp_pool_refuses_anything_but_a_pool(lab) -> None:
    sup = lab.supervisor()
    for wrong in (lab.executor("thread"), "pool", 5):
        with pytest.raises(TypeError):
            sup.mp_pool = wrong
    assert sup.mp_pool is None
    assert sup.get_info().pools == {}


@pytest.mark.parametrize(
    "option", [{"bind": True}, {"soft_time_limit": 1}], ids=["bind", "soft"]
)
def test_mp_pool_refuses_what_an_executor_cannot_give(lab, option) -> None:
    """A context (bind) and a soft limit need the built-in worker: a task
    routed to a multiprocessing Pool with them is refused at the call, as
    pool= refuses them."""
    sup = lab.supervisor()
    sup.mp_pool = lab.mp_pool(1)
    with pytest.raises(ValueError, match=next(iter(option))):
        sup.submit(external_mp.add, (1, 2), tt=TT_MP, **option)
    assert sup.get_info().tasks == {}
    assert sup.submit(external_mp.add, (1, 2), tt=TT_MP).get(WAIT) == 3


# ----------------------------------------------------------------------
# Lifecycle: before start, across restarts, shutdown=True
# ----------------------------------------------------------------------


def test_add_pool_before_start_and_across_restarts(lab, kind) -> None:
    sup = lab.supervisor(start=False)
    executor = lab.executor(kind)
    sup.add_pool("x", executor, 1)
    sup.start()
    alive(sup)
    sup.stop(wait=WAIT)
    sup.start()
    assert set(sup.get_info().pools) == {"x"}
    alive(sup)
    sup.stop(wait=WAIT)
    # The executor is its owner's: it still works.
    assert executor.submit(external_mp.add, 1, 2).result(WAIT) == 3


def test_shutdown_true_on_stop(lab) -> None:
    sup = lab.supervisor()
    recorder = lab.keep(external_mp.ShutdownRecorder(EXECUTOR_THREADS))
    sup.add_pool("x", recorder, 1, shutdown=True)
    alive(sup)
    sup.stop(wait=WAIT)
    assert recorder.shutdowns == [True]
    sup.start()
    assert sup.get_info().pools == {}  # forgotten
    with pytest.raises(ValueError, match="no pool 'x'"):
        run(sup, external_mp.add, 1, 1)
    sup.add_pool("x", lab.executor("thread"), 1)  # the name is free again
    alive(sup)


def test_shutdown_true_on_remove_pool(lab) -> None:
    sup = lab.supervisor()
    recorder = lab.keep(external_mp.ShutdownRecorder(EXECUTOR_THREADS))
    sup.add_pool("x", recorder, 1, shutdown=True)
    alive(sup)
    sup.remove_pool("x")
    assert recorder.shutdowns == [True]


def test_shutdown_true_pool_closed_on_stop(lab) -> None:
    sup = lab.supervisor()
    pool = lab.mp_pool(1)
    sup.add_pool("p", pool, 1, shutdown=True)
    alive(sup, pool="p")
    sup.stop(wait=WAIT)
    with pytest.raises(ValueError):  # closed: it takes nothing more
        pool.apply_async(external_mp.add, (1, 1))


def test_remove_pool_without_waiting_shutdown_pool_in_flight_ends(lab) -> None:
    sup = lab.supervisor()
    pool = lab.mp_pool(1)
    sup.add_pool("p", pool, 1, shutdown=True)
    gate = lab.gate()
    held, _ = blocker(sup, gate, pool="p")
    sup.remove_pool("p", wait=False)
    # The Pool is terminated: its call would never report, so the record
    # ends with the removal.
    assert held.wait(WAIT), held
    assert held.status == TASK_STATUS_CANCELED
    assert held.cancel_reason == "pool removed"
    gate.release()


# ----------------------------------------------------------------------
# remove_pool
# ----------------------------------------------------------------------


def test_remove_pool_waits(lab, kind) -> None:
    sup, _ = lab.pooled(kind)
    gate = lab.gate()
    held, _ = blocker(sup, gate)
    queued = [run(sup, external_mp.add, i, 1) for i in range(2)]
    draining = signal_on(sup._external["x"], "shutdown")
    remover = threading.Thread(target=sup.remove_pool, args=("x",))
    remover.start()
    try:
        assert draining.wait(WAIT)  # removed, and waiting for its tasks
        assert "x" not in sup.get_info().pools
        with pytest.raises(ValueError, match="no pool 'x'"):
            run(sup, external_mp.add, 1, 1)
        assert remover.is_alive()  # the task in flight cannot end yet
    finally:
        gate.release()
        remover.join(WAIT)
    assert not remover.is_alive()
    # Queued tasks ran, and all had ended when remove_pool returned.
    assert [r.status for r in (held, *queued)] == [TASK_STATUS_COMPLETED] * 3
    assert [r.result for r in (held, *queued)] == ["released", 1, 2]
    sup.add_pool("x", lab.executor("thread"), 1)
    alive(sup)


def test_remove_pool_without_waiting(lab, kind) -> None:
    sup, executor = lab.pooled(kind)
    gate = lab.gate()
    held, _ = blocker(sup, gate)
    queued = [run(sup, external_mp.add, i, 1) for i in range(2)]
    sup.remove_pool("x", wait=False)
    for record in queued:  # at once
        assert record.status == TASK_STATUS_CANCELED
        assert record.cancel_reason == "pool removed"
    assert held.status == TASK_STATUS_STARTED
    with pytest.raises(ValueError, match="no pool 'x'"):
        run(sup, external_mp.add, 1, 1)
    gate.release()
    assert held.get(WAIT) == "released"  # in flight: it completes
    sup.add_pool("x", executor, 1)
    alive(sup)


def test_remove_pool_with_a_deadline(lab) -> None:
    sup, executor = lab.pooled("thread")
    gate = lab.gate()
    held, _ = blocker(sup, gate)
    queued = run(sup, external_mp.add, 1, 1)
    sup.remove_pool("x", wait=0.1)
    for record in (held, queued):
        assert record.status == TASK_STATUS_CANCELED
        assert record.cancel_reason == "pool removed"
    gate.release()
    sup.add_pool("x", executor, 1)
    alive(sup)
    assert held.status == TASK_STATUS_CANCELED


# ----------------------------------------------------------------------
# stop() with work in flight
# ----------------------------------------------------------------------


def test_stop_runs_queued_tasks(lab) -> None:
    sup, _ = lab.pooled("thread")
    gate = lab.gate()
    held, _ = blocker(sup, gate)
    queued = [run(sup, external_mp.add, i, 1) for i in range(2)]
    draining = signal_on(sup._external["x"], "_wait_drained_locked")
    stopper = threading.Thread(target=sup.stop, kwargs={"wait": WAIT})
    stopper.start()
    try:
        assert draining.wait(WAIT)  # the stop drains the pool
        assert not sup.active
        assert [r.status for r in queued] == [TASK_STATUS_QUEUED] * 2
    finally:
        gate.release()
        stopper.join(WAIT)
    assert not stopper.is_alive()
    assert [r.result for r in (held, *queued)] == ["released", 1, 2]
    sup.start()
    alive(sup)


def test_stop_deadline_cancels_what_is_left(lab, kind) -> None:
    sup, _ = lab.pooled(kind, size=1, workers=2)
    gate = lab.gate()
    held, _ = blocker(sup, gate)
    queued = [run(sup, external_mp.add, i, 1) for i in range(2)]
    sup.stop(wait=0.2)
    for record in (held, *queued):
        assert record.status == TASK_STATUS_CANCELED
        assert record.cancel_reason == "stopped"
    gate.release()
    sup.start()  # the same executor, its blocked worker free again or not
    alive(sup)
    assert held.status == TASK_STATUS_CANCELED


def test_stop_cancel_tasks(lab, kind) -> None:
    sup, _ = lab.pooled(kind)
    gate = lab.gate()
    held, _ = blocker(sup, gate)
    queued = [run(sup, external_mp.add, i, 1) for i in range(2)]
    stopper = threading.Thread(
        target=sup.stop, kwargs={"wait": WAIT, "cancel_tasks": True}
    )
    stopper.start()
    try:
        for record in queued:
            assert record.wait(WAIT)
            assert record.status == TASK_STATUS_CANCELED
            assert record.cancel_reason == "stopped"
        assert held.status == TASK_STATUS_STARTED  # waited for
    finally:
        gate.release()
        stopper.join(WAIT)
    assert not stopper.is_alive()
    assert held.status == TASK_STATUS_COMPLETED
    sup.start()
    alive(sup)


# ----------------------------------------------------------------------
# Hooks, callback, events, expires, depends_on
# ----------------------------------------------------------------------


def test_hooks_callback_and_events(lab, kind) -> None:
    sup, _ = lab.pooled(kind)
    got = Events()
    sup.subscribe("xp/*", got)
    calls = queue.Queue()

    def hook(name):
        def call(*args):
            calls.put((name, threading.current_thread().name, os.getpid(), args[1:]))

        return call

    hooks = {
        "on_success": hook("on_success"),
        "on_error": hook("on_error"),
        "callback": lambda result: calls.put(
            ("callback", threading.current_thread().name, os.getpid(), (result,))
        ),
    }
    add = background_task(
        external_mp.add, name="xp/add", pool="x", supervisor=sup, **hooks
    )
    ok = add(20, 22)
    assert ok.get(WAIT) == 42
    seen = {}
    for _ in range(2):
        name, thread, pid, args = calls.get(timeout=WAIT)
        seen[name] = args
        assert pid == os.getpid()  # locally
        assert not thread.startswith(EXECUTOR_THREADS)
    assert seen == {"on_success": (42,), "callback": (42,)}
    assert got.until_final(ok.id) == ["queued", "started", "success"]
    assert all(isinstance(e, TaskEvent) for e in got.events)

    fail = background_task(
        external_mp.remote_failure,
        name="xp/fail",
        pool="x",
        supervisor=sup,
        **hooks,
    )
    failed = fail("boom")
    assert failed.wait(WAIT)
    name, thread, pid, args = calls.get(timeout=WAIT)
    assert name == "on_error" and type(args[0]) is ValueError
    assert got.until_final(failed.id) == ["queued", "started", "exception"]
    assert calls.empty()  # no callback for a failure
    alive(sup)


def test_expires_while_queued(lab) -> None:
    sup, _ = lab.pooled("thread")
    gate = lab.gate()
    held, _ = blocker(sup, gate)
    stale = run(sup, external_mp.add, 1, 1, expires=0.05)
    assert stale.wait(WAIT)
    assert stale.status == TASK_STATUS_CANCELED
    assert stale.cancel_reason == "expired"
    gate.release()
    assert held.get(WAIT) == "released"
    alive(sup)


def test_depends_on(lab, kind) -> None:
    sup, _ = lab.pooled(kind)
    gate = lab.gate()
    first = run(sup, external_mp.wait_at_gate, gate.path)
    second = run(sup, external_mp.add, 1, 1, depends_on=[first])
    gate.arrived()
    assert second.time_started is None
    gate.release()
    assert second.get(WAIT) == 2
    assert second.time_started >= first.time_completed


# ----------------------------------------------------------------------
# co_apply, map
# ----------------------------------------------------------------------


def test_co_apply(lab, kind) -> None:
    sup, _ = lab.pooled(kind)

    async def main():
        return await co_apply(external_mp.add, args=(20, 22), pool="x", supervisor=sup)

    assert asyncio.run(main()) == 42


def test_map(lab, kind) -> None:
    sup, _ = lab.pooled(kind, size=2)
    square = background_task(external_mp.square, supervisor=sup)
    for chunksize in (1, 3):
        result = square.map(range(10), chunksize, pool="x")
        assert result.get(WAIT) == [i * i for i in range(10)]
    alive(sup)
