"""Time limits on every task type (issue 9, part 3): ``time_limit`` (hard) and
``soft_time_limit`` on thread, process and coroutine tasks.

A thread cannot be killed: its limits arrive as asynchronous exceptions,
delivered when it next runs Python code. So a thread task is made to take
them either in a pure-Python loop (:func:`busy`: at once) or stuck in C (the
holds below: only when the test lets it return). No test asserts how long
anything took; the limits are short so that the file is quick.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import operator
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import mptasks
import pytest
from conftest import WAIT

from atasker import (
    TASK_STATUS_COMPLETED,
    TASK_STATUS_EXCEPTION,
    TT_MP,
    SoftTimeLimitExceeded,
    TaskSupervisor,
    TaskTimeoutError,
    background_task,
)


def task(f, sup, **options):
    return background_task(f, supervisor=sup, **options)


def mp(f, sup, **options):
    return background_task(f, tt=TT_MP, supervisor=sup, **options)


def alive(sup):
    """One more thread task goes through the same pool."""
    assert task(abs, sup)(-7).get(WAIT) == 7


def busy(seconds: float = WAIT / 2) -> str:
    """Pure-Python work, in which an asynchronous exception arrives at once.

    Bounded, so that a limit that never comes fails the test (the record
    says "not interrupted") instead of hanging it.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass
    return "not interrupted"


def current_thread_name() -> str:
    return threading.current_thread().name


# ----------------------------------------------------------------------
# Threads stuck in C: no Python code runs until the test releases them
# ----------------------------------------------------------------------


