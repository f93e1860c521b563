"""External pools: regressions from the review of the first version (each
test failed before the fixes of commit 3934480 and passes since).

A stop or remove_pool of a ``shutdown=True`` pool with a call abandoned at
its time limit; stop() from a task in an external thread executor; a
shutdown or a cancel that lands while a task is being handed over; a
remove_pool while a task is admitted; a waiting task whose pool is replaced
under it (by another kind of executor, too); remove_pool and stop at once;
add_pool during start(); a start() that fails; the engine's future kept
alive by a cycle.

Interleavings are forced with Events: executors whose ``submit`` blocks,
and, where only an internal step opens the window, a monkeypatched step that
waits (as the review's scripts did). Every wait has a timeout, and every
test ends with one more task through the pool (or its replacement)."""

from __future__ import annotations

import concurrent.futures
import gc
import multiprocessing
import threading
import weakref

import external_faults_mp
import external_mp
import pytest
from conftest import WAIT, Gate, run_script, supervisor_threads
from external_faults_mp import Probe, pickled_in

from atasker import (
    TASK_CRITICAL,
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TASK_STATUS_QUEUED,
    TaskTimeoutError,
    wait_completed,
)
from atasker.core.task import TaskInfo
from atasker.pools.external import ExternalPool

# Not "fork": a fork of this multi-threaded process warns on 3.12+.
MP_CONTEXT = multiprocessing.get_context("forkserver")
EXECUTOR_THREADS = "xf_executor"


# ----------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------


class Kit:
    """Supervisors, executors and Events of one test. ``close()`` sets the
    Events (nothing stays blocked), stops the supervisors, then shuts the
    executors down."""

    def __init__(self, make_supervisor):
        self._make = make_supervisor
        self._supervisors = []
        self._executors = []
        self._events = []

    def supervisor(self, start=True):
        sup = self._make(keep_finished=100)
        sup.log_exceptions = False
        self._supervisors.append(sup)
        if start:
            sup.start()
        return sup

    def keep(self, executor):
        self._executors.append(executor)
        return executor

    def threads(self, workers=2, prefix=EXECUTOR_THREADS):
        return self.keep(
            concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix=prefix)
        )

    def processes(self):
        return self.keep(
            concurrent.futures.ProcessPoolExecutor(1, mp_context=MP_CONTEXT)
        )

    def event(self):
        event = threading.Event()
        self._events.append(event)
        return event

    def gate(self):
        gate = Gate()
        self._events.append(gate.release)
        return gate

    def close(self):
        for event in self._events:
            event.set()
        for sup in self._supervisors:
            sup.stop(wait=WAIT)
        for executor in self._executors:
            executor.shutdown(wait=True)


@pytest.fixture
def kit(make_supervisor):
    made = Kit(make_supervisor)
    try:
        yield made
    finally:
        made.close()


class HeldSubmit(concurrent.futures.Executor):
    """``submit()`` blocks until ``go`` is set (a busy Dask client, a lock);
    the calls then run on one thread, which stays busy until ``unplug()``:
    what was handed over meanwhile is pending, so it can be cancelled."""

    def __init__(self, kit):
        self.inner = kit.keep(
            concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix=EXECUTOR_THREADS
            )
        )
        self.in_submit = threading.Event()
        self.go = kit.event()
        self._plug = kit.event()
        self.futures = []
        self.inner.submit(self._plug.wait, WAIT)

    def submit(self, fn, /, *args, **kwargs):
        self.in_submit.set()
        self.go.wait(WAIT)
        future = self.inner.submit(fn, *args, **kwargs)
        self.futures.append(future)
        return future

    def unplug(self):
        """Let the calls run; return once those submitted so far have run
        (or were skipped, cancelled)."""
        self._plug.set()
        self.inner.submit(int).result(WAIT)

    def shutdown(self, wait=True, **kwargs):
        self._plug.set()
        self.go.set()
        self.inner.shutdown(wait=wait)


class NeverReports(concurrent.futures.Executor):
    """Like a multiprocessing Pool that lost the worker: a call never
    reports (only its time limit ends it)."""

    def __init__(self):
        self.submitted = threading.Event()

    def submit(self, fn, /, *args, **kwargs):
        self.submitted.set()
        future = concurrent.futures.Future()
        future.set_running_or_notify_cancel()  # cannot be taken back
        return future


