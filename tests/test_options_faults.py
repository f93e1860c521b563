"""Faults around task options found in review: each test forces the
interleaving that broke, and ends by pushing one more task through the pool.

A thread cannot be stopped from outside: its time limits arrive as
asynchronous exceptions. Where a test needs a thread held at a precise point
it blocks it on an Event (in C) or holds a lock it needs; where it must know
that a thread reached such a point and nothing signals it, it looks at the
thread's stack in a bounded loop (``wait_until``), which says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time

import mptasks
import pytest
from conftest import WAIT

from atasker import (
    TASK_NORMAL,
    TASK_STATUS_CANCELED,
    TASK_STATUS_DELAYED,
    TT_MP,
    SoftTimeLimitExceeded,
    TaskTimeoutError,
)
from atasker.core.task import TaskInfo
from atasker.pools import threadattempt
from atasker.pools.threadpool import ThreadPool


def wait_until(condition, what: str) -> None:
    """Wait, at most WAIT s, for a state nothing signals (where a thread is
    blocked): checked every millisecond."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        threading.Event().wait(0.001)


def innermost_file(thread: threading.Thread) -> str:
    frame = sys._current_frames().get(thread.ident or -1)
    return "" if frame is None else frame.f_code.co_filename


def alive(sup) -> None:
    assert sup.submit(abs, (-7,)).get(WAIT) == 7


def test_a_limit_passing_inside_an_atasker_call_waits_until_it_returns(
    make_supervisor, monkeypatch
) -> None:
    # The soft limit passes while the task is inside submit() (blocked on the
    # pool's lock): raised there, it would leave the pool half-updated. It
    # must arrive once submit() has returned, in the task's own code.
    sup = make_supervisor(pool_size=2, reserve_normal=0, reserve_high=0)
    sup.start()
    guards: list[threadattempt.LimitGuard] = []
    original = threadattempt.LimitGuard.__init__

    def recording(self, *args, **kwargs):
        original(self, *args, **kwargs)
        guards.append(self)

    monkeypatch.setattr(threadattempt.LimitGuard, "__init__", recording)
    seen: dict[str, object] = {}
    parent_thread: list[threading.Thread] = []
    ready, go, submitted = threading.Event(), threading.Event(), threading.Event()

    def parent():
        parent_thread.append(threading.current_thread())
        ready.set()
        assert go.wait(WAIT)  # until the test holds the pool's lock
        try:
            seen["child"] = sup.submit(abs, (-1,))
        except BaseException as exc:  # what must not happen
            seen["submit raised"] = exc
            raise
        submitted.set()
        try:
            while True:  # its own code: where the limit may arrive
                pass
        except SoftTimeLimitExceeded:
            return "limit arrived after submit"

    record = sup.submit(parent, soft_time_limit=60, time_limit=120)
    assert ready.wait(WAIT) and guards
    lock = sup._pool._lock
    lock.acquire()
    try:
        go.set()
        wait_until(
            lambda: innermost_file(parent_thread[0]).endswith("threadpool.py"),
            "the parent is blocked in submit() on the pool's lock",
        )
        # Its soft limit passes now (as the timer would send it).
        assert guards[0].raise_in_thread(SoftTimeLimitExceeded)
    finally:
        lock.release()
    assert record.get(WAIT) == "limit arrived after submit"
    assert "submit raised" not in seen and submitted.is_set()
    assert seen["child"].get(WAIT) == 1
    wait_until(lambda: sup._pool._admission.running == 0, "no slot left taken")
    alive(sup)


def test_the_first_process_task_may_be_delayed(make_supervisor) -> None:
    sup = make_supervisor()
    sup.start()
    record = sup.submit(mptasks.add, (1, 2), tt=TT_MP, delay=0.01)
    assert record.get(WAIT) == 3
    assert sup.submit(mptasks.add, (2, 2), tt=TT_MP).get(WAIT) == 4