class EventHold:
    """Stuck in ``Event.wait()``: a lock acquire in C."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def hold(self) -> None:
        self._event.wait(WAIT)

    def release(self) -> None:
        self._event.set()


class SleepLoopHold:
    """Stuck in ``time.sleep`` called in a loop that C runs: ``iter`` calls
    ``lock.locked`` until it says False, ``map`` turns each True into a
    short sleep, the deque consumes them; no bytecode runs in between, so an
    asynchronous exception waits for the whole loop to return. Bounded by
    ``islice`` (WAIT seconds at least)."""

    STEP = 0.005

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()  # held: the loop goes on
        self._released = False

    def hold(self) -> None:
        while_locked = itertools.islice(
            iter(self._lock.locked, False), int(WAIT / self.STEP)
        )
        steps = map(operator.mul, while_locked, itertools.repeat(self.STEP))
        collections.deque(map(time.sleep, steps), maxlen=0)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._lock.release()


HOLDS = [
    pytest.param(EventHold, id="event-wait"),
    pytest.param(SleepLoopHold, id="sleep-loop-in-c"),
]


class Stuck:
    """A thread task stuck in C until released; tells what reached it."""

    def __init__(self, hold: EventHold | SleepLoopHold) -> None:
        self.hold = hold
        self.thread: threading.Thread | None = None
        self.started = threading.Event()
        self.interrupted = threading.Event()  # TaskTimeoutError arrived
        self.returned = threading.Event()

    def __call__(self) -> str:
        self.thread = threading.current_thread()
        self.started.set()
        try:
            self.hold.hold()
        except TaskTimeoutError:
            self.interrupted.set()
            # It arrives before the hold only if this thread stalled past the
            # limit on its way in: hold as planned, so the test reads the same.
            self.hold.hold()
            self.returned.set()
            return "returned after its time limit"
        self.returned.set()
        return "never interrupted"


@contextmanager
def logged(text: str) -> Iterator[threading.Event]:
    """An Event set when the atasker logger emits a message containing ``text``."""
    seen = threading.Event()

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if text in record.getMessage():
                seen.set()

    handler = Handler(logging.WARNING)
    logger = logging.getLogger("atasker")
    logger.addHandler(handler)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def one_thread(make_supervisor) -> TaskSupervisor:
    """A supervisor whose thread pool runs one task at a time, on at most one
    thread, and abandons a stuck thread 0.05 s after its hard limit."""
    sup = make_supervisor(keep_finished=1000, time_limit_grace=0.05)
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0, max_size=1)
    sup.start()
    return sup


@pytest.fixture
def mp_pool(make_supervisor) -> TaskSupervisor:
    sup = make_supervisor(keep_finished=1000)
    sup.create_mp_pool(processes=1)
    sup.start()
    return sup


@pytest.fixture
def aloop(supervisor) -> TaskSupervisor:
    supervisor.create_aloop("x", default=True)
    return supervisor


# ----------------------------------------------------------------------
# Thread tasks: hard limit
# ----------------------------------------------------------------------


@pytest.mark.parametrize("hold", HOLDS)
def test_thread_hard_limit_wakes_waiters_while_the_thread_is_busy(
    supervisor, hold
) -> None:
    supervisor.time_limit_grace = WAIT  # not abandoned: this test is not about that
    stuck = Stuck(hold())
    record = task(stuck, supervisor, time_limit=0.1)()
    try:
        assert stuck.started.wait(WAIT)
        with pytest.raises(TaskTimeoutError, match=r"time limit of 0\.1 s"):
            record.get(WAIT)
        assert record.wait(WAIT)
        assert record.status == TASK_STATUS_EXCEPTION
        assert not stuck.returned.is_set()  # still stuck in C
        assert supervisor.get_info().abandoned_threads == 0
    finally:
        stuck.hold.release()
    # Whether the TaskTimeoutError reached it or not (see the test below),
    # what it returns now is dropped.
    assert stuck.returned.wait(WAIT)
    assert isinstance(record.exception, TaskTimeoutError)
    assert record.result is None
    alive(supervisor)


def test_thread_released_as_its_record_times_out_still_gets_the_exception(
    supervisor,
) -> None:
    """The thread is still in the task at the deadline, so TaskTimeoutError
    must reach it when it next runs Python code, even if what releases it is
    the record ending (a waiter cleaning up as soon as it wakes).

    To make that order certain, the release happens in the timer thread as
    it logs the failure, which it does after ending the record, and the
    handler waits there until the task has returned.
    """
    supervisor.time_limit_grace = WAIT
    stuck = Stuck(EventHold())
    record = task(stuck, supervisor, time_limit=0.1)()

    class ReleaseOnFailure(logging.Handler):
        def emit(self, log_record: logging.LogRecord) -> None:
            if record.id in log_record.getMessage():
                stuck.hold.release()
                stuck.returned.wait(WAIT)

    handler = ReleaseOnFailure(logging.ERROR)
    logger = logging.getLogger("atasker")
    logger.addHandler(handler)
    try:
        assert stuck.started.wait(WAIT)
        with pytest.raises(TaskTimeoutError):
            record.get(WAIT)
        assert stuck.returned.wait(WAIT)
    finally:
        logger.removeHandler(handler)
        stuck.hold.release()
    assert stuck.interrupted.is_set()
    assert isinstance(record.exception, TaskTimeoutError)
    alive(supervisor)


def test_thread_hard_limit_is_raised_in_a_pure_python_loop(supervisor) -> None:
    interrupted = threading.Event()

    def spin() -> str:
        try:
            return busy()
        except TaskTimeoutError:
            interrupted.set()
            raise

    record = task(spin, supervisor, time_limit=0.1)()
    with pytest.raises(TaskTimeoutError):
        record.get(WAIT)
    assert interrupted.wait(WAIT)
    assert record.status == TASK_STATUS_EXCEPTION
    alive(supervisor)


@pytest.mark.parametrize("hold", HOLDS)
def test_thread_stuck_in_c_is_abandoned_and_the_pool_keeps_its_capacity(
    one_thread, hold
) -> None:
    sup = one_thread
    stuck = Stuck(hold())
    with logged("abandoned") as abandoned_logged:
        try:
            record = task(stuck, sup, time_limit=0.1)()
            assert stuck.started.wait(WAIT)
            queued = task(current_thread_name, sup)()  # the only thread is stuck
            with pytest.raises(TaskTimeoutError):
                record.get(WAIT)
            # Its slot and its place were given up: another thread runs the
            # queued task while the stuck one is still stuck.
            assert queued.get(WAIT) != stuck.thread.name
            assert sup.get_info().abandoned_threads == 1
            assert abandoned_logged.wait(WAIT)
            assert task(current_thread_name, sup)().get(WAIT) != stuck.thread.name
            assert stuck.thread.is_alive()
            assert not stuck.returned.is_set()
        finally:
            stuck.hold.release()
            if stuck.thread is not None:
                stuck.thread.join(WAIT)
    # Released, it returns (a value, which is dropped) and its thread exits.
    assert stuck.interrupted.is_set() and stuck.returned.is_set()
    assert not stuck.thread.is_alive()
    assert sup.get_info().abandoned_threads == 0
    assert isinstance(record.exception, TaskTimeoutError)
    assert record.status == TASK_STATUS_EXCEPTION and record.result is None
    alive(sup)


def test_a_hard_limit_during_on_start_keeps_the_target_from_running(
    one_thread,
) -> None:
    sup = one_thread
    sup.time_limit_grace = WAIT  # never abandoned: the next task runs after it
    target_ran = threading.Event()

    def target() -> str:
        target_ran.set()
        return "ran after its attempt ended"

    record = task(target, sup, time_limit=0.1, on_start=lambda record: busy())()
    with pytest.raises(TaskTimeoutError):
        record.get(WAIT)
    alive(sup)  # on the pool's only thread: the attempt has left it
    assert not target_ran.is_set()


def test_a_soft_limit_during_on_start_is_not_lost(supervisor) -> None:
    def target() -> str:
        try:
            return busy(1.0)  # bounded: the test is slow only while this fails
        except SoftTimeLimitExceeded:
            return "cleaned up"

    record = task(target, supervisor, soft_time_limit=0.05, on_start=lambda r: busy())()
    # Either the target or the attempt itself gets it; it is not swallowed.
    with suppress(SoftTimeLimitExceeded):
        assert record.get(WAIT) == "cleaned up"
    alive(supervisor)


def test_limits_end_with_the_attempt(one_thread) -> None:
    """A task that ends before its limits leaves nothing armed behind: the
    next task on the same thread runs on past them untouched."""
    sup = one_thread
    first = task(current_thread_name, sup, soft_time_limit=0.05, time_limit=0.1)()
    thread = first.get(WAIT)
    second = task(lambda: (busy(0.3), current_thread_name()), sup)()
    assert second.get(WAIT) == ("not interrupted", thread)


# ----------------------------------------------------------------------
# Thread tasks: soft limit
# ----------------------------------------------------------------------


def test_thread_soft_limit_caught_and_cleaned_up(supervisor) -> None:
    cleaned = threading.Event()

    def cleans_up() -> str:
        try:
            return busy()
        except SoftTimeLimitExceeded:
            cleaned.set()
            return "cleaned up"

    record = task(cleans_up, supervisor, soft_time_limit=0.05)()
    assert record.get(WAIT) == "cleaned up"
    assert cleaned.is_set()
    assert record.status == TASK_STATUS_COMPLETED
    alive(supervisor)


def test_thread_soft_limit_uncaught_fails_the_task(supervisor) -> None:
    record = task(busy, supervisor, soft_time_limit=0.05)()
    with pytest.raises(SoftTimeLimitExceeded):
        record.get(WAIT)
    assert record.status == TASK_STATUS_EXCEPTION
    assert "SoftTimeLimitExceeded" in record.traceback
    alive(supervisor)


def test_thread_hard_limit_after_a_caught_soft_limit(supervisor) -> None:
    soft, hard = threading.Event(), threading.Event()

    def outlives_soft_limit() -> str:
        try:
            busy()
        except SoftTimeLimitExceeded:
            soft.set()
        try:
            return busy()  # cleaning up for too long
        except TaskTimeoutError:
            hard.set()
            raise

    record = task(
        outlives_soft_limit, supervisor, soft_time_limit=0.05, time_limit=0.2
    )()
    with pytest.raises(TaskTimeoutError, match=r"time limit of 0\.2 s"):
        record.get(WAIT)
    assert soft.wait(WAIT) and hard.wait(WAIT)
    assert record.status == TASK_STATUS_EXCEPTION
    alive(supervisor)


# ----------------------------------------------------------------------
# Process tasks
# ----------------------------------------------------------------------


def test_process_hard_limit_kills_the_worker(mp_pool) -> None:
    pid = mp(mptasks.pid, mp_pool)().get(WAIT)
    record = mp(mptasks.sleep, mp_pool, time_limit=0.2)(WAIT * 6)
    with pytest.raises(TaskTimeoutError, match="time limit"):
        record.get(WAIT)
    assert record.status == TASK_STATUS_EXCEPTION
    assert mp(mptasks.pid, mp_pool)().get(WAIT) != pid  # a new worker
    assert mp(mptasks.add, mp_pool)(1, 2).get(WAIT) == 3


def test_process_soft_limit_caught_and_cleaned_up(mp_pool) -> None:
    pid = mp(mptasks.pid, mp_pool)().get(WAIT)
    # The signal interrupts time.sleep in the worker.
    record = mp(mptasks.sleep_catching_soft_limit, mp_pool, soft_time_limit=0.1)(
        WAIT * 6
    )
    assert record.get(WAIT) == "cleaned up"
    assert record.status == TASK_STATUS_COMPLETED
    assert mp(mptasks.pid, mp_pool)().get(WAIT) == pid  # the worker went on


def test_process_soft_limit_uncaught_fails_the_task(mp_pool) -> None:
    pid = mp(mptasks.pid, mp_pool)().get(WAIT)
    record = mp(mptasks.sleep, mp_pool, soft_time_limit=0.1)(WAIT * 6)
    with pytest.raises(SoftTimeLimitExceeded):
        record.get(WAIT)
    assert record.status == TASK_STATUS_EXCEPTION
    assert mp(mptasks.pid, mp_pool)().get(WAIT) == pid


def test_process_hard_limit_after_a_caught_soft_limit(mp_pool, tmp_path) -> None:
    log = tmp_path / "log"
    record = mp(
        mptasks.sleep_past_soft_limit, mp_pool, soft_time_limit=0.1, time_limit=0.3
    )(str(log), WAIT * 6)
    with pytest.raises(TaskTimeoutError):
        record.get(WAIT)
    assert log.read_text() == "soft limit\n"  # it did clean up before the kill
    assert mp(mptasks.add, mp_pool)(1, 2).get(WAIT) == 3


def test_process_soft_limit_ends_with_the_task(mp_pool) -> None:
    """No alarm is left for the worker's next task."""
    pid = mp(mptasks.pid, mp_pool, soft_time_limit=0.05)().get(WAIT)
    assert mp(mptasks.sleep, mp_pool)(0.3).get(WAIT) == 0.3
    assert mp(mptasks.pid, mp_pool)().get(WAIT) == pid