def count_submits(executor):
    """The list of calls ``executor.submit`` gets from now on."""
    calls = []
    submit = executor.submit

    def counting(*args, **kwargs):
        calls.append(args[0])
        return submit(*args, **kwargs)

    executor.submit = counting
    return calls


def hold_set_started(monkeypatch, sup, name, pool="x"):
    """Make the hand-over thread of ``pool`` wait right after it started the
    task ``name`` (STARTED, not yet handed to the executor). Returns the
    Events (it started, let it go on)."""
    started, resume = threading.Event(), threading.Event()
    set_started = TaskInfo.set_started
    thread = f"supervisor_{sup.id}_pool_{pool}"

    def holding(self, defer=None):
        ok = set_started(self, defer)
        if self.name == name and threading.current_thread().name == thread:
            started.set()
            resume.wait(WAIT)
        return ok

    monkeypatch.setattr(TaskInfo, "set_started", holding)
    return started, resume


def hand_over_thread(sup, pool="x"):
    name = f"supervisor_{sup.id}_pool_{pool}"
    (thread,) = [t for t in threading.enumerate() if t.name == name]
    return thread


def no_threads_left(sup):
    for thread in supervisor_threads(sup.id):
        thread.join(WAIT)
    assert supervisor_threads(sup.id) == []


def alive(sup, pool="x"):
    """One more task through ``pool``."""
    record = sup.submit(external_faults_mp.square, (7,), pool=pool)
    assert record.get(WAIT) == 49


def outcome(record):
    return record.status, record.cancel_reason, record.exception


# ----------------------------------------------------------------------
# A call abandoned at its time limit (review r1, r1b)
# ----------------------------------------------------------------------


@pytest.mark.parametrize("end", ["stop", "remove_pool"])
def test_ending_shutdown_pool_does_not_wait_for_call_past_its_time_limit(
    kit, end
) -> None:
    sup = kit.supervisor()
    executor = kit.keep(external_mp.ShutdownRecorder(EXECUTOR_THREADS))
    sup.add_pool("x", executor, 1, shutdown=True)
    gate = kit.gate()
    record = sup.submit(gate.block, pool="x", time_limit=0.2)
    gate.wait_started()
    assert record.wait(WAIT)
    assert isinstance(record.exception, TaskTimeoutError)  # the call runs on
    deadline = WAIT / 2
    if end == "stop":
        ender = threading.Thread(target=sup.stop, args=(deadline,), daemon=True)
    else:
        ender = threading.Thread(target=sup.remove_pool, args=("x", False), daemon=True)
    ender.start()
    ender.join(deadline)
    waited = ender.is_alive()
    gate.release.set()
    assert not waited, f"{end}() waits for the call abandoned at its time limit"
    # The executor is shut down without waiting for that call.
    assert executor.shutdowns == [False]
    if end == "stop":
        sup.start()
    sup.add_pool("x", kit.threads(), 1)  # the pool was forgotten
    alive(sup)


# ----------------------------------------------------------------------
# stop() from a task in an external thread executor (review r2)
# ----------------------------------------------------------------------

# In a fresh interpreter: before the fix, stop() waited for itself for ever.
STOP_FROM_EXECUTOR_THREAD = """
import concurrent.futures, os, threading
from atasker import TaskSupervisor

WAIT = 3.0
def say(*words):
    print(*words, flush=True)
def threads(sup):
    prefix = f"supervisor_{sup.id}_"
    return [t for t in threading.enumerate() if t.name.startswith(prefix)]

executor = concurrent.futures.ThreadPoolExecutor(2)
sup = TaskSupervisor(supervisor_id="xf_stopper")
sup.start()
sup.add_pool("x", executor, 1)
returned = threading.Event()
def stopper():
    sup.stop()  # wait=True
    returned.set()
    return "done"
record = sup.submit(stopper, pool="x")
if not returned.wait(WAIT):
    say("hung")
    os._exit(0)
stopped = threading.Event()
threading.Thread(target=lambda: (sup.block(), stopped.set()), daemon=True).start()
say("returned", stopped.wait(WAIT), record.get(WAIT))
for thread in threads(sup):
    thread.join(WAIT)
say("left", len(threads(sup)))
sup.start()
say("alive", sup.submit(pow, (2, 5), pool="x").get(WAIT))
sup.stop(wait=WAIT)
executor.shutdown()
os._exit(0)
"""


def test_stop_from_task_in_external_thread_executor() -> None:
    words = run_script(STOP_FROM_EXECUTOR_THREAD)
    assert words == ["returned", "True", "done", "left", "0", "alive", "32"]