def test_an_abandoned_thread_that_waits_for_a_task_keeps_the_count(
    make_supervisor, monkeypatch
) -> None:
    sup = make_supervisor(
        pool_size=1, reserve_normal=0, reserve_high=0, time_limit_grace=0.01
    )
    sup.set_thread_pool(max_size=1)
    sup.start()
    abandoned, blocking = threading.Event(), threading.Event()
    abandon, begin_blocking = ThreadPool.abandon, ThreadPool.begin_blocking
    stuck_threads: list[threading.Thread] = []

    def signalled_abandon(self, thread):
        result = abandon(self, thread)
        stuck_threads.append(thread)
        abandoned.set()
        return result

    def signalled_begin_blocking(self):
        begin_blocking(self)
        blocking.set()

    monkeypatch.setattr(ThreadPool, "abandon", signalled_abandon)
    monkeypatch.setattr(ThreadPool, "begin_blocking", signalled_begin_blocking)
    stuck, sibling_gate = threading.Event(), threading.Event()
    siblings: list[TaskInfo] = []

    def task():
        with contextlib.suppress(TaskTimeoutError):
            stuck.wait(WAIT)  # in C past its limit and grace: abandoned
        return siblings[0].get(WAIT)  # then waits for a sibling task

    record = sup.submit(task, time_limit=0.05)
    assert abandoned.wait(WAIT)
    siblings.append(sup.submit(sibling_gate.wait, (WAIT,)))  # takes the freed slot
    stuck.set()
    assert blocking.wait(WAIT)
    assert sup._pool._admission.running == 1  # the sibling's, nothing more
    sibling_gate.set()
    with pytest.raises(TaskTimeoutError):
        record.get(WAIT)
    stuck_threads[0].join(WAIT)  # it returned, and exits
    assert sup.get_info().abandoned_threads == 0
    assert sup._pool._admission.running == 0
    alive(sup)


def test_cancel_of_a_coroutine_racing_its_retry_cancels_it(
    make_supervisor, monkeypatch
) -> None:
    # cancel() sees the task STARTED; its attempt then fails and the record
    # goes DELAYED for a retry before the cancel reaches the coroutine. The
    # cancel must still win: no second attempt.
    sup = make_supervisor()
    sup.start()
    sup.create_aloop("race", default=True)
    started, retrying, hold = threading.Event(), threading.Event(), threading.Event()
    attempts: list[int] = []

    async def job():
        attempts.append(1)
        if len(attempts) == 1:
            started.set()
            await asyncio.sleep(0)
            raise ValueError("first attempt fails")
        return "second attempt ran"

    def on_retry(record, exc):
        retrying.set()
        assert hold.wait(WAIT)  # the old asyncio task stays its handle meanwhile

    request_cancel = TaskInfo._request_cancel

    def late_request_cancel(self, reason):
        assert retrying.wait(WAIT)  # preempted until the record went DELAYED
        assert self.status == TASK_STATUS_DELAYED
        return request_cancel(self, reason)

    monkeypatch.setattr(TaskInfo, "_request_cancel", late_request_cancel)
    record = sup.submit(job, retries=1, on_retry=on_retry)
    assert started.wait(WAIT)
    try:
        assert record.cancel() is True
    finally:
        hold.set()
    assert record.wait(WAIT) and record.status == TASK_STATUS_CANCELED
    assert attempts == [1]
    alive(sup)


def test_stop_cancels_a_retry_whose_hooks_still_run(make_supervisor) -> None:
    sup = make_supervisor()
    sup.start()
    in_hook, hold = threading.Event(), threading.Event()

    def on_retry(record, exc):
        in_hook.set()
        assert hold.wait(WAIT)

    def fail():
        raise ValueError("again")

    record = sup.submit(fail, retries=1, on_retry=on_retry)
    assert in_hook.wait(WAIT)
    assert record.status == TASK_STATUS_DELAYED  # in no queue: its hook runs
    try:
        sup.stop(wait=False)
        assert record.status == TASK_STATUS_CANCELED
        assert record.cancel_reason == "stopped"
    finally:
        hold.set()
    sup.block()
    assert record.cancel_reason == "stopped"
    sup.start()
    alive(sup)


def test_stop_cancels_a_chain_of_dependants_as_stopped(make_supervisor) -> None:
    sup = make_supervisor()
    sup.start()
    gate = threading.Event()
    first = sup.submit(gate.wait, (WAIT,))
    second = sup.submit(abs, (-1,), depends_on=[first])
    third = sup.submit(abs, (-2,), depends_on=[second])
    try:
        sup.stop(wait=False)
        assert (second.cancel_reason, third.cancel_reason) == ("stopped", "stopped")
    finally:
        gate.set()
    sup.block()
    sup.start()
    alive(sup)


