"""Task context: bind=True, current_context(), update_state, state names,
and cancel of a running thread task through check_cancelled()."""

from __future__ import annotations

import asyncio
import threading
import time

import mptasks
import pytest
from conftest import WAIT, started

from atasker import (
    TASK_HIGH,
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TASK_STATUS_ERROR,
    TASK_STATUS_EXCEPTION,
    TASK_STATUS_STARTED,
    TT_COROUTINE,
    TT_MP,
    TT_THREAD,
    TaskCancelledError,
    TaskContext,
    TaskInfo,
    background_task,
    current_context,
)

KINDS = {"thread": TT_THREAD, "process": TT_MP, "coroutine": TT_COROUTINE}


async def coroutine_current_fields(*args, k=None):
    return mptasks.context_fields(current_context())


async def coroutine_bound_fields(ctx, *args, k=None):
    assert ctx is current_context()
    return mptasks.context_fields(ctx)


async def coroutine_fail_first_attempt():
    return mptasks.fail_first_attempt()


TARGETS = {
    (TT_THREAD, "current"): mptasks.current_fields,
    (TT_THREAD, "bound"): mptasks.bound_fields,
    (TT_THREAD, "fail first"): mptasks.fail_first_attempt,
    (TT_MP, "current"): mptasks.current_fields,
    (TT_MP, "bound"): mptasks.bound_fields,
    (TT_MP, "fail first"): mptasks.fail_first_attempt,
    (TT_COROUTINE, "current"): coroutine_current_fields,
    (TT_COROUTINE, "bound"): coroutine_bound_fields,
    (TT_COROUTINE, "fail first"): coroutine_fail_first_attempt,
}


@pytest.fixture(params=list(KINDS))
def kind(request, make_supervisor):
    """(supervisor, task type): a supervisor that runs that type."""
    tt = KINDS[request.param]
    return started(make_supervisor, tt, threads=2), tt


@pytest.fixture(params=["thread", "process"])
def thread_or_process(request, make_supervisor):
    """(supervisor, task type) for what coroutine tasks do not share."""
    tt = KINDS[request.param]
    return started(make_supervisor, tt, threads=1), tt


@pytest.mark.parametrize("how", ["current", "bound"])
def test_context_fields(kind, how) -> None:
    sup, tt = kind
    eta = time.time() - 60  # due already: it runs at once
    f = background_task(TARGETS[tt, how], tt=tt, bind=how == "bound", supervisor=sup)
    before = time.time()
    record = f.apply_async(
        (1, "two"),
        {"k": 3},
        task_id="ctx-1",
        name="jobs.context",
        priority=TASK_HIGH,
        eta=eta,
        expires=60,
    )
    after = time.time()
    assert record.tt == tt
    fields = record.get(WAIT)
    assert before + 60 <= fields["expires"] <= after + 60
    assert fields == {
        "id": "ctx-1",
        "name": "jobs.context",
        "priority": TASK_HIGH,
        "retries": 0,
        "args": (1, "two"),  # without the context itself
        "kwargs": {"k": 3},
        "eta": eta,
        "expires": record.expires,
    }


@pytest.mark.parametrize("how", ["current", "bound"])
def test_context_fields_of_a_task_with_default_options(kind, how) -> None:
    sup, tt = kind
    f = background_task(TARGETS[tt, how], tt=tt, bind=how == "bound", supervisor=sup)
    record = f()
    fields = record.get(WAIT)
    assert fields["id"] == record.id
    assert fields["name"] == f.name == record.name
    assert (fields["args"], fields["kwargs"]) == ((), {})
    assert (fields["eta"], fields["expires"], fields["retries"]) == (None, None, 0)


def test_context_eta_of_a_countdown(thread_or_process) -> None:
    sup, tt = thread_or_process
    f = background_task(mptasks.current_fields, tt=tt, supervisor=sup)
    before = time.time()
    record = f.apply_async(countdown=0.01)
    after = time.time()
    fields = record.get(WAIT)
    assert fields["eta"] is not None
    assert before + 0.01 <= fields["eta"] <= after + 0.01


def test_context_retries(kind) -> None:
    sup, tt = kind
    record = background_task(
        TARGETS[tt, "fail first"], tt=tt, retries=1, supervisor=sup
    )()
    assert record.get(WAIT) == 1  # the second attempt saw one retry made
    assert record.retries == 1