# ----------------------------------------------------------------------
# A shutdown while the executor's submit is under way (review r3)
# ----------------------------------------------------------------------


def test_shutdown_during_submit_cancels_the_engines_future(kit) -> None:
    sup = kit.supervisor()
    executor = HeldSubmit(kit)
    sup.add_pool("x", executor, 1)
    handing_over = hand_over_thread(sup)
    ran = []
    record = sup.submit(ran.append, ("late",), pool="x")
    assert executor.in_submit.wait(WAIT)
    sup.stop(wait=False)  # the deadline is now: what is in flight ends
    assert outcome(record) == (TASK_STATUS_CANCELED, "stopped", None)
    executor.go.set()  # the submit returns
    handing_over.join(WAIT)
    assert not handing_over.is_alive()
    (future,) = executor.futures
    assert future.cancelled(), "the call was handed over after stop() and runs"
    executor.unplug()
    assert ran == []
    assert outcome(record) == (TASK_STATUS_CANCELED, "stopped", None)
    sup.start()  # the pool is kept (shutdown=False)
    alive(sup)


# ----------------------------------------------------------------------
# cancel() during the hand-over (review r4)
# ----------------------------------------------------------------------


def test_cancel_of_task_started_not_yet_handed_over(kit, monkeypatch) -> None:
    sup = kit.supervisor()
    executor = kit.threads()
    submitted = count_submits(executor)
    sup.add_pool("x", executor, 1)
    started, resume = hold_set_started(monkeypatch, sup, "held")
    ran = []
    record = sup.submit(ran.append, ("held",), pool="x", name="held")
    assert started.wait(WAIT)
    record.cancel("by the test")
    assert record.cancel_requested
    resume.set()
    assert record.wait(WAIT)
    assert outcome(record) == (TASK_STATUS_CANCELED, "by the test", None)
    assert submitted == [], "the canceled task was handed to the executor"
    assert ran == []
    alive(sup)


def test_cancel_during_the_executors_submit(kit) -> None:
    sup = kit.supervisor()
    executor = HeldSubmit(kit)
    sup.add_pool("x", executor, 1)
    ran = []
    record = sup.submit(ran.append, ("held",), pool="x")
    assert executor.in_submit.wait(WAIT)
    record.cancel("by the test")
    assert record.cancel_requested
    executor.go.set()  # the submit returns: the call is pending there
    assert record.wait(WAIT)
    assert outcome(record) == (TASK_STATUS_CANCELED, "by the test", None)
    (future,) = executor.futures
    assert future.cancelled()
    executor.unplug()
    assert ran == []
    alive(sup)


# ----------------------------------------------------------------------
# remove_pool(wait=False) with a task admitted, not handed over (review r5)
# ----------------------------------------------------------------------


def test_remove_pool_without_waiting_while_a_task_is_admitted(kit, monkeypatch) -> None:
    sup = kit.supervisor()
    executor = kit.threads()
    sup.add_pool("x", executor, 1)
    started, resume = hold_set_started(monkeypatch, sup, "admitted")
    ran = []
    admitted = sup.submit(ran.append, ("admitted",), pool="x", name="admitted")
    assert started.wait(WAIT)
    queued = sup.submit(ran.append, ("queued",), pool="x")  # behind it (size 1)
    assert queued.status == TASK_STATUS_QUEUED
    sup.remove_pool("x", wait=False)
    assert outcome(queued) == (TASK_STATUS_CANCELED, "pool removed", None)
    resume.set()
    assert admitted.wait(WAIT)
    assert sup.active
    # It had not reached the executor: it runs, or ends as a queued one.
    assert outcome(admitted) in (
        (TASK_STATUS_COMPLETED, None, None),
        (TASK_STATUS_CANCELED, "pool removed", None),
    )
    assert ran == (["admitted"] if admitted.status == TASK_STATUS_COMPLETED else [])
    sup.add_pool("x", executor, 1)
    alive(sup)


# ----------------------------------------------------------------------
# A waiting task whose pool is replaced as it goes there (review r6)
# ----------------------------------------------------------------------


