"""Class tasks (issue 11): faults found in review, one test (or a few) each.

1. A stop asked while a retried task's next attempt is starting (record
   STARTED, its new run not begun) reaches that attempt.
2. reload_task never waits for a running task: not in the gap of a retry,
   nor for a queued task that starts as it is reloaded.
3. A process task reloaded, then stopped before its start returned, does
   not come back as a new record.
4. A process task: the acknowledgement of an older reload does not forget
   a newer one; a run that ended before the newer reload reached it starts
   again with the newest data.
5. A retry after a reload runs with the last data.
6. The process pool's manager does not deadlock with a worker whose control
   thread is busy in stop() (emitting much) as a big reload is sent.
7. A soft time limit that rings as a class task's control block exits does
   not leave the worker's control thread reading the next task's payload.
8. An async class task whose start raises after a stop ends with its
   failure's status, as a thread task does.
9. start_task(**options) that contradict the class are refused at the call.

Interleavings are forced with events and wrappers (ON_START hooks, the
process pool's reading of an event, the requests a worker's run takes, the
exit of its control block); every wait is bounded by WAIT. Each test ends
with one more task through the same supervisor.
"""

from __future__ import annotations

import asyncio
import queue
import re
import threading
import time

import classtasks_faults_mp as mp
import pytest
from classtasks_mp import Outcome
from conftest import WAIT, run_script, started

from atasker import (
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TASK_STATUS_ERROR,
    TASK_STATUS_EXCEPTION,
    TASK_STATUS_QUEUED,
    TASK_STATUS_STARTED,
    TT_COROUTINE,
    TT_MP,
    TT_THREAD,
    SoftTimeLimitExceeded,
    Task,
    TaskCancelledError,
    TaskError,
    background_task,
)
from atasker.core.task import TaskInfo
from atasker.pools.processpool import ProcessPool


def alive(sup):
    """One more (function) thread task goes through the same supervisor."""
    assert background_task(abs, supervisor=sup)(-7).get(WAIT) == 7


def alive_mp(sup):
    """One more process class task goes through the same supervisor."""
    record = sup.start_task(Outcome.NAME, {"outcome": "alive"})
    assert record.get(WAIT) == {"outcome": "alive"}


def stopped(record):
    """``record`` ended CANCELED by a stop."""
    assert record.status == TASK_STATUS_CANCELED
    assert record.cancel_reason == "stopped"
    with pytest.raises(TaskCancelledError):
        record.get(WAIT)


def ended_event(record):
    """An Event set once ``record``'s done callbacks have run (the
    supervisor's own, registered at start_task, run before this one)."""
    ended = threading.Event()
    record.add_done_callback(lambda _: ended.set())
    return ended


def take(items, what):
    """The next item of queue ``items`` (WAIT at most); else fail: ``what``."""
    try:
        return items.get(timeout=WAIT)
    except queue.Empty:
        raise AssertionError(what) from None