def test_bound_context_is_a_task_context(supervisor) -> None:
    def bound(ctx):
        return ctx

    ctx = background_task(bound, bind=True, supervisor=supervisor)().get(WAIT)
    assert isinstance(ctx, TaskContext)


def test_no_context_outside_a_task(supervisor) -> None:
    assert current_context() is None
    seen = []
    thread = threading.Thread(target=lambda: seen.append(current_context()))
    thread.start()
    thread.join(WAIT)

    async def not_a_task():
        return current_context()

    seen.append(asyncio.run(not_a_task()))
    assert seen == [None, None]


def test_plain_thread_task_has_a_context(supervisor) -> None:
    record = background_task(mptasks.current_fields, supervisor=supervisor)()
    assert record.get(WAIT)["id"] == record.id


# ----------------------------------------------------------------------
# update_state, state, meta
# ----------------------------------------------------------------------


@pytest.fixture
def state_updates(monkeypatch):
    """A semaphore released each time a record applies an update_state()
    (a process task's crosses the pipe: it is applied later, elsewhere)."""
    applied = threading.Semaphore(0)
    update = TaskInfo._update_state

    def counted(self, state, meta, *attempt):
        result = update(self, state, meta, *attempt)
        applied.release()
        return result

    monkeypatch.setattr(TaskInfo, "_update_state", counted)
    return applied


def test_update_state_read_while_the_task_runs(
    thread_or_process, state_updates, tmp_path
) -> None:
    sup, tt = thread_or_process
    gate = mptasks.ProcessGate(tmp_path / "gate")
    try:
        progress = {"done": 40, "total": 100}
        record = background_task(mptasks.progress_then_wait, tt=tt, supervisor=sup)(
            gate.path, progress
        )
        gate.wait_arrived()
        assert state_updates.acquire(timeout=WAIT)
        # Read by the submitter while the task still runs.
        assert record.status == TASK_STATUS_STARTED
        assert (record.state, record.meta) == ("PROGRESS", progress)
    finally:
        gate.release()
    assert record.get(WAIT) == "done"
    assert record.state == "COMPLETED"
    assert record.meta == progress  # kept after the end


def test_update_state_with_a_user_class_reaches_the_record_first(
    make_supervisor, monkeypatch
) -> None:
    sup = make_supervisor()
    sup.create_mp_pool(processes=1)
    sup.start()
    decoder = sup._mp_pool._decoder
    # Hold the decoder thread until the outcome has come, one way or the
    # other: queued behind the state (decoded in order), or applied at once.
    release = threading.Event()
    decoder.put(lambda: release.wait(WAIT))
    queued = []
    either = threading.Event()
    put = decoder.put

    def counted(job):
        put(job)
        queued.append(job)
        if len(queued) == 2:  # the state, then the outcome
            either.set()

    monkeypatch.setattr(decoder, "put", counted)
    record = background_task(mptasks.progress_then_return, tt=TT_MP, supervisor=sup)(40)
    record.add_done_callback(lambda _: either.set())
    assert either.wait(WAIT)
    release.set()
    assert record.get(WAIT) == 40
    assert record.meta == mptasks.Progress(40)


def test_update_state_none_leaves_a_field(supervisor) -> None:
    asked = threading.Event()
    go_on = threading.Event()

    def steps(ctx):
        ctx.update_state("ONE", {"step": 1})
        ctx.update_state(meta={"step": 2})  # state stays "ONE"
        asked.set()
        assert go_on.wait(WAIT)
        ctx.update_state("TWO")  # meta stays {"step": 2}
        return ctx.id

    record = background_task(steps, bind=True, supervisor=supervisor)()
    assert asked.wait(WAIT)
    assert (record.state, record.meta) == ("ONE", {"step": 2})
    go_on.set()
    assert record.get(WAIT) == record.id
    assert (record.state, record.meta) == ("COMPLETED", {"step": 2})


def test_update_state_checks_state(supervisor) -> None:
    def bad(ctx):
        ctx.update_state(5)

    with pytest.raises(TypeError, match="state"):
        background_task(bad, bind=True, supervisor=supervisor)().get(WAIT)


