"""When a task runs: delay/countdown, eta, expires; and why it was canceled."""

from __future__ import annotations

import datetime
import threading
import time

import mptasks
import pytest
from conftest import WAIT, Gate, started

from atasker import (
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TASK_STATUS_DELAYED,
    TASK_STATUS_QUEUED,
    TT_MP,
    TT_THREAD,
    TaskCancelledError,
    background_task,
)

HOUR = 3600.0


class Single:
    """A started supervisor that runs one task of type ``tt`` at a time."""

    def __init__(self, supervisor, tt):
        self.supervisor = supervisor
        self.tt = tt

    def task(self, target, **options):
        return background_task(
            target, tt=self.tt, supervisor=self.supervisor, **options
        )


@pytest.fixture(params=[TT_THREAD, TT_MP], ids=["thread", "process"])
def single(request, make_supervisor):
    return Single(started(make_supervisor, request.param, threads=1), request.param)


@pytest.fixture
def one_thread(make_supervisor):
    return started(make_supervisor, threads=1)


@pytest.fixture
def process_gate(tmp_path):
    gate = mptasks.ProcessGate(tmp_path / "gate")
    yield gate
    gate.release()


def block(single, gate):
    """Fill ``single``'s only slot with a task at ``gate``."""
    blocker = single.task(mptasks.wait_at_gate)(gate.path)
    gate.wait_arrived()
    return blocker


# ----------------------------------------------------------------------
# delay, countdown, eta
# ----------------------------------------------------------------------


def test_delay_and_countdown_together_are_refused(supervisor) -> None:
    with pytest.raises(TypeError, match="countdown"):
        background_task(int, delay=1, countdown=1)
    f = background_task(int, supervisor=supervisor)
    with pytest.raises(TypeError, match="countdown"):
        f.apply_async(delay=1, countdown=1)
    with pytest.raises(TypeError, match="eta"):
        f.apply_async(eta=time.time() + HOUR, countdown=1)
    with pytest.raises(TypeError, match="eta"):
        background_task(int, eta=time.time() + HOUR, delay=1)
    assert supervisor.get_info().delayed == 0


@pytest.mark.parametrize("when", ["delay", "countdown"])
def test_countdown_is_delay(single, when) -> None:
    record = single.task(mptasks.add).apply_async((1, 2), **{when: HOUR})
    assert record.status == TASK_STATUS_DELAYED
    assert record.delay == HOUR
    assert single.supervisor.get_info().delayed == 1
    assert record.cancel() is True


def _eta_forms(seconds):
    """The same point in time (``seconds`` from now) in each accepted form."""
    epoch = time.time() + seconds
    aware = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    naive_local = datetime.datetime.fromtimestamp(epoch)
    return {"aware": aware, "naive local": naive_local, "epoch": epoch}, epoch


@pytest.mark.parametrize("form", ["aware", "naive local", "epoch"])
def test_eta_in_the_future_delays_and_holds_no_slot(single, process_gate, form) -> None:
    forms, epoch = _eta_forms(HOUR)
    later = single.task(mptasks.add, eta=forms[form])(1, 2)
    assert later.status == TASK_STATUS_DELAYED
    assert later.eta == pytest.approx(epoch, abs=1e-3)
    assert single.supervisor.get_info().delayed == 1
    # The only slot is free: another task starts while it waits.
    blocker = block(single, process_gate)
    assert later.status == TASK_STATUS_DELAYED
    process_gate.release()
    assert blocker.get(WAIT) == "released"
    assert later.cancel() is True
    assert later.cancel_reason == "canceled"


@pytest.mark.parametrize("form", ["aware", "naive local", "epoch"])
def test_eta_in_the_past_runs_at_once(single, process_gate, form) -> None:
    forms, epoch = _eta_forms(-HOUR)
    blocker = block(single, process_gate)
    record = single.task(mptasks.add).apply_async((1, 2), eta=forms[form])
    # Straight into the queue (behind the blocker), not to the timer.
    assert record.status == TASK_STATUS_QUEUED
    assert record.eta == pytest.approx(epoch, abs=1e-3)
    process_gate.release()
    assert blocker.get(WAIT) == "released"
    assert record.get(WAIT) == 3


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"retries": 1},
    ],
    ids=["0.7 options only", "with retries"],
)
def test_record_eta_of_a_countdown(one_thread, options) -> None:
    before = time.time()
    record = background_task(int, countdown=HOUR, supervisor=one_thread, **options)()
    try:
        assert record.eta is not None and record.eta >= before + HOUR
    finally:
        assert record.cancel() is True


# ----------------------------------------------------------------------
# expires
# ----------------------------------------------------------------------


def _expires(form, seconds):
    if form == "seconds":
        return seconds
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
        seconds=seconds
    )