@pytest.mark.parametrize("waiting", ["delayed", "retry"])
def test_waiting_task_follows_its_pool_replaced_meanwhile(
    kit, monkeypatch, waiting
) -> None:
    sup = kit.supervisor()
    sup.add_pool("x", kit.threads(), 1)
    new = kit.threads(prefix="xf_new")
    old = sup._external["x"]
    submit = old.submit
    calls = []
    # The delayed task's first submit; the retry's second one.
    replace_at = 1 if waiting == "delayed" else 2

    def replace():
        sup.remove_pool("x", wait=False)
        sup.add_pool("x", new, 1)

    def replaced_then_submit(task):
        calls.append(task)
        if len(calls) == replace_at:
            # Another thread replaces the pool right now (joined).
            replacer = threading.Thread(target=replace)
            replacer.start()
            replacer.join(WAIT)
            assert not replacer.is_alive()
        return submit(task)

    monkeypatch.setattr(old, "submit", replaced_then_submit)
    attempts = []

    def where():
        attempts.append(threading.current_thread().name)
        if waiting == "retry" and len(attempts) == 1:
            raise ValueError("first attempt")
        return threading.current_thread().name

    if waiting == "delayed":
        record = sup.submit(where, pool="x", delay=0.01)
    else:
        record = sup.submit(where, pool="x", retries=1)
    assert record.wait(WAIT)
    assert record.status == TASK_STATUS_COMPLETED, outcome(record)
    assert record.result.startswith("xf_new")  # in the new pool
    assert len(calls) == replace_at
    if waiting == "retry":
        assert record.retries == 1
    assert sup.submit(where, pool="x").get(WAIT).startswith("xf_new")


# ----------------------------------------------------------------------
# remove_pool(wait=True) and stop() at once (review r7)
# ----------------------------------------------------------------------


def test_stop_during_remove_pool_ends_its_task(kit, monkeypatch) -> None:
    sup = kit.supervisor()
    executor = NeverReports()
    sup.add_pool("x", executor, 1)
    ended = []  # (pool, reason) of each ExternalPool.shutdown
    removing = threading.Event()
    shutdown = ExternalPool.shutdown

    def noting(self, deadline, reason="stopped"):
        ended.append((self.name, reason))
        if reason == "pool removed":
            removing.set()
        return shutdown(self, deadline, reason)

    monkeypatch.setattr(ExternalPool, "shutdown", noting)
    record = sup.submit(external_faults_mp.square, (2,), pool="x", time_limit=0.2)
    assert executor.submitted.wait(WAIT)
    remover = threading.Thread(target=sup.remove_pool, args=("x",), daemon=True)
    remover.start()
    assert removing.wait(WAIT)  # remove_pool waits for the task in flight
    stopper = threading.Thread(target=sup.stop, daemon=True)  # wait=True
    stopper.start()
    stopper.join(WAIT)
    assert not stopper.is_alive()
    # stop() ended the pool being removed too: its task ended by its time
    # limit (the timer still ran), not left STARTED for ever.
    assert ("x", "stopped") in ended
    assert record.done(), "stop() returned; the task still runs"
    assert isinstance(record.exception, TaskTimeoutError)
    remover.join(WAIT)
    assert not remover.is_alive()
    no_threads_left(sup)
    sup.start()
    sup.add_pool("x", kit.threads(), 1)
    alive(sup)


def test_stop_with_a_deadline_during_remove_pool_lets_it_return(kit) -> None:
    """stop() cancels the call in flight at its deadline; the remove_pool()
    draining the same pool (no deadline) sees its slot freed and returns."""
    sup = kit.supervisor()
    executor = NeverReports()
    sup.add_pool("x", executor, 1)
    record = sup.submit(external_faults_mp.square, (2,), pool="x")
    assert executor.submitted.wait(WAIT)
    removing = threading.Event()
    pool = sup._external["x"]
    drain = pool._wait_drained_locked

    def noting(deadline, own=0):
        removing.set()
        drain(deadline, own)

    pool._wait_drained_locked = noting
    remover = threading.Thread(target=sup.remove_pool, args=("x",), daemon=True)
    remover.start()
    assert removing.wait(WAIT)  # remove_pool drains, waiting for the call
    sup.stop(wait=0.1)
    assert record.status == TASK_STATUS_CANCELED
    assert record.cancel_reason == "stopped"
    remover.join(WAIT)
    assert not remover.is_alive(), "remove_pool() waits for a slot never freed"
    no_threads_left(sup)
    sup.start()
    sup.add_pool("x", kit.threads(), 1)
    alive(sup)


# ----------------------------------------------------------------------
# add_pool during start() (review r8)
# ----------------------------------------------------------------------