def until(condition):
    """Wait (WAIT at most) until ``condition()``."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.001)


class Call:
    """``fn()`` in a thread of its own; what it returned or raised is kept."""

    def __init__(self, fn):
        self.outcome = []
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)

    def _run(self, fn):
        try:
            self.outcome.append(fn())
        except BaseException as exc:  # kept for the test (a failure if any)
            self.outcome.append(exc)

    def returns_within(self, timeout):
        """Start it; True if it returned (or raised) within ``timeout``."""
        self.thread.start()
        self.thread.join(timeout)
        return not self.thread.is_alive()


@pytest.fixture
def listener(tmp_path):
    heard = mp.AskingListener(tmp_path / "s")
    yield heard
    heard.close()


# ----------------------------------------------------------------------
# 1, 2: a request in the gap between two attempts (thread tasks)
# ----------------------------------------------------------------------


class RetryGap:
    """A class task whose first start fails; its second attempt's ON_START
    hook holds it (record STARTED, its new run not begun) until ``go_on``."""

    def __init__(self, sup):
        self.at_retry = threading.Event()
        self.go_on = threading.Event()
        self.seen = queue.Queue()  # the data of each start
        self.stops = queue.Queue()  # the data of each stop() call
        gap = self
        starts = []

        def on_start(record):
            if record.attempt == 2:
                gap.at_retry.set()
                gap.go_on.wait(WAIT)

        class Flaky(Task):
            NAME = "faults/retry-gap"
            RETRIES = 1
            RETRY_DELAY = 0
            ON_START = on_start

            def start(self):
                starts.append(self.data)
                gap.seen.put(dict(self.data))
                if len(starts) == 1:
                    raise RuntimeError("the first attempt fails")
                return "stopped" if self.stopping.wait(WAIT) else "never stopped"

            def stop(self):
                gap.stops.put(dict(self.data))

        sup.register_task(Flaky)
        self.sup = sup
        self.name = Flaky.NAME

    def start(self):
        """Start it and wait until its retry is in the gap."""
        record = self.sup.start_task(self.name, {"n": 1})
        assert self.seen.get(timeout=WAIT) == {"n": 1}
        assert self.at_retry.wait(WAIT)
        assert record.status == TASK_STATUS_STARTED
        assert record.attempt == 2
        return record


def test_stop_task_in_the_retry_gap_reaches_the_next_attempt(make_supervisor):
    """Fault 1: the stop went to the previous attempt's ended run: dropped."""
    sup = started(make_supervisor)
    gap = RetryGap(sup)
    record = gap.start()
    try:
        assert sup.stop_task(record.id, wait=False) is record
    finally:
        gap.go_on.set()
    assert take(gap.stops, "stop() never called") == {"n": 1}
    assert record.wait(WAIT)
    stopped(record)
    alive(sup)


def test_supervisor_stop_in_the_retry_gap_stops_the_next_attempt(make_supervisor):
    """Fault 1, by the supervisor's stop (it asks every class task)."""
    sup = started(make_supervisor)
    gap = RetryGap(sup)
    record = gap.start()
    stopper = threading.Thread(target=sup.stop, kwargs={"wait": WAIT})
    stopper.start()
    try:
        until(lambda: record.cancel_requested)  # the stop asked it
    finally:
        gap.go_on.set()
    assert take(gap.stops, "stop() never called") == {"n": 1}
    assert record.wait(WAIT)
    stopped(record)
    stopper.join(WAIT)
    assert not stopper.is_alive()
    sup.start()
    alive(sup)


def test_reload_in_the_retry_gap_returns_at_once_and_reloads_in_place(
    make_supervisor,
):
    """Faults 1 and 2: reload_task waited for the retried attempt to end
    (for ever for a task that runs until stopped), the running instance
    never got the data, and once the task was stopped the reload started it
    again as a new record."""
    sup = started(make_supervisor)
    gap = RetryGap(sup)
    record = gap.start()
    ended = ended_event(record)
    reloader = Call(lambda: sup.reload_task(record.id, {"n": 2}))
    try:
        # While the retry is still held in the gap.
        assert reloader.returns_within(WAIT), "reload_task waited for the task"
    finally:
        gap.go_on.set()
    assert reloader.outcome == [record]  # running: reloaded in place
    while take(gap.seen, "never ran with the new data") != {"n": 2}:
        pass  # (the retry may first start its instance with the old data)
    assert record.status == TASK_STATUS_STARTED

    assert sup.stop_task(record.id, wait=WAIT) is record
    assert take(gap.stops, "stop() never called") == {"n": 2}
    stopped(record)
    assert ended.wait(WAIT)
    assert sup.get_task(record.id) is record  # not started again
    alive(sup)
    assert sup.get_task(record.id) is record