# ----------------------------------------------------------------------
# Coroutine tasks
# ----------------------------------------------------------------------


@pytest.mark.parametrize("on", ["default aloop", "asyncio loop"])
def test_coroutine_hard_limit_cancels_the_coroutine(aloop, on) -> None:
    loop = aloop.get_aloop("x").get_loop() if on == "asyncio loop" else None
    cancelled = threading.Event()

    async def ignores_the_limit() -> str:
        try:
            await asyncio.sleep(WAIT * 6)
        except asyncio.CancelledError:
            cancelled.set()
        return "returned after its time limit"  # dropped

    record = task(ignores_the_limit, aloop, time_limit=0.1, loop=loop)()
    with pytest.raises(TaskTimeoutError, match=r"time limit of 0\.1 s"):
        record.get(WAIT)
    assert cancelled.wait(WAIT)
    assert record.status == TASK_STATUS_EXCEPTION
    assert isinstance(record.exception, TaskTimeoutError) and record.result is None
    assert task(asyncio.sleep, aloop)(0, "alive").get(WAIT) == "alive"


def test_coroutine_soft_limit_caught_and_cleaned_up(aloop) -> None:
    async def cleans_up() -> str:
        try:
            await asyncio.sleep(WAIT * 6)
        except SoftTimeLimitExceeded:
            await asyncio.sleep(0.01)  # cleaning up may await
            return "cleaned up"
        return "not interrupted"

    record = task(cleans_up, aloop, soft_time_limit=0.05)()
    assert record.get(WAIT) == "cleaned up"
    assert record.status == TASK_STATUS_COMPLETED
    assert task(asyncio.sleep, aloop)(0, "alive").get(WAIT) == "alive"