@pytest.mark.parametrize("options", [{}, {"retries": 1}], ids=["0.7", "extended"])
def test_state_names_of_waiting_tasks(make_supervisor, options) -> None:
    sup = make_supervisor(keep_finished=100)
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    sup.start()
    started = threading.Event()
    release = threading.Event()

    def running():
        started.set()
        return release.wait(WAIT)

    blocker = background_task(running, supervisor=sup, **options)()
    assert started.wait(WAIT)
    queued = background_task(int, supervisor=sup, **options)()
    delayed = background_task(int, countdown=3600, supervisor=sup, **options)()
    assert (blocker.state, queued.state, delayed.state) == (
        "STARTED",
        "QUEUED",
        "DELAYED",
    )
    for record in (blocker, queued, delayed):
        assert not record.ready()
        assert not record.successful() and not record.failed()
    assert delayed.cancel() is True
    release.set()
    assert blocker.get(WAIT) is True and queued.get(WAIT) == 0


@pytest.mark.parametrize(
    "outcome, status, state, successful, failed",
    [
        ("returns", TASK_STATUS_COMPLETED, "COMPLETED", True, False),
        ("task error", TASK_STATUS_ERROR, "ERROR", False, True),
        ("raises", TASK_STATUS_EXCEPTION, "EXCEPTION", False, True),
        ("canceled", TASK_STATUS_CANCELED, "CANCELED", False, False),
    ],
)
def test_state_names_after_the_end(
    thread_or_process, outcome, status, state, successful, failed
) -> None:
    sup, tt = thread_or_process
    target, args, options = {
        "returns": (mptasks.add, (1, 2), {}),
        "task error": (mptasks.raise_task_error, ("no",), {}),
        "raises": (mptasks.fail, ("bad",), {}),
        "canceled": (mptasks.add, (1, 2), {"countdown": 3600}),
    }[outcome]
    sup.log_exceptions = False
    record = background_task(target, tt=tt, supervisor=sup, **options)(*args)
    if outcome == "canceled":
        record.cancel()
    record.wait(WAIT)
    assert (record.status, record.state) == (status, state)
    assert record.ready() is True
    assert (record.successful(), record.failed()) == (successful, failed)


# ----------------------------------------------------------------------
# cancel of a running thread task
# ----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["bound", "current_context, 0.7 options"])
@pytest.mark.parametrize("reason", [None, "user left"])
def test_cancel_running_thread_task_with_check_cancelled(
    supervisor, how, reason
) -> None:
    started = threading.Event()
    asked = threading.Event()
    seen = []

    def work(ctx):
        ctx.check_cancelled()  # not asked yet: nothing happens
        seen.append(ctx.cancel_requested)
        started.set()
        assert asked.wait(WAIT)
        seen.append(ctx.cancel_requested)
        ctx.check_cancelled()
        return "not canceled"

    if how == "bound":
        record = background_task(work, bind=True, supervisor=supervisor)()
    else:
        record = background_task(
            lambda: work(current_context()), supervisor=supervisor
        )()
    assert started.wait(WAIT)
    assert record.cancel_requested is False
    assert record.cancel(reason) is False  # it cannot be stopped from outside
    assert record.status == TASK_STATUS_STARTED
    assert record.cancel_requested is True
    asked.set()
    with pytest.raises(TaskCancelledError):
        record.get(WAIT)
    assert seen == [False, True]
    assert record.status == TASK_STATUS_CANCELED
    assert record.cancel_reason == (reason or "canceled")
    assert record.ready() and not record.failed()


def test_task_cancelled_error_without_a_request_is_an_exception(supervisor) -> None:
    def refuse(ctx):
        raise TaskCancelledError("on its own")

    supervisor.log_exceptions = False
    record = background_task(refuse, bind=True, supervisor=supervisor)()
    with pytest.raises(TaskCancelledError):
        record.get(WAIT)
    assert record.status == TASK_STATUS_EXCEPTION
    assert record.cancel_reason is None


def test_a_task_may_ignore_the_cancel_request(supervisor) -> None:
    started = threading.Event()
    asked = threading.Event()

    def ignore(ctx):
        started.set()
        assert asked.wait(WAIT)
        return ctx.cancel_requested

    record = background_task(ignore, bind=True, supervisor=supervisor)()
    assert started.wait(WAIT)
    assert record.cancel() is False
    asked.set()
    assert record.get(WAIT) is True
    assert record.status == TASK_STATUS_COMPLETED
    assert record.cancel_reason is None