def test_add_pool_landing_during_start(kit, monkeypatch) -> None:
    sup = kit.supervisor(start=False)
    executor = kit.threads()
    start_components = sup._start_components

    def then_add_pool():
        start_components()
        # Another thread adds a pool now, before start() says RUNNING.
        adder = threading.Thread(target=sup.add_pool, args=("x", executor, 1))
        adder.start()
        adder.join(WAIT)
        assert not adder.is_alive()

    monkeypatch.setattr(sup, "_start_components", then_add_pool)
    sup.start()
    assert sup.active
    assert list(sup.get_info().pools) == ["x"]
    alive(sup)


# ----------------------------------------------------------------------
# A delayed task whose pool came back pickling (review r10, r13)
# ----------------------------------------------------------------------


@pytest.mark.parametrize("call", ["task function", "argument with __reduce__"])
def test_delayed_task_whose_pool_came_back_with_a_pickling_executor(kit, call) -> None:
    sup = kit.supervisor()
    sup.add_pool("x", kit.threads(), 1)
    del pickled_in[:]

    def submit(**options):
        if call == "task function":
            return external_faults_mp.double.apply_async(
                args=(21,), pool="x", supervisor=sup, **options
            )
        return sup.submit(external_faults_mp.kind_of, (Probe(),), pool="x", **options)

    # The timer cannot release the delayed task before the pool is replaced:
    # its lock is held here (re-entrant: the submit schedules it from here).
    with sup._timer._condition:
        delayed = submit(delay=0.01)
        sup.remove_pool("x")
        sup.add_pool("x", kit.processes(), 1)
    assert delayed.wait(WAIT)
    assert pickled_in == [], "user code pickled the call on an internal thread"
    # Prepared for threads, not pickled: the new pool cannot take it.
    assert outcome(delayed) == (TASK_STATUS_CANCELED, "pool removed", None)
    # Submitted now, the same call is pickled at the call, and runs there.
    assert submit().get(WAIT) == (42 if call == "task function" else "Probe")
    expected = [] if call == "task function" else [threading.current_thread().name]
    assert pickled_in == expected
    alive(sup)


# ----------------------------------------------------------------------
# A start() that fails making the external pools (review r11)
# ----------------------------------------------------------------------


def test_failed_start_leaves_no_thread_and_a_second_start_works(
    kit, monkeypatch
) -> None:
    start = ExternalPool.start

    def failing(self):
        if self.name == "b":
            raise RuntimeError("can't start new thread")
        start(self)

    monkeypatch.setattr(ExternalPool, "start", failing)
    sup = kit.supervisor(start=False)
    sup.add_pool("a", kit.threads(), 1)
    sup.add_pool("b", kit.threads(), 1)
    with pytest.raises(RuntimeError, match="can't start new thread"):
        sup.start()
    assert not sup.active
    no_threads_left(sup)
    monkeypatch.setattr(ExternalPool, "start", start)
    sup.start()
    alive(sup, "a")
    alive(sup, "b")
    sup.stop(wait=WAIT)
    no_threads_left(sup)
    sup.start()
    alive(sup, "a")


# ----------------------------------------------------------------------
# A finished call does not keep the engine's future (the Dask finding)
# ----------------------------------------------------------------------


def test_finished_call_does_not_keep_the_engines_future(kit) -> None:
    sup = kit.supervisor()
    executor = kit.threads(workers=1)
    plug = kit.event()
    executor.submit(plug.wait, WAIT)  # its one thread is busy until plug is set
    futures = []  # weak references: the spy keeps nothing alive
    handed = threading.Condition()
    submit = executor.submit

    def spying(*args, **kwargs):
        future = submit(*args, **kwargs)
        with handed:
            futures.append(weakref.ref(future))
            handed.notify_all()
        return future

    executor.submit = spying
    sup.add_pool("x", executor, 1)
    gc.disable()  # only reference counting frees the future
    try:
        first = sup.submit(external_faults_mp.square, (3,), pool="x")
        with handed:
            assert handed.wait_for(lambda: len(futures) == 1, WAIT)
        # Handed over at once (CRITICAL), by the same hand-over thread: its
        # submit means the first call's hand-over is over, while that call
        # was still pending (its future keeps the done callback).
        second = sup.submit(
            external_faults_mp.square, (4,), pool="x", priority=TASK_CRITICAL
        )
        with handed:
            assert handed.wait_for(lambda: len(futures) == 2, WAIT)
        plug.set()
        assert wait_completed([first, second], WAIT) == [9, 16]
        # The executor's thread ran the second call: it dropped the first.
        assert futures[0]() is None, "a reference cycle keeps the future alive"
    finally:
        gc.enable()
    alive(sup)