def test_a_bool_never_passes_for_an_int_through_the_options_cache(
    supervisor,
) -> None:
    # put_task(tt=1) made an options object; tt=True must still be refused.
    assert supervisor.put_task(lambda _task_id: 1).get(WAIT) == 1
    same = {"priority": TASK_NORMAL, "delay": None, "callback": None}
    with pytest.raises(ValueError, match="tt"):
        supervisor.submit(abs, (-1,), tt=True, **same)
    assert supervisor.put_task(lambda _task_id: 2, delay=1).cancel()
    with pytest.raises(TypeError, match="delay"):
        supervisor.put_task(abs, (-1,), delay=True)


def test_attempts_of_a_plain_task_retried_by_its_context_count_from_one(
    supervisor,
) -> None:
    from atasker import current_context

    def fail():
        current_context().retry(exc=ValueError("again"), max_retries=2)

    record = supervisor.submit(fail)
    with pytest.raises(ValueError, match="again"):
        record.get(WAIT)
    assert [a.number for a in record.attempts] == [1, 2, 3]


def test_a_finished_task_with_a_time_limit_is_not_kept_by_the_timer(
    make_supervisor,
) -> None:
    # Its limit's timer call is canceled when it ends, but stays in the heap
    # until due: it must not keep the record (and its result) alive.
    import gc
    import weakref

    sup = make_supervisor()  # keep_finished=0: nothing of ours keeps it
    sup.start()

    class Result:
        pass

    record = sup.submit(Result, time_limit=3600, expires=3600)
    result = weakref.ref(record.get(WAIT))
    del record
    gc.collect()
    assert result() is None  # the record, which held it, is gone
    alive(sup)


def test_a_limit_passing_before_the_attempt_is_armed_ends_it(
    make_supervisor, monkeypatch
) -> None:
    # The soft limit passes between its timer call being set and the
    # attempt entering its handlers (a thread preempted there): the attempt
    # must end with it, not let it loose in the pool's own code.
    sup = make_supervisor()
    sup.start()
    sent = threading.Event()
    raise_in_thread = threadattempt.LimitGuard.raise_in_thread
    call_guarded = threadattempt._call_guarded

    def signalled(self, exc_type):
        result = raise_in_thread(self, exc_type)
        sent.set()
        return result

    def preempted(*args):
        assert sent.wait(WAIT)  # held until the limit has passed
        return call_guarded(*args)

    monkeypatch.setattr(threadattempt.LimitGuard, "raise_in_thread", signalled)
    monkeypatch.setattr(threadattempt, "_call_guarded", preempted)
    record = sup.submit(abs, (-1,), soft_time_limit=0.01, time_limit=60)
    assert record.wait(WAIT)
    with pytest.raises(SoftTimeLimitExceeded):
        record.get(0)
    monkeypatch.undo()
    alive(sup)


def test_user_code_of_many_tasks_ended_elsewhere_shares_one_thread(
    make_supervisor, monkeypatch
) -> None:
    # Dependants canceled when their dependency fails have their hooks run
    # off the thread that failed it: on the supervisor's callbacks thread,
    # not on a new thread each.
    sup = make_supervisor()
    sup.start()
    gate = threading.Event()

    def fail_when_released():
        assert gate.wait(WAIT)
        raise ValueError("dependency fails")

    failing = sup.submit(fail_when_released)
    dependants = [
        sup.submit(abs, (-1,), depends_on=[failing], on_error=lambda r, e: None)
        for _ in range(50)
    ]
    started: list[str] = []
    start = threading.Thread.start

    def counted(self):
        started.append(self.name)
        start(self)

    monkeypatch.setattr(threading.Thread, "start", counted)
    gate.set()
    for record in dependants:
        assert record.wait(WAIT)
        assert record.cancel_reason == f"dependency failed: {failing.id}"
    assert len([name for name in started if name.endswith("_callbacks")]) <= 1
    monkeypatch.undo()
    alive(sup)