def test_reload_of_a_queued_task_that_starts_meanwhile(make_supervisor, monkeypatch):
    """Fault 2: reload_task read QUEUED, the task started, its cancel of the
    queued record failed and it waited for the task to end."""
    sup = started(make_supervisor, threads=1)
    began = queue.Queue()

    class Daemon(Task):
        NAME = "faults/daemon"

        def start(self):
            began.put(dict(self.data))
            return "stopped" if self.stopping.wait(WAIT) else "never stopped"

    sup.register_task(Daemon)
    release = threading.Event()
    blocker = background_task(release.wait, supervisor=sup)(WAIT)
    record = sup.start_task(Daemon.NAME, {"n": 1})
    assert record.status == TASK_STATUS_QUEUED  # the only thread is taken
    record_started = record.started
    hit = threading.Event()
    reloader = Call(lambda: sup.reload_task(record.id, {"n": 2}))
    finish = TaskInfo._finish

    def widened(self, status, *args, **kwargs):
        # reload_task cancels the queued record: first let it start.
        if (
            self is record
            and status == TASK_STATUS_CANCELED
            and threading.current_thread() is reloader.thread
            and not hit.is_set()
        ):
            hit.set()
            release.set()
            assert record_started.wait(WAIT)
        return finish(self, status, *args, **kwargs)

    monkeypatch.setattr(TaskInfo, "_finish", widened)
    try:
        assert reloader.returns_within(WAIT), "reload_task waited for the task"
    finally:
        release.set()
    assert blocker.get(WAIT) is True
    (new,) = reloader.outcome
    assert isinstance(new, TaskInfo), new
    assert hit.is_set()  # it started as reload_task canceled it
    assert new is record  # running: reloaded in place
    while take(began, "never ran with the new data") != {"n": 2}:
        pass
    now = sup.get_task(record.id)
    assert now is new
    assert now.status == TASK_STATUS_STARTED
    ended = ended_event(now)
    assert sup.stop_task(record.id, wait=WAIT) is now
    stopped(now)
    assert ended.wait(WAIT)
    assert sup.get_task(record.id) is now  # not started again
    alive(sup)


# ----------------------------------------------------------------------
# 3, 4: reload and stop of a process task
# ----------------------------------------------------------------------


def test_process_task_reloaded_then_stopped_does_not_come_back(
    make_supervisor, listener
):
    """Fault 3: the stop won in the worker (no acknowledgement), and the
    reload still pending in the parent started the task again."""
    sup = started(make_supervisor, TT_MP)
    sup.register_tasks(mp.ReloadThenStop, Outcome)
    data = {"socket": listener.path}
    record = sup.start_task(mp.ReloadThenStop.NAME, {**data, "n": 1})
    ended = ended_event(record)
    assert listener.receive() == {"event": "running", "data": {**data, "n": 1}}
    # The worker's start returns only once both requests reached its run.
    assert sup.reload_task(record.id, {**data, "n": 2}) is record
    assert sup.stop_task(record.id, wait=WAIT) is record
    stopped(record)
    assert ended.wait(WAIT)
    assert sup.get_task(record.id) is record, "the stopped task started again"
    alive_mp(sup)
    assert sup.get_task(record.id) is record


def test_process_task_older_ack_keeps_a_newer_reload(
    make_supervisor, listener, monkeypatch
):
    """Fault 4: the acknowledgement of reload 2 (read by the pool's manager
    after reload 3 was asked) forgot reload 3; the run ended before reload
    3 reached it, and nothing ran with the newest data."""
    sup = started(make_supervisor, TT_MP)
    sup.register_tasks(mp.Reloadable, Outcome)
    data = {"socket": listener.path}
    held, release = threading.Event(), threading.Event()
    emitted = ProcessPool._emitted

    def holding(self, worker, message):
        # The manager thread holds the acknowledgement of the first reload.
        if b"reloaded" in bytes(message) and not held.is_set():
            held.set()
            release.wait(WAIT)
        return emitted(self, worker, message)

    monkeypatch.setattr(ProcessPool, "_emitted", holding)
    record = sup.start_task(mp.Reloadable.NAME, {**data, "n": 1})
    ended = ended_event(record)
    try:
        assert listener.receive() == {"event": "running", "data": {**data, "n": 1}}
        quick = {**data, "n": 2, "quick": True}
        assert sup.reload_task(record.id, quick) is record
        assert held.wait(WAIT)  # its acknowledgement is on its way
        assert record.status == TASK_STATUS_STARTED
        assert sup.reload_task(record.id, {**data, "n": 3}) is record
        # The run with reload 2's data ends by itself (reload 3 is still in
        # the parent, behind the held manager).
        assert listener.receive() == {"event": "ended", "data": {**data, "n": 1}}
        assert listener.receive() == {"event": "running", "data": quick}
        assert listener.receive() == {"event": "ended", "data": quick}
    finally:
        release.set()
    assert record.wait(WAIT)
    assert ended.wait(WAIT)
    assert record.status == TASK_STATUS_COMPLETED
    assert record.result == "quick"
    new = sup.get_task(record.id)
    assert new is not record, "nothing started with the newest data"
    assert listener.receive() == {"event": "running", "data": {**data, "n": 3}}
    assert sup.stop_task(record.id, wait=WAIT) is new
    stopped(new)
    assert listener.receive() == {"event": "ended", "data": {**data, "n": 3}}
    alive_mp(sup)


