"""Retries: the count, the wait between attempts (DELAYED, holding no slot),
backoff and jitter, retry_for, time limits and a worker crash, ctx.retry,
the hooks of each attempt, a cancel or a stop while a task waits for its
next attempt, and retries with expires and depends_on; for thread, process
and coroutine tasks where the behaviour is shared."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import random
import threading
from pathlib import Path

import mptasks
import pytest
from conftest import WAIT, retry_scheduled, started

from atasker import (
    TASK_HIGH,
    TASK_LOW,
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TASK_STATUS_DELAYED,
    TASK_STATUS_ERROR,
    TASK_STATUS_EXCEPTION,
    TASK_STATUS_QUEUED,
    TT_COROUTINE,
    TT_MP,
    TT_THREAD,
    MaxRetriesExceededError,
    Retry,
    SoftTimeLimitExceeded,
    TaskCancelledError,
    TaskError,
    TaskOptions,
    TaskTimeoutError,
    WorkerLostError,
    background_task,
    wait_completed,
)
from atasker.core import retry

KINDS = ("thread", "process", "coroutine")


def make(make_supervisor, kind, **kwargs):
    """A started supervisor for tasks of ``kind``: a thread pool of 4, one
    worker process, or a default aloop."""
    tt = {"thread": TT_THREAD, "process": TT_MP, "coroutine": TT_COROUTINE}[kind]
    return started(make_supervisor, tt, **kwargs)


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.fixture
def sup(make_supervisor, kind):
    return make(make_supervisor, kind)


def as_coroutine(function):
    """A coroutine function that awaits once, then calls ``function`` (so
    that current_context() inside it is the coroutine task's)."""

    async def run(*args, **kwargs):
        await asyncio.sleep(0)
        return function(*args, **kwargs)

    return run


def task_function(sup, kind, function, **options):
    """``function`` (top level in mptasks) as a task function of ``kind``."""
    if kind == "coroutine":
        return background_task(as_coroutine(function), supervisor=sup, **options)
    tt = TT_MP if kind == "process" else TT_THREAD
    return background_task(function, tt=tt, supervisor=sup, **options)


def alive(sup, kind):
    """One more task of ``kind`` goes through the same pool (or loop)."""
    assert task_function(sup, kind, mptasks.add)(2, 3).get(WAIT) == 5


def waits_seen():
    """An on_retry hook that notes by how much each retry moved the record's
    eta past the end of the failed attempt, and the list it fills."""
    seen = []

    def on_retry(record, exc):
        seen.append(record.eta - record.attempts[-1].time_completed)

    return on_retry, seen


class FifoGate:
    """Blocks a process task running ``mptasks.read_fifo(path)`` until
    :meth:`release`."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = path
        self.writer = None

    def wait_started(self) -> None:
        # Opening the FIFO for writing returns once the task opened it to read.
        opened = []
        opener = threading.Thread(
            target=lambda: opened.append(self.path.open("w")), daemon=True
        )
        opener.start()
        opener.join(WAIT)
        assert opened, "task did not start"
        self.writer = opened[0]

    def release(self) -> None:
        if self.writer is not None:
            self.writer.close()


# ----------------------------------------------------------------------
# The count
# ----------------------------------------------------------------------


def test_failing_fewer_times_than_retries_returns(sup, kind, tmp_path) -> None:
    counter = str(tmp_path / "calls")
    task = task_function(sup, kind, mptasks.fail_times, retries=3)(counter, 2)
    assert task.get(WAIT) == 3
    assert task.status == TASK_STATUS_COMPLETED and task.successful()
    assert (task.retries, task.attempt, task.exception) == (2, 3, None)
    assert [(a.number, a.exception) for a in task.attempts] == [
        (1, "ValueError('attempt 1')"),
        (2, "ValueError('attempt 2')"),
    ]
    alive(sup, kind)


def test_failing_every_attempt_ends_with_the_last_exception(
    sup, kind, tmp_path
) -> None:
    counter = str(tmp_path / "calls")
    task = task_function(sup, kind, mptasks.fail_times, retries=2)(counter, 99)
    with pytest.raises(ValueError, match=r"^attempt 3$"):
        task.get(WAIT)
    assert task.status == TASK_STATUS_EXCEPTION and task.failed()
    assert task.retries == 2
    attempts = task.attempts
    assert [a.number for a in attempts] == [1, 2, 3]
    assert [a.exception for a in attempts] == [
        f"ValueError('attempt {n}')" for n in (1, 2, 3)
    ]
    for number, attempt in enumerate(attempts, 1):
        assert f"ValueError: attempt {number}" in attempt.traceback
        assert "fail_times" in attempt.traceback
        assert attempt.time_started <= attempt.time_completed
    assert attempts[0].time_completed <= attempts[1].time_started
    assert attempts[-1].traceback == task.traceback
    assert str(task.exception) == "attempt 3"
    alive(sup, kind)


def test_retries_given_per_call(sup, kind, tmp_path) -> None:
    flaky = task_function(sup, kind, mptasks.fail_times)  # retries=0
    with pytest.raises(ValueError, match="attempt 1"):
        flaky(str(tmp_path / "once"), 1).get(WAIT)
    task = flaky.apply_async(args=(str(tmp_path / "again"), 1), retries=1)
    assert task.get(WAIT) == 2
    assert task.retries == 1
    alive(sup, kind)


# ----------------------------------------------------------------------
# Between attempts
# ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_between_attempts_the_task_is_delayed_and_holds_no_slot(
    make_supervisor, kind, tmp_path, gate
) -> None:
    sup = make_supervisor(keep_finished=100)
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0, max_size=1)
    if kind == "process":
        sup.create_mp_pool(processes=1)
    sup.start()
    retrying, proceed = threading.Event(), threading.Event()
    seen = []

    def on_retry(record, exc):
        # The next attempt is scheduled once this hook returns.
        seen.append((record.status, record.retries, record.attempt))
        retrying.set()
        assert proceed.wait(WAIT)

    first = task_function(
        sup, kind, mptasks.fail_times, retries=1, retry_delay=0.01, on_retry=on_retry
    )(str(tmp_path / "calls"), 1)
    assert retrying.wait(WAIT)
    if kind == "process":
        fifo = FifoGate(tmp_path / "gate")
        blocker = task_function(sup, kind, mptasks.read_fifo)(str(fifo.path))
        wait_started, release = fifo.wait_started, fifo.release
    else:
        blocker = background_task(gate.block, supervisor=sup)()
        wait_started, release = gate.wait_started, gate.release.set
    proceed.set()
    try:
        wait_started()
        # One task at a time can run: the blocker runs between two attempts
        # of the first, which waits without a slot.
        assert first.status in (TASK_STATUS_DELAYED, TASK_STATUS_QUEUED)
        assert (first.attempt, first.retries) == (1, 1)
    finally:
        release()
    assert first.get(WAIT) == 2
    assert blocker.get(WAIT) in ("", "released")
    assert seen == [(TASK_STATUS_DELAYED, 1, 1)]
    alive(sup, kind)


def test_a_retried_process_task_goes_back_through_the_pool_with_its_priority(
    make_supervisor, tmp_path
) -> None:
    sup = make(make_supervisor, "process")
    scheduled = retry_scheduled(sup)
    retrying, proceed = threading.Event(), threading.Event()

    def on_retry(record, exc):
        retrying.set()
        assert proceed.wait(WAIT)

    log = str(tmp_path / "log")
    high = task_function(
        sup,
        "process",
        mptasks.fail_times,
        priority=TASK_HIGH,
        retries=1,
        on_retry=on_retry,
    )(str(tmp_path / "calls"), 1, log=log, label="high")
    assert retrying.wait(WAIT)  # its first attempt failed; the worker is free
    fifo = FifoGate(tmp_path / "gate")
    blocker = task_function(sup, "process", mptasks.read_fifo)(str(fifo.path))
    try:
        fifo.wait_started()  # the only worker is busy
        low = background_task(
            mptasks.record, tt=TT_MP, priority=TASK_LOW, supervisor=sup
        )(log, "low")
        proceed.set()
        assert scheduled.wait(WAIT)
        # Queued after the LOW task, the HIGH one's next attempt goes first.
        assert high.status == TASK_STATUS_QUEUED
        assert low.status == TASK_STATUS_QUEUED
    finally:
        proceed.set()
        fifo.release()
    assert wait_completed([blocker, high, low], timeout=WAIT) == ["", 2, "low"]
    assert Path(log).read_text().split() == ["high", "low"]
    assert high.priority == TASK_HIGH and high.retries == 1
    alive(sup, "process")


# ----------------------------------------------------------------------
# Delays, backoff and jitter
# ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, waits",
    [
        ({}, [0.0, 0.0, 0.0]),
        ({"retry_delay": 2.5}, [2.5, 2.5, 2.5]),
        # Without backoff the delay is not capped.
        ({"retry_delay": 2.5, "retry_backoff_max": 1}, [2.5, 2.5]),
        ({"retry_backoff": True}, [1.0, 2.0, 4.0, 8.0]),
        ({"retry_backoff": True, "retry_delay": 0.5}, [0.5, 1.0, 2.0, 4.0]),
        ({"retry_backoff": 3}, [3.0, 6.0, 12.0]),
        # A number starts the backoff: retry_delay is not used.
        ({"retry_backoff": 3, "retry_delay": 100}, [3.0, 6.0, 12.0]),
        ({"retry_backoff": True, "retry_backoff_max": 5}, [1.0, 2.0, 4.0, 5.0, 5.0]),
        ({"retry_backoff": 0.25, "retry_backoff_max": 0.75}, [0.25, 0.5, 0.75]),
    ],
)
def test_retry_wait(options, waits) -> None:
    policy = TaskOptions(**options)
    assert [retry.retry_wait(policy, n) for n in range(len(waits))] == waits


def test_backoff_is_capped_at_600_s_by_default() -> None:
    policy = TaskOptions(retry_backoff=True)
    assert retry.retry_wait(policy, 9) == 512.0
    assert retry.retry_wait(policy, 10) == 600.0
    assert retry.retry_wait(policy, 5000) == 600.0  # no overflow


def test_jitter_draws_uniformly_between_zero_and_the_wait(monkeypatch) -> None:
    assert retry.uniform is random.uniform
    draws = []

    def draw(low, high):
        draws.append((low, high))
        return high / 4

    monkeypatch.setattr(retry, "uniform", draw)
    policy = TaskOptions(
        retry_backoff=True, retry_delay=2, retry_backoff_max=10, retry_jitter=True
    )
    assert [retry.retry_wait(policy, n) for n in range(4)] == [0.5, 1.0, 2.0, 2.5]
    assert draws == [(0.0, 2.0), (0.0, 4.0), (0.0, 8.0), (0.0, 10.0)]
    draws.clear()
    assert retry.retry_wait(TaskOptions(retry_delay=3, retry_jitter=True), 0) == 0.75
    assert retry.retry_wait(TaskOptions(retry_jitter=True), 0) == 0.0  # nothing to draw
    assert draws == [(0.0, 3.0)]


def test_a_real_jitter_stays_within_the_wait() -> None:
    policy = TaskOptions(retry_backoff=4, retry_jitter=True)
    for n in range(50):
        assert 0.0 <= retry.retry_wait(policy, n % 3) <= 4.0 * 2 ** (n % 3)


def test_next_wait_counts_filters_and_obeys_a_retry_signal() -> None:
    policy = TaskOptions(retries=2, retry_delay=1.5, retry_for=(ValueError,))
    assert retry.next_wait(policy, ValueError(), 0, True) == 1.5
    assert retry.next_wait(policy, ValueError(), 1, True) == 1.5
    assert retry.next_wait(policy, ValueError(), 2, True) is None  # ran out
    assert retry.next_wait(policy, KeyError(), 0, True) is None  # not retry_for
    assert retry.next_wait(policy, ValueError(), 0, False) is None  # asked not to
    # A Retry signal is obeyed up to its own max_retries (ctx.retry() sets
    # it), else up to the retries option.
    signal = Retry(countdown=7.0, max_retries=6)
    assert retry.next_wait(policy, signal, 5, True) == 7.0
    assert retry.next_wait(policy, Retry(countdown=7.0), 1, True) == 7.0
    assert retry.next_wait(policy, Retry(countdown=7.0), 2, True) is None
    assert retry.next_wait(policy, Retry(countdown=0.0, max_retries=6), 5, True) == 0.0
    assert retry.next_wait(policy, Retry(max_retries=6), 5, True) == 1.5


class MyTaskError(TaskError):
    pass


@pytest.mark.parametrize(
    "retry_for, exc, retried",
    [
        ((Exception,), ValueError(), True),
        ((Exception,), SoftTimeLimitExceeded(), True),
        ((Exception,), WorkerLostError("lost"), True),
        ((Exception,), TaskError(), False),
        ((Exception,), MyTaskError(), False),
        ((Exception,), TaskTimeoutError(), False),
        ((BaseException,), concurrent.futures.CancelledError(), False),
        ((BaseException,), asyncio.CancelledError(), False),
        ((BaseException,), TaskCancelledError(), False),
        ((KeyError,), ValueError(), False),
        ((TaskError,), TaskError(), True),
        ((TaskError,), MyTaskError(), True),
        ((MyTaskError,), TaskError(), False),
        ((ValueError, TaskError), TaskError(), True),
        ((TaskTimeoutError,), TaskTimeoutError(), True),
        # Naming a base class of a never-retried kind does not name it.
        ((TimeoutError,), TaskTimeoutError(), False),
        ((concurrent.futures.CancelledError,), TaskCancelledError(), True),
        ((WorkerLostError,), WorkerLostError("lost"), True),
    ],
)
def test_is_retryable(retry_for, exc, retried) -> None:
    assert retry.is_retryable(TaskOptions(retry_for=retry_for), exc) is retried


def test_eta_moves_by_each_backoff_wait(sup, kind, tmp_path) -> None:
    on_retry, seen = waits_seen()
    task = task_function(
        sup,
        kind,
        mptasks.fail_times,
        retries=3,
        retry_delay=0.01,
        retry_backoff=True,
        on_retry=on_retry,
    )(str(tmp_path / "calls"), 3)
    assert task.get(WAIT) == 4
    assert seen == pytest.approx([0.01, 0.02, 0.04], abs=1e-6)
    alive(sup, kind)


def test_eta_moves_by_the_jitter_draw(sup, kind, tmp_path, monkeypatch) -> None:
    draws = []

    def draw(low, high):
        draws.append((low, high))
        return 0.001  # nothing is slept on: the nominal waits are 10 and 20 s

    monkeypatch.setattr(retry, "uniform", draw)
    on_retry, seen = waits_seen()
    task = task_function(
        sup,
        kind,
        mptasks.fail_times,
        retries=2,
        retry_backoff=10,
        retry_jitter=True,
        on_retry=on_retry,
    )(str(tmp_path / "calls"), 2)
    assert task.get(WAIT) == 3
    assert draws == [(0.0, 10.0), (0.0, 20.0)]
    assert seen == pytest.approx([0.001, 0.001], abs=1e-6)
    alive(sup, kind)


# ----------------------------------------------------------------------
# retry_for
# ----------------------------------------------------------------------


def test_an_exception_outside_retry_for_is_not_retried(sup, kind, tmp_path) -> None:
    only_key_errors = task_function(
        sup, kind, mptasks.fail_times, retries=3, retry_for=(KeyError,)
    )
    task = only_key_errors(str(tmp_path / "value"), 99)  # raises ValueError
    with pytest.raises(ValueError, match=r"^attempt 1$"):
        task.get(WAIT)
    assert task.retries == 0
    assert [a.number for a in task.attempts] == [1]
    other = only_key_errors(str(tmp_path / "key"), 1, "KeyError")
    assert other.get(WAIT) == 2 and other.retries == 1
    alive(sup, kind)


def test_task_error_is_retried_only_when_named(sup, kind, tmp_path) -> None:
    plain = task_function(sup, kind, mptasks.fail_times, retries=2)(
        str(tmp_path / "plain"), 99, "TaskError"
    )
    with pytest.raises(TaskError, match=r"^attempt 1$"):
        plain.get(WAIT)
    assert plain.status == TASK_STATUS_ERROR and plain.retries == 0
    named = task_function(
        sup, kind, mptasks.fail_times, retries=2, retry_for=(TaskError,)
    )
    task = named(str(tmp_path / "named"), 2, "TaskError")
    assert task.get(WAIT) == 3 and task.retries == 2
    exhausted = named(str(tmp_path / "exhausted"), 99, "TaskError")
    with pytest.raises(TaskError, match=r"^attempt 3$"):
        exhausted.get(WAIT)
    assert exhausted.status == TASK_STATUS_ERROR and exhausted.retries == 2
    assert [a.exception for a in exhausted.attempts] == [
        f"TaskError('attempt {n}')" for n in (1, 2, 3)
    ]
    alive(sup, kind)


@pytest.mark.parametrize("named", [False, True], ids=["default", "named"])
def test_hard_time_limit_is_retried_only_when_named(sup, kind, tmp_path, named) -> None:
    counter = str(tmp_path / "calls")
    release = threading.Event()
    if kind == "process":
        target, limit = mptasks.block_first, 0.5  # the worker is killed
    elif kind == "thread":
        limit = 0.2

        def target(path):
            number = mptasks.attempt_number(path)
            if number == 1:
                release.wait(WAIT)  # the limit raises here once it returns
            return number

    else:
        limit = 0.2

        async def target(path):
            number = mptasks.attempt_number(path)
            if number == 1:
                await asyncio.sleep(WAIT * 60)  # cancelled at the limit
            return number

    options = {"retry_for": (TaskTimeoutError,)} if named else {}
    tt = TT_MP if kind == "process" else TT_THREAD
    task = background_task(
        target, tt=tt, supervisor=sup, retries=1, time_limit=limit, **options
    )(counter)
    try:
        if named:
            assert task.get(WAIT) == 2
            assert task.retries == 1
            [timeout] = task.attempts
        else:
            with pytest.raises(TaskTimeoutError):
                task.get(WAIT)
            assert task.status == TASK_STATUS_EXCEPTION and task.retries == 0
            [timeout] = task.attempts
        assert timeout.number == 1
        assert timeout.exception.startswith("TaskTimeoutError(")
    finally:
        release.set()  # the first attempt's thread leaves the task
    alive(sup, kind)


def test_a_thread_retried_after_its_hard_limit_gets_the_stuck_threads_slot(
    make_supervisor, tmp_path
) -> None:
    sup = make_supervisor(keep_finished=100, time_limit_grace=0.1)
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0, max_size=1)
    sup.start()
    release = threading.Event()

    def target(path):
        number = mptasks.attempt_number(path)
        if number == 1:
            release.wait(WAIT)  # stuck in C: abandoned after the grace
        return number

    task = background_task(
        target,
        supervisor=sup,
        retries=1,
        time_limit=0.2,
        retry_for=(TaskTimeoutError,),
    )(str(tmp_path / "calls"))
    try:
        # The only slot was the stuck thread's: the pool gave it up.
        assert task.get(WAIT) == 2
        assert sup.get_info().abandoned_threads == 1
    finally:
        release.set()
    assert task.retries == 1
    alive(sup, "thread")


# ----------------------------------------------------------------------
# A worker crash
# ----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["kill", "exit"])
def test_a_worker_crash_is_retried(make_supervisor, tmp_path, how) -> None:
    sup = make(make_supervisor, "process")
    task = task_function(sup, "process", mptasks.crash_first, retries=1)(
        str(tmp_path / "calls"), how
    )
    assert task.get(WAIT) == 2
    assert task.status == TASK_STATUS_COMPLETED and task.retries == 1
    [lost] = task.attempts
    assert lost.number == 1
    assert lost.exception.startswith("WorkerLostError(")
    assert "WorkerLostError" in lost.traceback
    alive(sup, "process")


def test_a_worker_crash_outside_retry_for_is_final(make_supervisor, tmp_path) -> None:
    sup = make(make_supervisor, "process")
    task = task_function(
        sup, "process", mptasks.crash_first, retries=1, retry_for=(ValueError,)
    )(str(tmp_path / "calls"), "kill")
    with pytest.raises(WorkerLostError) as error:
        task.get(WAIT)
    assert error.value.exitcode == -9
    assert task.retries == 0 and len(task.attempts) == 1
    alive(sup, "process")


# ----------------------------------------------------------------------
# ctx.retry(), bound or through current_context()
# ----------------------------------------------------------------------


@pytest.fixture(params=["bind", "current_context"])
def retrier(request):
    """(target, options): mptasks.retry_until given its context."""
    if request.param == "bind":
        return mptasks.retry_until, {"bind": True}
    return mptasks.retry_until_current, {}


def test_ctx_retry_within_declared_retries(sup, kind, retrier) -> None:
    target, options = retrier
    task = task_function(sup, kind, target, retries=2, **options)(2, exc="again")
    assert task.get(WAIT) == 2
    assert task.status == TASK_STATUS_COMPLETED and task.retries == 2
    assert [a.exception for a in task.attempts] == [
        "ValueError('again 0')",
        "ValueError('again 1')",
    ]
    alive(sup, kind)


def test_ctx_retry_without_retries_raises_max_retries_exceeded(
    sup, kind, retrier
) -> None:
    target, options = retrier
    task = task_function(sup, kind, target, **options)(1)  # retries=0
    with pytest.raises(MaxRetriesExceededError, match="max_retries=0"):
        task.get(WAIT)
    assert task.status == TASK_STATUS_EXCEPTION and task.retries == 0
    assert [a.number for a in task.attempts] == [1]
    with_exc = task_function(sup, kind, target, **options)(1, exc="boom")
    with pytest.raises(ValueError, match=r"^boom 0$"):
        with_exc.get(WAIT)
    assert with_exc.retries == 0
    alive(sup, kind)


def test_ctx_retry_past_max_retries_is_final(sup, kind, retrier) -> None:
    target, options = retrier
    # retries=3 would allow more automatic retries: what ctx.retry() raises
    # once its own max_retries is reached ends the task all the same.
    task = task_function(sup, kind, target, retries=3, **options)(
        5, max_retries=1, exc="again"
    )
    with pytest.raises(ValueError, match=r"^again 1$"):
        task.get(WAIT)
    assert task.retries == 1
    assert [a.exception for a in task.attempts] == [
        "ValueError('again 0')",
        "ValueError('again 1')",
    ]
    refused = task_function(sup, kind, target, retries=3, **options)(5, max_retries=0)
    with pytest.raises(MaxRetriesExceededError):
        refused.get(WAIT)
    assert refused.retries == 0 and len(refused.attempts) == 1
    alive(sup, kind)


def test_ctx_retry_with_max_retries(sup, kind, retrier) -> None:
    target, options = retrier
    # No retries declared: max_retries allows them.
    task = task_function(sup, kind, target, **options)(2, max_retries=2)
    assert task.get(WAIT) == 2 and task.retries == 2
    assert all(a.exception.startswith("Retry(") for a in task.attempts)
    exhausted = task_function(sup, kind, target, **options)(99, max_retries=2)
    with pytest.raises(MaxRetriesExceededError, match="max_retries=2"):
        exhausted.get(WAIT)
    assert exhausted.retries == 2 and len(exhausted.attempts) == 3
    alive(sup, kind)


def test_ctx_retry_countdown_sets_the_next_due_time(sup, kind, retrier) -> None:
    target, options = retrier
    on_retry, seen = waits_seen()
    # The countdown replaces the retry policy's wait (an hour here).
    task = task_function(
        sup, kind, target, retries=2, retry_delay=3600, on_retry=on_retry, **options
    )(2, countdown=0.01)
    assert task.get(WAIT) == 2
    assert seen == pytest.approx([0.01, 0.01], abs=1e-6)
    at_once = task_function(sup, kind, target, retries=1, retry_delay=3600, **options)(
        1, countdown=0
    )
    assert at_once.get(WAIT) == 1
    alive(sup, kind)


def test_a_retry_signal_raised_directly_is_bounded_by_retries(
    sup, kind, tmp_path
) -> None:
    counter = tmp_path / "calls"
    task = task_function(sup, kind, mptasks.raise_retry, retries=2)(str(counter), 10)
    # Three attempts, as retries=2 allows; not one per Retry raised. (The
    # last signal, or MaxRetriesExceededError: the issue does not say.)
    with pytest.raises((Retry, MaxRetriesExceededError)):
        task.get(WAIT)
    assert counter.read_text() == "3"
    assert task.retries == 2 and task.failed()
    alive(sup, kind)


# ----------------------------------------------------------------------
# Hooks
# ----------------------------------------------------------------------


HOOKS = ("on_start", "on_success", "on_error", "on_retry", "after_return")


@pytest.mark.parametrize("outcome", ["succeeds", "fails"])
def test_on_retry_and_after_return_run_once_per_attempt(
    sup, kind, tmp_path, outcome
) -> None:
    calls = []
    finished = threading.Event()

    def hook(name):
        def note(record, *rest):
            calls.append((name, record.attempt, *map(repr, rest)))
            if name == "after_return" and record.ready():
                finished.set()

        return note

    hooks = {name: hook(name) for name in HOOKS}
    counter = str(tmp_path / "calls")
    if outcome == "succeeds":
        task = task_function(sup, kind, mptasks.fail_times, retries=2, **hooks)(
            counter, 2
        )
        assert task.get(WAIT) == 3
        second = "on_retry"
        last = [("on_start", 3), ("on_success", 3, "3"), ("after_return", 3)]
    else:
        task = task_function(sup, kind, mptasks.fail_times, retries=1, **hooks)(
            counter, 99
        )
        with pytest.raises(ValueError, match=r"^attempt 2$"):
            task.get(WAIT)
        second, last = "on_error", []
    assert finished.wait(WAIT)  # waiters wake before the last hooks run
    expected = [
        ("on_start", 1),
        ("on_retry", 1, "ValueError('attempt 1')"),
        ("after_return", 1),
        ("on_start", 2),
        (second, 2, "ValueError('attempt 2')"),
        ("after_return", 2),
        *last,
    ]
    assert calls == expected
    alive(sup, kind)


@pytest.mark.parametrize("error", [RuntimeError, SystemExit])
def test_a_failing_on_retry_hook_changes_nothing(
    sup, kind, tmp_path, caplog, error
) -> None:
    def on_retry(record, exc):
        raise error("hook refused")

    with caplog.at_level(logging.ERROR, logger="atasker"):
        task = task_function(
            sup, kind, mptasks.fail_times, retries=2, on_retry=on_retry
        )(str(tmp_path / "calls"), 2)
        assert task.get(WAIT) == 3
    assert task.retries == 2
    # Each was logged before its next attempt was scheduled.
    logged = [r for r in caplog.records if r.getMessage().startswith("on_retry")]
    assert len(logged) == 2
    assert all(isinstance(r.exc_info[1], error) for r in logged)
    alive(sup, kind)


def test_an_exception_whose_repr_raises_is_retried_and_summed_up(sup, kind) -> None:
    task = task_function(sup, kind, mptasks.raise_bad_repr, retries=1)()
    with pytest.raises(mptasks.BadRepr):
        task.get(WAIT)
    assert task.retries == 1
    assert [(a.number, a.exception) for a in task.attempts] == [
        (n, "<BadRepr object (repr failed)>") for n in (1, 2)
    ]
    alive(sup, kind)


# ----------------------------------------------------------------------
# Cancel and stop while waiting for the next attempt
# ----------------------------------------------------------------------


def test_stop_while_waiting_for_the_next_attempt_cancels(
    make_supervisor, kind, tmp_path
) -> None:
    sup = make(make_supervisor, kind)
    scheduled = retry_scheduled(sup)
    task = task_function(sup, kind, mptasks.fail_times, retries=1, retry_delay=3600)(
        str(tmp_path / "calls"), 1
    )
    assert scheduled.wait(WAIT)
    assert task.status == TASK_STATUS_DELAYED and task.state == "DELAYED"
    assert task.retries == 1
    assert not task.wait(0) and not task.done()  # waiters sleep on
    sup.stop(wait=WAIT)
    assert task.status == TASK_STATUS_CANCELED
    assert task.cancel_reason == "stopped"
    assert not task.failed()
    with pytest.raises(TaskCancelledError):
        task.get(0)
    assert [a.number for a in task.attempts] == [1]  # the failed one is kept
    restarted_alive(sup, kind)


def test_cancel_while_waiting_for_the_next_attempt(sup, kind, tmp_path) -> None:
    scheduled = retry_scheduled(sup)
    task = task_function(sup, kind, mptasks.fail_times, retries=1, retry_delay=3600)(
        str(tmp_path / "calls"), 1
    )
    assert scheduled.wait(WAIT)
    assert task.cancel() is True
    assert task.status == TASK_STATUS_CANCELED
    assert task.cancel_reason == "canceled"
    with pytest.raises(TaskCancelledError):
        task.get(0)
    assert task.retries == 1 and [a.number for a in task.attempts] == [1]
    alive(sup, kind)


class StopSignal:
    """A scheduler registered with a supervisor: its stop() is the first
    thing a stop of the supervisor does (the supervisor is STOPPING then)."""

    def __init__(self) -> None:
        self.stopping = threading.Event()

    def stop(self, wait=True) -> None:
        self.stopping.set()


@contextlib.contextmanager
def stop_begun(sup):
    """Run ``sup.stop()`` in a thread; the body runs once the supervisor is
    STOPPING, and the stop has ended when the block does."""
    signal = StopSignal()
    sup.register_scheduler(signal)
    stopper = threading.Thread(target=sup.stop, kwargs={"wait": WAIT})
    stopper.start()
    try:
        assert signal.stopping.wait(WAIT)
        yield
    finally:
        stopper.join(WAIT)
    assert not stopper.is_alive()


def restarted_alive(sup, kind) -> None:
    """After a stop: start again, and one more task goes through."""
    sup.start()
    if kind == "coroutine":
        sup.get_aloop("main").start()
    alive(sup, kind)


def test_a_task_between_attempts_when_the_supervisor_stops_is_canceled(
    make_supervisor, kind, tmp_path
) -> None:
    # The record is between attempts (its on_retry hook runs) when the stop
    # begins: like one waiting out its retry delay, it ends CANCELED
    # "stopped", with the failed attempt kept; the retry never runs.
    sup = make(make_supervisor, kind)
    retrying, proceed = threading.Event(), threading.Event()

    def on_retry(record, exc):
        retrying.set()
        assert proceed.wait(WAIT)

    task = task_function(sup, kind, mptasks.fail_times, retries=1, on_retry=on_retry)(
        str(tmp_path / "calls"), 1
    )
    assert retrying.wait(WAIT)
    try:
        with stop_begun(sup):
            proceed.set()  # the retry now asks a supervisor that stops
    finally:
        proceed.set()
    with pytest.raises(TaskCancelledError):
        task.get(0)
    assert task.cancel_reason == "stopped"
    assert [(a.number, a.exception) for a in task.attempts] == [
        (1, "ValueError('attempt 1')")
    ]
    restarted_alive(sup, kind)


def test_a_task_failing_once_the_supervisor_stops_is_not_retried(
    make_supervisor, kind, tmp_path
) -> None:
    # The attempt fails after the stop began: no retry is planned, and the
    # task fails with that attempt's exception.
    sup = make(make_supervisor, kind)
    gate = mptasks.ProcessGate(tmp_path / "gate")
    try:
        task = task_function(sup, kind, mptasks.fail_after_gate, retries=3)(gate.path)
        gate.wait_arrived()
        with stop_begun(sup):
            gate.release()
    finally:
        gate.release()
    with pytest.raises(ValueError, match="after the gate"):
        task.get(0)
    assert task.status == TASK_STATUS_EXCEPTION and task.retries == 0
    assert len(task.attempts) == 1
    restarted_alive(sup, kind)


def test_a_next_attempt_the_closing_pool_refuses_still_ends(
    make_supervisor, tmp_path
) -> None:
    # The race: the supervisor runs when the retry asks it (_retry_task), and
    # its pool closes before the next attempt reaches it. Forced here by
    # holding the retry between the two.
    sup = make(make_supervisor, "thread")
    pool = sup._pool
    close, release = pool.close, sup._release
    releasing, closed = threading.Event(), threading.Event()

    def closing(*args):
        dropped = close(*args)
        closed.set()
        return dropped

    def late_release(task, wait):
        releasing.set()
        assert closed.wait(WAIT)
        return release(task, wait)

    pool.close, sup._release = closing, late_release
    task = task_function(sup, "thread", mptasks.fail_times, retries=1)(
        str(tmp_path / "calls"), 1
    )
    assert releasing.wait(WAIT)
    sup.stop(wait=WAIT)
    # The stop is over: nothing is left to end the record.
    assert task.done(), f"left {task.state} after the stop"
    assert task.status in (TASK_STATUS_EXCEPTION, TASK_STATUS_CANCELED)
    sup.start()
    alive(sup, "thread")


# ----------------------------------------------------------------------
# Retries and the other options
# ----------------------------------------------------------------------


def test_a_soft_time_limit_is_retried(sup, kind, tmp_path) -> None:
    counter = str(tmp_path / "calls")
    release = threading.Event()
    if kind == "process":
        target = mptasks.block_first  # SIGALRM interrupts its sleep
    elif kind == "thread":

        def target(path):
            number = mptasks.attempt_number(path)
            if number == 1:
                # Busy in short C calls: the asynchronous exception arrives
                # between two of them.
                while not release.wait(0.01):
                    pass
            return number

    else:

        async def target(path):
            number = mptasks.attempt_number(path)
            if number == 1:
                await asyncio.sleep(WAIT * 60)
            return number

    tt = TT_MP if kind == "process" else TT_THREAD
    task = background_task(
        target, tt=tt, supervisor=sup, retries=1, soft_time_limit=0.2
    )(counter)
    try:
        assert task.get(WAIT) == 2
    finally:
        release.set()
    assert task.retries == 1
    [soft] = task.attempts
    assert soft.exception.startswith("SoftTimeLimitExceeded(")
    alive(sup, kind)


def test_a_retrying_task_does_not_expire(sup, kind, tmp_path) -> None:
    alive(sup, kind)  # ready: the first attempt starts well before its expiry
    scheduled = retry_scheduled(sup)
    task = task_function(
        sup, kind, mptasks.fail_times, retries=1, retry_delay=0.5, expires=0.4
    )(str(tmp_path / "calls"), 1)
    assert scheduled.wait(WAIT)
    # Its next attempt is due after the expiry: expires applies before the
    # first start only.
    assert task.eta > task.expires
    assert task.get(WAIT) == 2
    assert task.cancel_reason is None and task.retries == 1
    alive(sup, kind)


def test_a_dependant_waits_for_the_retries(sup, kind, tmp_path) -> None:
    first = task_function(sup, kind, mptasks.fail_times, retries=2)(
        str(tmp_path / "first"), 2, log=str(tmp_path / "log"), label="first"
    )
    then = task_function(sup, kind, mptasks.record, depends_on=[first])(
        str(tmp_path / "log"), "then"
    )
    assert wait_completed([first, then], timeout=WAIT) == [3, "then"]
    assert (tmp_path / "log").read_text().split() == ["first", "then"]
    failing = task_function(sup, kind, mptasks.fail_times, retries=1)(
        str(tmp_path / "failing"), 99
    )
    never = task_function(sup, kind, mptasks.add, depends_on=[failing])(1, 2)
    with pytest.raises(TaskCancelledError):
        never.get(WAIT)
    assert never.cancel_reason == f"dependency failed: {failing.id}"
    assert failing.retries == 1
    alive(sup, kind)