def test_coroutine_soft_limit_uncaught_fails_the_task(aloop) -> None:
    record = task(asyncio.sleep, aloop, soft_time_limit=0.05)(WAIT * 6)
    with pytest.raises(SoftTimeLimitExceeded):
        record.get(WAIT)
    assert record.status == TASK_STATUS_EXCEPTION
    assert task(asyncio.sleep, aloop)(0, "alive").get(WAIT) == "alive"


def test_coroutine_hard_limit_after_a_caught_soft_limit(aloop) -> None:
    soft, cancelled = threading.Event(), threading.Event()

    async def outlives_soft_limit() -> str:
        try:
            await asyncio.sleep(WAIT * 6)
        except SoftTimeLimitExceeded:
            soft.set()
        try:
            await asyncio.sleep(WAIT * 6)  # cleaning up for too long
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "not interrupted"

    record = task(outlives_soft_limit, aloop, soft_time_limit=0.05, time_limit=0.2)()
    with pytest.raises(TaskTimeoutError):
        record.get(WAIT)
    assert soft.wait(WAIT) and cancelled.wait(WAIT)
    assert record.status == TASK_STATUS_EXCEPTION
    assert task(asyncio.sleep, aloop)(0, "alive").get(WAIT) == "alive"


# ----------------------------------------------------------------------
# Each attempt gets its own limits
# ----------------------------------------------------------------------