# ----------------------------------------------------------------------
# 5: a retry after a reload
# ----------------------------------------------------------------------


def test_a_retry_after_a_reload_runs_with_the_last_data(make_supervisor):
    """Fault 5: the retry ran with start_task's data, not the last given."""
    sup = started(make_supervisor)
    seen = queue.Queue()
    failed = []

    class FailsOnceReloaded(Task):
        NAME = "faults/fails-once-reloaded"
        RETRIES = 1
        RETRY_DELAY = 0

        def start(self):
            seen.put(dict(self.data))
            if self.data["n"] == 2 and not failed:
                failed.append(True)
                raise RuntimeError("the reloaded instance fails once")
            return "stopped" if self.stopping.wait(WAIT) else "never stopped"

    sup.register_task(FailsOnceReloaded)
    record = sup.start_task(FailsOnceReloaded.NAME, {"n": 1})
    assert seen.get(timeout=WAIT) == {"n": 1}
    assert sup.reload_task(record.id, {"n": 2}) is record
    assert seen.get(timeout=WAIT) == {"n": 2}  # fails: the record is retried
    assert take(seen, "no retry") == {"n": 2}, "the retry ran with older data"
    assert record.attempt == 2
    assert sup.stop_task(record.id, wait=WAIT) is record
    stopped(record)
    alive(sup)


# ----------------------------------------------------------------------
# 6: the process pool's manager and a worker busy in stop() (a subprocess:
# the pool deadlocks)
# ----------------------------------------------------------------------

DEADLOCK_SCRIPT = """
import logging, os, tempfile
logging.disable(logging.CRITICAL)
import classtasks_faults_mp as mp
from atasker import TT_MP, TaskSupervisor, background_task

path = os.path.join(tempfile.mkdtemp(), "s")
heard = mp.AskingListener(path)
sup = TaskSupervisor(keep_finished=10)
sup.set_thread_pool(pool_size=4, reserve_normal=0, reserve_high=0)
sup.create_mp_pool(processes=2)
sup.register_task(mp.Chatty)
sup.start()
assert sup._mp_pool.wait_workers(2, 5)
record = sup.start_task(mp.Chatty.NAME, {"socket": path, "chatty": True})
assert heard.receive() == {"event": "running", "size": 0}
sup.reload_task(record.id, {"socket": path})
# Its stop() (on the worker's control thread) asks: meanwhile, a big reload.
big = {"socket": path, "blob": "y" * mp.BLOB}
heard.answer(lambda message: sup.reload_task(record.id, big))
other = background_task(mp.double, tt=TT_MP, supervisor=sup)(21)
if not other.wait(5):
    print("stuck", other.status)
    os._exit(0)
print("other", other.status, other.result)
heard._socket.settimeout(5)
while heard.receive()["size"] != mp.BLOB:
    pass
print("reloaded")
sup.stop_task(record.id, wait=5)
print("record", record.status, record.cancel_reason)
sup.stop(wait=5)
print("done")
"""


def test_manager_goes_on_while_a_worker_emits_from_stop():
    """Fault 6: the manager blocked writing a big CONTROL message to a worker
    whose control thread was in stop(), emitting more than the pipe holds:
    each waited for the other to read, and the whole pool stalled."""
    words = run_script(DEADLOCK_SCRIPT)
    assert "stuck" not in words, f"the process pool stalled: {words}"
    assert words == [
        "other",
        str(TASK_STATUS_COMPLETED),
        "42",
        "reloaded",
        "record",
        str(TASK_STATUS_CANCELED),
        "stopped",
        "done",
    ]


# ----------------------------------------------------------------------
# 7: a soft time limit that rings as a class task's control block exits
# ----------------------------------------------------------------------