@pytest.mark.parametrize("form", ["seconds", "datetime"])
def test_expires_before_start(single, process_gate, form) -> None:
    blocker = block(single, process_gate)
    expires = _expires(form, 0.05)
    before = time.time()
    record = single.task(mptasks.add, expires=expires)(1, 2)
    after = time.time()
    assert record.status == TASK_STATUS_QUEUED
    if form == "seconds":
        assert before + expires <= record.expires <= after + expires
    else:
        assert record.expires == expires.timestamp()
    # Its waiters wake when it expires: the pool is still full.
    with pytest.raises(TaskCancelledError):
        record.get(WAIT)
    assert record.status == TASK_STATUS_CANCELED
    assert record.cancel_reason == "expired"
    assert not record.is_started()
    process_gate.release()
    assert blocker.get(WAIT) == "released"
    # It left the queue: the next task runs.
    assert single.task(mptasks.add)(2, 3).get(WAIT) == 5


def test_expires_while_delayed(one_thread, gate: Gate) -> None:
    dependency = background_task(gate.block, supervisor=one_thread)()
    gate.wait_started()
    # DELAYED until its dependency completes, which it will not in time.
    record = background_task(int, depends_on=[dependency], supervisor=one_thread)
    task = record.apply_async(expires=0.05)
    assert task.status == TASK_STATUS_DELAYED
    with pytest.raises(TaskCancelledError):
        task.get(WAIT)
    assert task.cancel_reason == "expired"
    gate.release.set()
    assert dependency.get(WAIT) == "released"
    assert task.cancel_reason == "expired" and not task.is_started()


def test_expires_datetime_already_past(one_thread) -> None:
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
    record = background_task(int, expires=past, supervisor=one_thread)()
    assert record.status == TASK_STATUS_CANCELED
    assert record.cancel_reason == "expired"


def test_a_started_task_does_not_expire(single, process_gate) -> None:
    # A bound on how long the task takes to start (nothing sleeps on it).
    expires = 1.0
    running = single.task(mptasks.wait_at_gate, expires=expires)(process_gate.path)
    process_gate.wait_arrived()
    # Its expiry time passes while it runs: a later task with the same
    # expiry, that cannot start, expires after it.
    queued = single.task(mptasks.add, expires=expires)(1, 2)
    with pytest.raises(TaskCancelledError):
        queued.get(WAIT)
    assert queued.cancel_reason == "expired"
    assert running.status != TASK_STATUS_CANCELED
    process_gate.release()
    assert running.get(WAIT) == "released"
    assert running.status == TASK_STATUS_COMPLETED
    assert running.cancel_reason is None


@pytest.mark.parametrize("when", ["countdown", "delay", "eta", "eta datetime"])
def test_eta_after_expires_is_refused(one_thread, when) -> None:
    due = time.time() + 10
    given = {
        "countdown": {"countdown": 10},
        "delay": {"delay": 10},
        "eta": {"eta": due},
        "eta datetime": {
            "eta": datetime.datetime.fromtimestamp(due, datetime.timezone.utc)
        },
    }[when]
    f = background_task(int, supervisor=one_thread)
    with pytest.raises(ValueError, match="expires"):
        f.apply_async(expires=5, **given)
    # Given at decoration, refused at the call.
    g = background_task(int, expires=5, supervisor=one_thread, **given)
    with pytest.raises(ValueError, match="expires"):
        g()
    info = one_thread.get_info()
    assert (info.delayed, info.canceled, info.completed) == (0, 0, 0)


# ----------------------------------------------------------------------
# cancel_reason
# ----------------------------------------------------------------------


@pytest.mark.parametrize("reason", [None, "not needed"])
def test_cancel_reason_of_cancel(single, process_gate, reason) -> None:
    blocker = block(single, process_gate)
    queued = single.task(mptasks.add)(1, 2)
    delayed = single.task(mptasks.add, countdown=HOUR)(1, 2)
    assert queued.cancel(reason) is True
    assert delayed.cancel(reason) is True
    expected = reason or "canceled"
    assert (queued.cancel_reason, delayed.cancel_reason) == (expected, expected)
    assert blocker.cancel_reason is None
    process_gate.release()
    assert blocker.get(WAIT) == "released"
    assert blocker.cancel_reason is None


def test_cancel_reason_of_a_running_process_task(make_supervisor, process_gate) -> None:
    sup = make_supervisor()
    sup.create_mp_pool(processes=1)
    sup.start()
    running = background_task(mptasks.wait_at_gate, tt=TT_MP, supervisor=sup)(
        process_gate.path
    )
    process_gate.wait_arrived()
    assert running.cancel("too slow") is True
    with pytest.raises(TaskCancelledError):
        running.get(WAIT)
    assert running.cancel_reason == "too slow"


def test_cancel_reason_of_a_stop(single, process_gate) -> None:
    blocker = block(single, process_gate)
    queued = single.task(mptasks.add)(1, 2)
    delayed = single.task(mptasks.add, countdown=HOUR)(1, 2)
    stopped = threading.Event()

    def stop():
        single.supervisor.stop(wait=WAIT, cancel_tasks=True)
        stopped.set()

    stopper = threading.Thread(target=stop)
    stopper.start()
    for record in (queued, delayed):
        with pytest.raises(TaskCancelledError):
            record.get(WAIT)
        assert record.cancel_reason == "stopped"
    process_gate.release()
    stopper.join(WAIT)
    assert stopped.is_set()
    assert blocker.status == TASK_STATUS_COMPLETED and blocker.cancel_reason is None
