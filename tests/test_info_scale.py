"""get_info() and get_tasks() at scale (issue 13): what their fields hold,
that they read counters and the pools' running tasks instead of scanning the
unfinished records, that ``delayed`` stays exact, and the read-only mapping
(TaskView) that ``tasks`` and ``get_tasks()`` are.

Tasks block on Events (a Unix-socket gate for a worker process); nothing
sleeps to synchronise and every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import operator
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import external_mp
import pytest
from conftest import WAIT, Gate, retry_scheduled

from atasker import (
    TASK_CRITICAL,
    TASK_HIGH,
    TASK_LOW,
    TASK_NORMAL,
    TASK_STATUS_CANCELED,
    TASK_STATUS_DELAYED,
    TASK_STATUS_QUEUED,
    TASK_STATUS_STARTED,
    TT_COROUTINE,
    TT_MP,
    TT_THREAD,
    Task,
    background_task,
    chain,
)
from atasker.control.taskview import TaskView

# ----------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------


class AsyncGate:
    """A coroutine task that blocks until released from the test's thread."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    async def block(self) -> str:
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self.started.set()
        await asyncio.wait_for(self._event.wait(), WAIT)
        return "released"

    def release(self) -> None:
        if self._loop is not None and self._event is not None:
            self._loop.call_soon_threadsafe(self._event.set)


class Holder(Task):
    """A class task (in a pool thread) that runs until stopped."""

    NAME = "test/info-holder"
    running = threading.Event()

    def start(self) -> str:
        Holder.running.set()
        self.stopping.wait(WAIT)
        return "stopped"


class NoScan(dict):
    """The registry's dict of unfinished records, refusing to be walked:
    look-ups, inserts and removals work; iteration and copies raise."""

    def _refuse(self, *args, **kwargs):
        raise AssertionError("scanned the unfinished records")

    __iter__ = keys = values = items = copy = _refuse


