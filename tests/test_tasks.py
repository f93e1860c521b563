"""The task record: outcome, cancel, waiting, callbacks, await, context."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading

import pytest
from conftest import WAIT, Gate

from atasker import (
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TASK_STATUS_DELAYED,
    TASK_STATUS_ERROR,
    TASK_STATUS_EXCEPTION,
    TASK_STATUS_QUEUED,
    TASK_STATUS_STARTED,
    TaskCancelledError,
    TaskError,
    background_task,
    wait_completed,
)


def test_result_and_fields(supervisor) -> None:
    @background_task(supervisor=supervisor, name="jobs.add")
    def add(a, b):
        return a + b

    gate = threading.Event()
    blocked = [background_task(gate.wait, supervisor=supervisor)(WAIT) for _ in "1234"]
    task = add(1, b=2)  # queued behind the four blockers: the pool is full
    # What to run is on the record until it is final...
    assert (task.target.__name__, task.args, task.kwargs) == ("add", (1,), {"b": 2})
    gate.set()
    assert wait_completed(blocked, timeout=WAIT) == [True] * 4
    assert wait_completed(task, timeout=WAIT) == 3
    assert task.status == TASK_STATUS_COMPLETED
    # ... then dropped: a record kept for look-up keeps only its outcome.
    assert (task.name, task.target, task.args, dict(task.kwargs), task.result) == (
        "jobs.add",
        None,
        (),
        {},
        3,
    )
    assert task.time_queued <= task.time_started <= task.time_completed
    assert task.is_started() and task.is_completed() and task.done()
    assert supervisor.get_task(task.id) is task


def test_default_name_is_module_and_qualname(supervisor) -> None:
    task = background_task(len, supervisor=supervisor)("abc")
    assert task.get(WAIT) == 3
    assert task.name == "builtins.len"


def test_exception_kept_raised_and_logged(supervisor, caplog) -> None:
    def fail():
        raise ValueError("broken")

    logged = threading.Event()
    supervisor._task_failed = _then_set(supervisor._task_failed, logged)
    with caplog.at_level(logging.ERROR, logger="atasker"):
        task = background_task(fail, supervisor=supervisor)()
        with pytest.raises(ValueError, match="broken"):
            wait_completed(task, timeout=WAIT)
        # The failure is logged by the worker just after waiters are woken.
        assert logged.wait(WAIT)
    assert task.status == TASK_STATUS_EXCEPTION
    assert isinstance(task.exception, ValueError)
    assert "in fail" in task.traceback and "ValueError: broken" in task.traceback
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1 and failures[0].exc_info[1] is task.exception


def _then_set(function, event):
    def wrapper(*args):
        function(*args)
        event.set()

    return wrapper


def test_logging_can_be_turned_off(supervisor, caplog) -> None:
    supervisor.log_exceptions = False

    def fail():
        raise ValueError("quiet")

    reported = threading.Event()
    supervisor._task_failed = _then_set(supervisor._task_failed, reported)
    with caplog.at_level(logging.ERROR, logger="atasker"):
        task = background_task(fail, supervisor=supervisor)()
        assert reported.wait(WAIT)
    assert task.status == TASK_STATUS_EXCEPTION
    assert not caplog.records


def test_task_error_is_status_error(supervisor) -> None:
    def refuse():
        raise TaskError("not today")

    task = background_task(refuse, supervisor=supervisor)()
    with pytest.raises(TaskError):
        task.get(WAIT)
    assert task.status == TASK_STATUS_ERROR


def test_base_exception_is_caught_and_worker_survives(supervisor) -> None:
    def leave():
        raise SystemExit(3)

    task = background_task(leave, supervisor=supervisor)()
    with pytest.raises(SystemExit):
        task.get(WAIT)
    assert background_task(int, supervisor=supervisor)("5").get(WAIT) == 5


def test_cancel_queued(make_supervisor, gate: Gate) -> None:
    sup = make_supervisor()
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    sup.start()
    blocker = background_task(gate.block, supervisor=sup)()
    gate.wait_started()
    queued = background_task(gate.block, supervisor=sup)()
    assert queued.status == TASK_STATUS_QUEUED
    assert queued.cancel() is True
    assert queued.status == TASK_STATUS_CANCELED
    assert sup.get_info().queued[queued.priority] == 0
    with pytest.raises(TaskCancelledError):
        wait_completed(queued, timeout=WAIT)
    assert queued.cancel() is True  # idempotent
    gate.release.set()
    assert blocker.get(WAIT) == "released"
    assert blocker.cancel() is False
    assert not queued.is_started()


def test_cancel_running_returns_false(supervisor, gate: Gate) -> None:
    task = background_task(gate.block, supervisor=supervisor)()
    gate.wait_started()
    assert task.status == TASK_STATUS_STARTED
    assert task.cancel() is False
    gate.release.set()
    assert task.get(WAIT) == "released"


def test_cancel_delayed(supervisor) -> None:
    task = background_task(int, delay=3600, supervisor=supervisor)()
    assert task.status == TASK_STATUS_DELAYED
    assert task.cancel() is True
    assert task.status == TASK_STATUS_CANCELED
    assert len(supervisor._timer) == 0


def test_delayed_task_holds_no_slot(make_supervisor, gate: Gate) -> None:
    sup = make_supervisor()
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    sup.start()
    due = threading.Event()
    statuses = []

    def delayed():
        statuses.append(task.status)
        due.set()

    task = background_task(delayed, delay=0.05, supervisor=sup)()
    assert task.status == TASK_STATUS_DELAYED
    # The only slot is free while the delayed task waits.
    immediate = background_task(gate.block, supervisor=sup)()
    gate.wait_started()
    gate.release.set()
    immediate.get(WAIT)
    assert due.wait(WAIT)
    task.get(WAIT)
    assert statuses == [TASK_STATUS_STARTED]
    assert task.time_started - task.time_queued >= 0


def test_delays_run_in_due_order(supervisor) -> None:
    order = []
    tasks = [
        background_task(order.append, delay=delay, supervisor=supervisor)(delay)
        for delay in (0.3, 0.1, 0.2)
    ]
    wait_completed(tasks, timeout=WAIT)
    assert order == [0.1, 0.2, 0.3]


def test_wait_and_get_timeout(supervisor, gate: Gate) -> None:
    task = background_task(gate.block, supervisor=supervisor)()
    gate.wait_started()
    assert task.wait(0.01) is False
    with pytest.raises(TimeoutError):
        task.get(0.01)
    with pytest.raises(TimeoutError):
        wait_completed([task], timeout=0.01)
    gate.release.set()
    assert task.wait(WAIT) is True


def test_wait_completed_list_order_and_first_failure(supervisor) -> None:
    def fail(message):
        raise RuntimeError(message)

    good = [background_task(abs, supervisor=supervisor)(-i) for i in range(5)]
    assert wait_completed(good, timeout=WAIT) == [0, 1, 2, 3, 4]
    assert wait_completed(tuple(good)) == [0, 1, 2, 3, 4]
    bad = [background_task(fail, supervisor=supervisor)(m) for m in ("first", "second")]
    with pytest.raises(RuntimeError, match="first"):
        wait_completed([good[0], *bad], timeout=WAIT)


def test_done_callbacks(supervisor, gate: Gate) -> None:
    seen = []
    called = threading.Event()
    task = background_task(gate.block, supervisor=supervisor)()
    task.add_done_callback(lambda t: (seen.append(("before", t.status)), called.set()))
    gate.release.set()
    # The first callback runs in the worker, after waiters are woken.
    assert called.wait(WAIT)
    task.add_done_callback(lambda t: seen.append(("after", t.status)))
    assert seen == [("before", TASK_STATUS_COMPLETED), ("after", TASK_STATUS_COMPLETED)]


def test_failing_done_callback_is_logged(supervisor, caplog) -> None:
    task = background_task(int, supervisor=supervisor)("1")
    task.wait(WAIT)
    with caplog.at_level(logging.ERROR, logger="atasker"):
        task.add_done_callback(lambda t: 1 / 0)
    assert "done callback" in caplog.text


def test_callback_option_gets_result(supervisor) -> None:
    results = []
    done = threading.Event()

    def on_result(result):
        results.append(result)
        done.set()

    background_task(abs, callback=on_result, supervisor=supervisor)(-7)
    assert done.wait(WAIT)
    assert results == [7]


def test_await_task_from_asyncio(supervisor) -> None:
    def fail():
        raise KeyError("k")

    async def main():
        value = await background_task(abs, supervisor=supervisor)(-3)
        with pytest.raises(KeyError):
            await background_task(fail, supervisor=supervisor)()
        return value

    assert asyncio.run(main()) == 3


def test_cancel_awaiting_coroutine_cancels_queued_task(
    make_supervisor, gate: Gate
) -> None:
    sup = make_supervisor()
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    sup.start()
    background_task(gate.block, supervisor=sup)()
    gate.wait_started()
    queued = background_task(int, supervisor=sup)()

    async def main():
        waiter = asyncio.ensure_future(_await(queued))
        await asyncio.sleep(0)  # one loop turn: the waiter now awaits the record
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    asyncio.run(main())
    assert queued.status == TASK_STATUS_CANCELED


async def _await(task):
    return await task


def test_thread_task_runs_in_copy_of_context(supervisor) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("submitter")

    def read_and_change():
        seen = var.get()
        var.set("task")
        return seen

    task = background_task(read_and_change, supervisor=supervisor)()
    assert task.get(WAIT) == "submitter"
    assert var.get() == "submitter"