def test_each_thread_attempt_gets_its_own_hard_limit(supervisor) -> None:
    attempts = itertools.count(1)
    interrupted = {1: threading.Event(), 2: threading.Event()}

    def hangs_twice() -> str:
        attempt = next(attempts)
        if attempt == 3:
            return "attempt 3"
        try:
            return busy()
        except TaskTimeoutError:
            interrupted[attempt].set()
            raise

    record = task(
        hangs_twice,
        supervisor,
        time_limit=0.1,
        retries=2,
        retry_for=(TaskTimeoutError,),
    )()
    assert record.get(WAIT) == "attempt 3"
    assert interrupted[1].wait(WAIT) and interrupted[2].wait(WAIT)
    assert record.retries == 2
    assert [a.number for a in record.attempts] == [1, 2]
    assert all("TaskTimeoutError" in a.exception for a in record.attempts)
    alive(supervisor)


def test_a_hung_attempt_is_retried_on_a_new_thread(one_thread) -> None:
    """The first attempt is stuck in C on the pool's only thread: the retry
    runs once that thread is abandoned."""
    sup = one_thread
    stuck = Stuck(EventHold())
    attempts = itertools.count(1)

    def hangs_once() -> str:
        if next(attempts) == 1:
            return stuck()
        return current_thread_name()

    try:
        record = task(
            hangs_once, sup, time_limit=0.1, retries=1, retry_for=(TaskTimeoutError,)
        )()
        assert record.get(WAIT) != stuck.thread.name
        assert record.retries == 1
        assert not stuck.returned.is_set()
    finally:
        stuck.hold.release()
        if stuck.thread is not None:
            stuck.thread.join(WAIT)
    assert stuck.returned.is_set()
    assert record.status == TASK_STATUS_COMPLETED  # the late return changed nothing
    assert sup.get_info().abandoned_threads == 0
    alive(sup)


def test_each_thread_attempt_gets_its_own_soft_limit(supervisor) -> None:
    attempts = itertools.count(1)

    def cleans_up_the_second_time() -> str:
        attempt = next(attempts)
        try:
            return busy()
        except SoftTimeLimitExceeded:
            if attempt == 1:
                raise
            return f"cleaned up in attempt {attempt}"

    record = task(
        cleans_up_the_second_time, supervisor, soft_time_limit=0.05, retries=1
    )()
    assert record.get(WAIT) == "cleaned up in attempt 2"
    assert [a.number for a in record.attempts] == [1]
    assert "SoftTimeLimitExceeded" in record.attempts[0].exception
    alive(supervisor)


def test_each_process_attempt_gets_its_own_hard_limit(mp_pool, tmp_path) -> None:
    record = mp(
        mptasks.block_first,
        mp_pool,
        time_limit=0.2,
        retries=1,
        retry_for=(TaskTimeoutError,),
    )(str(tmp_path / "calls"))
    assert record.get(WAIT) == 2  # the second call
    assert record.retries == 1
    assert "TaskTimeoutError" in record.attempts[0].exception
    assert mp(mptasks.add, mp_pool)(1, 2).get(WAIT) == 3