@pytest.fixture
def gate_dir():
    # A Unix socket's path must be short: not under pytest's tmp_path.
    path = Path(tempfile.mkdtemp(prefix="is", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def single_thread(make_supervisor, threads=1):
    """A started supervisor of ``threads`` pool threads, no more, no reserves."""
    sup = make_supervisor(keep_finished=1000)
    sup.set_thread_pool(
        pool_size=threads, reserve_normal=0, reserve_high=0, max_size=threads
    )
    sup.start()
    return sup


def ids(records):
    return sorted(record.id for record in records)


def by_id(*records):
    return {record.id: record for record in records}


def fail(*args):
    raise ValueError("fails")


# ----------------------------------------------------------------------
# (a) What the fields hold, for a mix of every kind of task
# ----------------------------------------------------------------------


def test_fields_for_a_mix_of_tasks(make_supervisor, gate: Gate, gate_dir) -> None:
    sup = make_supervisor(keep_finished=100)
    sup.set_thread_pool(pool_size=2, reserve_normal=0, reserve_high=0, max_size=2)
    sup.create_mp_pool(processes=1)
    sup.register_task(Holder)
    executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="is_x")
    mp_gate = external_mp.Gate(gate_dir / "g")
    async_gate = AsyncGate()
    Holder.running.clear()
    try:
        sup.start()
        assert sup._mp_pool.wait_workers(1, WAIT)
        sup.create_aloop("main", default=True)
        sup.add_pool("x", executor, 1)
        # Running: a thread task, a class task, a process task, a coroutine
        # task, a task of an external (thread) pool.
        thread_running = background_task(gate.block, supervisor=sup)()
        gate.wait_started()
        class_running = sup.start_task(Holder.NAME)
        assert Holder.running.wait(WAIT)
        mp_running = sup.submit(external_mp.wait_at_gate, (mp_gate.path,), tt=TT_MP)
        mp_gate.arrived()
        coroutine_running = background_task(async_gate.block, supervisor=sup)()
        assert async_gate.started.wait(WAIT)
        external_running = sup.submit(gate.block, pool="x")
        gate.wait_started()
        # Queued behind them: a thread, a process and an external task.
        thread_queued = background_task(abs, supervisor=sup)(-1)
        mp_queued = sup.submit(external_mp.add, (1, 2), tt=TT_MP)
        external_queued = sup.submit(abs, (-2,), pool="x")
        # Delayed: by a delay (thread, process, coroutine) and by a dependency.
        thread_delayed = background_task(abs, delay=3600, supervisor=sup)(-3)
        mp_delayed = sup.submit(external_mp.add, (3, 4), tt=TT_MP, delay=3600)
        coroutine_delayed = background_task(
            async_gate.block, delay=3600, supervisor=sup
        )()
        dependant = sup.submit(abs, (-4,), depends_on=[thread_running])
        for record in (thread_queued, mp_queued, external_queued):
            assert record.status == TASK_STATUS_QUEUED
        for record in (
            thread_running,
            class_running,
            mp_running,
            coroutine_running,
            external_running,
        ):
            assert record.status == TASK_STATUS_STARTED

        threads = (thread_running, class_running, thread_queued, thread_delayed)
        threads += (dependant, external_running, external_queued)
        processes = (mp_running, mp_queued, mp_delayed)
        coroutines = (coroutine_running, coroutine_delayed)
        everything = by_id(*threads, *processes, *coroutines)

        info = sup.get_info()
        # Coroutine and external-pool tasks are in neither list.
        assert sorted(info.thread_tasks) == ids([thread_running, class_running])
        assert info.thread_tasks_count == 2
        assert info.mp_tasks == [mp_running.id] and info.mp_tasks_count == 1
        assert info.delayed == 4
        assert info.queued[TASK_NORMAL] == 1 and info.mp_queued[TASK_NORMAL] == 1
        assert info.pools["x"].running == 1
        assert info.pools["x"].queued[TASK_NORMAL] == 1
        assert info.tasks == everything
        assert dict(info.tasks) == everything
        assert sup.get_tasks() == everything
        assert sup.get_tasks(TT_THREAD) == by_id(*threads)
        assert sup.get_tasks(TT_MP) == by_id(*processes)
        assert sup.get_tasks(TT_COROUTINE) == by_id(*coroutines)

        threads_only = sup.get_info(tt=TT_THREAD)
        assert sorted(threads_only.thread_tasks) == sorted(info.thread_tasks)
        assert threads_only.tasks == by_id(*threads)
        assert not hasattr(threads_only, "mp_tasks")
        processes_only = sup.get_info(tt=TT_MP)
        assert processes_only.mp_tasks == [mp_running.id]
        assert processes_only.tasks == by_id(*processes)
        assert not hasattr(processes_only, "thread_tasks")
        counts = sup.get_info(tt=False)
        assert (counts.thread_tasks_count, counts.mp_tasks_count) == (2, 1)
        assert counts.delayed == 4
        assert not hasattr(counts, "tasks") and not hasattr(counts, "thread_tasks")
    finally:
        gate.release.set()
        mp_gate.release()
        async_gate.release()
        sup.stop(wait=WAIT)
        executor.shutdown(wait=True)


# ----------------------------------------------------------------------
# (b) No scan: counters and the pools' running tasks only
# ----------------------------------------------------------------------


def test_get_info_does_not_scan_the_records(make_supervisor, gate: Gate) -> None:
    sup = single_thread(make_supervisor)
    blocker = background_task(gate.block, supervisor=sup)()
    gate.wait_started()
    normal = background_task(abs, supervisor=sup)
    high = background_task(abs, priority=TASK_HIGH, supervisor=sup)
    queued = [normal(-i) for i in range(300)] + [high(-i) for i in range(5)]
    delayed = [background_task(abs, delay=3600, supervisor=sup)(-1) for _ in range(7)]
    dependants = [sup.submit(abs, (-1,), depends_on=[blocker]) for _ in range(4)]
    registry = sup._registry
    kept = registry._active

    def refuse(*args, **kwargs):
        raise AssertionError("scanned the unfinished records")

    registry.active = registry.snapshot = refuse
    registry._active = NoScan(kept)
    try:
        expected_queue = {TASK_CRITICAL: 0, TASK_HIGH: 5, TASK_NORMAL: 300, TASK_LOW: 0}
        for tt in (None, TT_THREAD, False):
            info = sup.get_info(tt=tt)
            assert info.thread_tasks_count == 1 and info.delayed == 11
            assert info.queued == expected_queue
            if tt is not False:
                assert info.thread_tasks == [blocker.id]
                assert isinstance(info.tasks, TaskView)  # not read: not copied
        for tt in (None, TT_MP, False):
            info = sup.get_info(tt=tt)
            assert info.mp_tasks_count == 0 and info.delayed == 11
            assert info.mp_queued == dict.fromkeys(expected_queue, 0)
            if tt is not False:
                assert info.mp_tasks == []
        assert (info.completed, info.failed, info.canceled) == (0, 0, 0)
        view = sup.get_tasks()  # nothing copied at the call ...
        with pytest.raises(AssertionError, match="scanned"):
            len(view)  # ... but on first use
    finally:
        del registry.active, registry.snapshot
        registry._active = kept
    assert len(sup.get_tasks()) == 1 + 305 + 7 + 4
    assert len(sup.get_info().tasks) == 1 + 305 + 7 + 4
    gate.release.set()
    for record in [blocker, *queued, *dependants]:
        assert record.wait(WAIT)
    info = sup.get_info()
    assert (info.delayed, info.thread_tasks_count) == (7, 0)
    assert info.completed == 1 + 305 + 4
    for record in delayed:
        assert record.cancel()
    assert sup.get_info().delayed == 0
    assert sup.get_tasks() == {}


# ----------------------------------------------------------------------
# (c) ``delayed`` stays exact
# ----------------------------------------------------------------------


def test_delayed_stays_exact(make_supervisor, gate: Gate) -> None:
    # Two threads: one held by ``blocker``, one free for the attempts below.
    sup = single_thread(make_supervisor, threads=2)

    def delayed():
        return sup.get_info().delayed

    assert delayed() == 0
    blocker = background_task(gate.block, supervisor=sup)()
    gate.wait_started()
    by_delay = background_task(abs, delay=3600, supervisor=sup)(-1)
    assert delayed() == 1
    by_eta = sup.submit(abs, (-1,), eta=time.time() + 3600)
    assert delayed() == 2
    by_dependency = sup.submit(abs, (-1,), depends_on=[blocker])
    assert delayed() == 3
    # Waits for its dependency, then (still DELAYED) for its eta.
    then_eta = sup.submit(abs, (-1,), depends_on=[blocker], eta=time.time() + 3600)
    assert delayed() == 4
    # A chain: its first task waits in the timer, the second follows it.
    first = background_task(abs, supervisor=sup).s(-1).set(delay=3600)
    second = background_task(abs, supervisor=sup).s()
    chained = chain(first, second).apply_async()
    assert chained.status == TASK_STATUS_DELAYED
    assert delayed() == 6
    # A retry: DELAYED while its on_retry hook runs in its pool thread, then
    # in the timer for an hour.
    scheduled = retry_scheduled(sup)
    in_hook, go_on = threading.Event(), threading.Event()

    def on_retry(record, exc):
        in_hook.set()
        assert go_on.wait(WAIT)

    retried = background_task(
        fail, retries=1, retry_delay=3600, on_retry=on_retry, supervisor=sup
    )()
    assert in_hook.wait(WAIT)
    assert retried.status == TASK_STATUS_DELAYED
    assert delayed() == 7
    go_on.set()
    assert scheduled.wait(WAIT)
    assert delayed() == 7
    # A task due soon becomes due, runs and leaves the count.
    assert background_task(abs, delay=0.01, supervisor=sup)(-5).get(WAIT) == 5
    assert delayed() == 7

    # Cancels: in the timer, waiting for a dependency, between attempts.
    assert by_delay.cancel() and delayed() == 6
    assert retried.cancel() and delayed() == 5
    # A dependant whose dependency is canceled ends, and leaves the count.
    doomed = background_task(abs, delay=3600, supervisor=sup)(-1)
    follower = sup.submit(abs, (-1,), depends_on=[doomed])
    assert delayed() == 7
    assert doomed.cancel() and follower.wait(WAIT)
    assert follower.cancel_reason == f"dependency failed: {doomed.id}"
    assert delayed() == 5
    # One that expires while it waits for its dependency.
    expiring = sup.submit(abs, (-1,), depends_on=[by_eta], expires=0.01)
    assert expiring.wait(WAIT) and expiring.cancel_reason == "expired"
    assert delayed() == 5
    # Canceled directly while it waits for its dependency.
    waiting = sup.submit(abs, (-1,), depends_on=[blocker])
    assert delayed() == 6
    assert waiting.cancel() and delayed() == 5

    # The dependency completes: one dependant runs, the other waits for its
    # eta in the timer (counted once all along). The Event is one of the
    # blocker's waiters after the dependants' links: when it is set, they
    # have fired.
    completed = blocker.completed
    gate.release.set()
    assert completed.wait(WAIT)
    assert by_dependency.get(WAIT) == 1
    assert then_eta.status == TASK_STATUS_DELAYED
    assert delayed() == 4  # by_eta, then_eta, the chain's two
    assert then_eta.cancel() and delayed() == 3
    assert chained.parent.cancel()
    assert chained.wait(WAIT) and chained.status == TASK_STATUS_CANCELED
    assert delayed() == 1
    assert by_eta.cancel() and delayed() == 0
    assert sup._registry.waiting_for_dependencies == 0 and sup._timer.delayed == 0


def test_delayed_is_zero_after_stop(make_supervisor, gate: Gate) -> None:
    sup = single_thread(make_supervisor)
    blocker = background_task(gate.block, supervisor=sup)()
    gate.wait_started()
    records = [
        background_task(abs, delay=3600, supervisor=sup)(-1),
        sup.submit(abs, (-1,), depends_on=[blocker]),
        sup.submit(abs, (-1,), depends_on=[blocker], eta=time.time() + 3600),
    ]
    assert sup.get_info().delayed == 3
    gate.release.set()
    sup.stop(wait=WAIT)
    assert all(r.status == TASK_STATUS_CANCELED for r in records[::2])
    info = sup.get_info()
    assert info.delayed == 0 and sup._registry.waiting_for_dependencies == 0
    assert sup.get_tasks() == {}


# ----------------------------------------------------------------------
# (d) TaskView: a read-only mapping, copied on first use
# ----------------------------------------------------------------------


def test_task_view(make_supervisor, gate: Gate) -> None:
    sup = single_thread(make_supervisor)
    blocker = background_task(gate.block, supervisor=sup)()
    gate.wait_started()
    noop = background_task(abs, supervisor=sup)
    queued = noop(-1)
    view = sup.get_tasks()
    assert isinstance(view, TaskView) and isinstance(view, Mapping)
    assert not isinstance(view, dict)
    before_use = noop(-2)  # the copy is made on first use: it is in it
    expected = by_id(blocker, queued, before_use)
    assert len(view) == 3
    after_use = noop(-3)  # not in it: a snapshot
    # Both ways round: a dict on the left gives up, and Python asks the view.
    assert view == expected and operator.eq(expected, view)
    assert not operator.ne(view, expected) and not operator.ne(expected, view)
    assert view != {} and operator.ne({}, view)
    assert view != by_id(blocker) and view != 3 and view != list(expected)
    assert list(view) == [blocker.id, queued.id, before_use.id]  # oldest first
    assert blocker.id in view and after_use.id not in view and 3 not in view
    assert view[queued.id] is queued
    with pytest.raises(KeyError):
        view[after_use.id]
    assert view.get(after_use.id) is None and view.get(blocker.id) is blocker
    assert list(view.keys()) == list(expected)
    assert list(view.items()) == list(expected.items())
    assert list(view.values()) == list(expected.values())
    assert repr(view) == repr(expected)
    copied = view.copy()
    assert type(copied) is dict and copied == expected
    copied.clear()
    assert len(view) == 3  # the copy is the caller's
    assert dict(view) == expected
    later = sup.get_tasks()  # another view, with its own copy
    assert later == {**expected, after_use.id: after_use} and view != later
    with pytest.raises(TypeError):
        view["x"] = queued
    with pytest.raises(TypeError):
        hash(view)
    # Filtered by type; a view of each call.
    assert sup.get_tasks(TT_MP) == {} and len(sup.get_tasks(TT_MP)) == 0
    everything = by_id(blocker, queued, before_use, after_use)
    assert sup.get_tasks(TT_THREAD) == everything
    assert sup.get_info().tasks == everything
    assert sup.get_info(tt=TT_MP).tasks == {}
    gate.release.set()
    for record in (blocker, queued, before_use, after_use):
        assert record.wait(WAIT)
    assert view == expected  # it does not follow the tasks
    assert sup.get_tasks() == {}