def test_soft_limit_as_the_control_block_exits_keeps_the_worker_whole(
    make_supervisor,
):
    """Fault 7: the alarm rang before the control thread was told to stop:
    it went on reading the worker's connection and ate the next payload."""
    sup = started(make_supervisor, TT_MP)  # one worker: the next task's
    sup.register_task(mp.RingsAsItEnds)
    record = sup.start_task(mp.RingsAsItEnds.NAME)
    assert record.wait(WAIT)
    # Its start returned; the alarm rang as the block exited.
    assert isinstance(record.exception, SoftTimeLimitExceeded), record.exception
    threads = background_task(mp.worker_threads, tt=TT_MP, supervisor=sup)
    for _ in range(3):
        next_task = threads()
        if not next_task.wait(WAIT):
            next_task.cancel()
            pytest.fail("the next task never ended: its payload was eaten")
        names = next_task.result
        left = [name for name in names if name.startswith("atasker-control")]
        assert not left, f"control threads are left: {names}"
    assert background_task(mp.double, tt=TT_MP, supervisor=sup)(4).get(WAIT) == 8


# ----------------------------------------------------------------------
# 8: an async task that fails after a stop
# ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raised", "status"),
    [("error", TASK_STATUS_ERROR), ("exception", TASK_STATUS_EXCEPTION)],
)
def test_async_task_failing_after_stop_has_its_failure_status(
    make_supervisor, raised, status
):
    """Fault 8: it ended CANCELED "stopped" (a thread task has the failure's
    status)."""
    sup = started(make_supervisor, TT_COROUTINE)
    began = threading.Event()

    class FailsWhenStopped(Task):
        NAME = "faults/async-fails-when-stopped"

        async def start(self):
            began.set()
            await asyncio.wait_for(self.stopping.wait(), WAIT)
            if raised == "error":
                raise self.Error("failed while stopping")
            raise ValueError("broken while stopping")

    class Fine(Task):
        NAME = "faults/async-fine"

        async def start(self):
            return "fine"

    sup.register_tasks(FailsWhenStopped, Fine)
    record = sup.start_task(FailsWhenStopped.NAME)
    assert began.wait(WAIT)
    assert sup.stop_task(record.id, wait=WAIT) is record
    assert record.status == status
    assert record.cancel_reason is None
    expected = TaskError if raised == "error" else ValueError
    assert isinstance(record.exception, expected)
    with pytest.raises(expected):
        record.get(WAIT)
    assert sup.start_task(Fine.NAME).get(WAIT) == "fine"


# ----------------------------------------------------------------------
# 9: start_task's options against the class
# ----------------------------------------------------------------------

ran = []


class Sync(Task):
    NAME = "faults/sync"

    def start(self):
        ran.append(self.name)
        return "sync ran"


class Async(Task):
    NAME = "faults/async"

    async def start(self):
        ran.append(self.name)
        return "async ran"


@pytest.mark.parametrize(
    ("task_class", "options", "named"),
    [
        (Sync, {"tt": TT_COROUTINE}, "tt"),
        (Async, {"tt": TT_THREAD}, "tt"),
        (Async, {"tt": TT_MP}, "tt"),
        (Sync, {"bind": True}, "bind"),
    ],
    ids=["coroutine-for-sync", "thread-for-async", "process-for-async", "bind"],
)
def test_start_task_refuses_options_against_the_class(
    make_supervisor, task_class, options, named
):
    """Fault 9: they were accepted, and the task failed at run time (or
    returned a coroutine never awaited)."""
    sup = started(make_supervisor, TT_MP)
    sup.create_aloop("main", default=True)
    sup.register_tasks(Sync, Async)
    ran.clear()
    try:
        accepted = sup.start_task(task_class.NAME, **options)
    except (TypeError, ValueError) as exc:
        assert re.search(rf"(?i)\b{named}\b", str(exc)), f"{named} not named: {exc}"
    else:
        accepted.wait(WAIT)
        if asyncio.iscoroutine(accepted.result):
            accepted.result.close()  # start() never awaited
        pytest.fail(
            f"{options} accepted: status {accepted.status}, result "
            f"{accepted.result!r}, exception {accepted.exception!r}"
        )
    assert not [r for r in sup._registry.active() if r.name == task_class.NAME]
    assert ran == []
    # What agrees with the class still goes.
    kind = TT_THREAD if task_class is Sync else TT_COROUTINE
    record = sup.start_task(task_class.NAME, tt=kind)
    assert record.get(WAIT) == ("sync ran" if task_class is Sync else "async ran")
    assert ran == [task_class.NAME]