def test_each_process_attempt_gets_its_own_soft_limit(mp_pool, tmp_path) -> None:
    record = mp(
        mptasks.sleep_catching_soft_limit_on_retry,
        mp_pool,
        soft_time_limit=0.1,
        retries=1,
    )(str(tmp_path / "tried"), WAIT * 6)
    assert record.get(WAIT) == "cleaned up in a retry"
    assert "SoftTimeLimitExceeded" in record.attempts[0].exception
    assert mp(mptasks.add, mp_pool)(1, 2).get(WAIT) == 3


def test_each_coroutine_attempt_gets_its_own_hard_limit(aloop) -> None:
    attempts = itertools.count(1)
    cancelled = threading.Event()

    async def hangs_once() -> str:
        attempt = next(attempts)
        if attempt > 1:
            return f"attempt {attempt}"
        try:
            await asyncio.sleep(WAIT * 6)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "not interrupted"

    record = task(
        hangs_once, aloop, time_limit=0.1, retries=1, retry_for=(TaskTimeoutError,)
    )()
    assert record.get(WAIT) == "attempt 2"
    assert cancelled.wait(WAIT)
    assert record.retries == 1
    assert "TaskTimeoutError" in record.attempts[0].exception
    assert task(asyncio.sleep, aloop)(0, "alive").get(WAIT) == "alive"


# ----------------------------------------------------------------------
# Bad values
# ----------------------------------------------------------------------

# The message names the option ("^": time_limit, not soft_time_limit).
BAD_LIMITS = [
    ({"time_limit": 0}, ValueError, "^time_limit"),
    ({"time_limit": -1}, ValueError, "^time_limit"),
    ({"time_limit": float("nan")}, ValueError, "^time_limit"),
    ({"time_limit": float("inf")}, ValueError, "^time_limit"),
    ({"time_limit": "1"}, TypeError, "^time_limit"),
    ({"time_limit": True}, TypeError, "^time_limit"),
    ({"soft_time_limit": 0}, ValueError, "soft_time_limit"),
    ({"soft_time_limit": -0.5}, ValueError, "soft_time_limit"),
    ({"soft_time_limit": "1"}, TypeError, "soft_time_limit"),
    ({"soft_time_limit": 1, "time_limit": 1}, ValueError, "soft_time_limit"),
    ({"soft_time_limit": 2, "time_limit": 1}, ValueError, "soft_time_limit"),
]


@pytest.mark.parametrize("where", ["decorator", "apply_async", "submit"])
@pytest.mark.parametrize("options, error, name", BAD_LIMITS)
def test_bad_limits_are_refused_at_the_call(
    supervisor, where, options, error, name
) -> None:
    with pytest.raises(error, match=name):
        if where == "decorator":
            task(abs, supervisor, **options)
        elif where == "apply_async":
            task(abs, supervisor).apply_async(args=(-1,), **options)
        else:
            supervisor.submit(abs, (-1,), **options)
    assert supervisor.get_tasks() == {}


def test_soft_limit_below_the_hard_one_across_decorator_and_call(supervisor) -> None:
    limited = task(abs, supervisor, time_limit=1)
    with pytest.raises(ValueError, match="soft_time_limit"):
        limited.apply_async(args=(-1,), soft_time_limit=1)
    assert limited.apply_async(args=(-1,), soft_time_limit=0.5).get(WAIT) == 1
    soft_limited = task(abs, supervisor, soft_time_limit=1)
    with pytest.raises(ValueError, match="soft_time_limit"):
        soft_limited.apply_async(args=(-1,), time_limit=0.5)
    assert supervisor.get_tasks() == {}


@pytest.mark.parametrize(
    "grace, error", [(-1, ValueError), (float("nan"), ValueError), ("1", TypeError)]
)
def test_bad_time_limit_grace(grace, error) -> None:
    with pytest.raises(error, match="time_limit_grace"):
        TaskSupervisor(time_limit_grace=grace)
