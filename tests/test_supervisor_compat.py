"""The supervisor as atasker 0.7 code uses it, and its errors at the call."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import pytest
from conftest import WAIT, Gate

from atasker import (
    TASK_STATUS_CANCELED,
    TT_MP,
    TT_THREAD,
    TaskSupervisor,
    WaitTimeoutError,
    background_task,
)


def test_finished_tasks_are_not_kept_by_default(make_supervisor) -> None:
    sup = make_supervisor()
    sup.start()
    task = background_task(abs, supervisor=sup)(-1)
    assert task.get(WAIT) == 1
    # 0.7's docs: "if task info is None, consider the task is completed"
    assert sup.get_task(task.id) is None
    assert sup.get_info().kept_finished == 0


def test_get_info_takes_07s_arguments(make_supervisor, gate: Gate) -> None:
    sup = make_supervisor(keep_finished=0)
    sup.set_thread_pool(pool_size=3, reserve_normal=2, reserve_high=1)
    sup.start()
    running = background_task(gate.block, supervisor=sup)()
    gate.wait_started()
    assert (sup.thread_pool_size, sup.thread_reserve_normal) == (3, 2)
    assert sup.thread_reserve_high == 1
    info = sup.get_info()
    assert info.thread_tasks == [running.id] and info.tasks == {running.id: running}
    assert (info.thread_pool_size, info.thread_reserve_normal) == (3, 2)
    threads_only = sup.get_info(
        tt=TT_THREAD, aloops=False, schedulers=False, async_job_schedulers=False
    )
    assert threads_only.thread_tasks_count == 1
    assert not hasattr(threads_only, "mp_tasks")
    assert not hasattr(threads_only, "aloops")
    counts = sup.get_info(tt=False)
    assert counts.thread_tasks_count == 1 and not hasattr(counts, "tasks")
    assert sup.get_info(tt=TT_MP).tasks == {}
    assert isinstance(sup.get_schedulers(), dict)
    gate.release.set()


def test_mark_task_completed_takes_tt_and_start_takes_daemon(make_supervisor) -> None:
    sup = make_supervisor()
    sup.start(daemon=True)
    assert sup.mark_task_completed(task_id="unknown", tt=TT_MP) is False


def test_assigning_mp_pool_a_non_pool_is_a_clear_error(make_supervisor) -> None:
    sup = make_supervisor()
    assert sup.mp_pool is None
    with pytest.raises(TypeError, match="mp_pool must be a multiprocessing Pool"):
        sup.mp_pool = object()
    assert sup.mp_pool is None


def test_aloop_is_active_and_run_timeout(make_supervisor) -> None:
    sup = make_supervisor()
    aloop = sup.create_aloop("a07")
    assert aloop.is_active()
    with pytest.raises(concurrent.futures.TimeoutError):
        aloop.run(asyncio.sleep(5), timeout=0.01)
    with pytest.raises(WaitTimeoutError):
        aloop.run(asyncio.sleep(5), timeout=0.01)
    aloop.stop()
    assert not aloop.is_active()


def test_cancel_of_a_running_coroutine_that_swallows_it_ends_canceled(
    make_supervisor,
) -> None:
    sup = make_supervisor()
    sup.create_aloop("co", default=True)
    sup.start()
    started = threading.Event()

    async def stubborn():
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return "swallowed"

    task = background_task(stubborn, supervisor=sup)()
    assert started.wait(WAIT)
    assert task.cancel() is True
    assert task.wait(WAIT)
    assert task.status == TASK_STATUS_CANCELED
    assert background_task(abs, supervisor=sup)(-2).get(WAIT) == 2


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda s: s.put_task(abs, kwargs="ab"), TypeError, "kwargs"),
        (lambda s: s.put_task(abs, args=5), TypeError, "args"),
        (lambda s: s.put_task(abs, args="ab"), TypeError, "args"),
        (lambda s: s.submit(abs, 5, {}), TypeError, "args"),
        (lambda s: s.submit(abs, (), [1]), TypeError, "kwargs"),
        (lambda s: s.submit(abs, (), {1: 2}), TypeError, "kwargs"),
        (lambda s: s.set_thread_pool(min_size=50, max_size=10), ValueError, "min_size"),
        (lambda s: s.stop(wait="x"), TypeError, "wait"),
        (lambda s: s.stop(wait=-1), ValueError, "wait"),
    ],
)
def test_bad_input_is_refused_at_the_call(make_supervisor, call, error, match) -> None:
    sup = make_supervisor()
    sup.start()
    with pytest.raises(error, match=match):
        call(sup)
    assert sup.get_tasks() == {}
    assert background_task(abs, supervisor=sup)(-3).get(WAIT) == 3


def test_bad_exit_wait_is_refused() -> None:
    with pytest.raises(ValueError, match="exit_wait"):
        TaskSupervisor(exit_wait=-1)


def test_a_closed_loop_is_reported_as_closed(make_supervisor) -> None:
    sup = make_supervisor()
    sup.start()
    aloop = sup.create_aloop("closing")
    loop = aloop.get_loop()
    loop.call_soon_threadsafe(loop.stop)  # stopped behind the ALoop's back
    aloop._thread.join(WAIT)
    assert loop.is_closed()

    async def nothing():
        return None

    coro = nothing()
    with pytest.raises(RuntimeError, match="closed"):
        aloop.background_task(coro)
    coro.close()
    assert sup.get_tasks() == {}
    assert background_task(abs, supervisor=sup)(-4).get(WAIT) == 4


def test_a_refused_set_thread_pool_changes_nothing(make_supervisor) -> None:
    sup = make_supervisor()
    sup.set_thread_pool(pool_size=2, reserve_normal=1, reserve_high=1, max_size=8)
    before = (sup.pool_size, sup.reserve_normal, sup.min_size, sup.max_size)
    with pytest.raises(ValueError, match="min_size"):
        sup.set_thread_pool(pool_size=4, min_size=50, max_size=10)
    assert (sup.pool_size, sup.reserve_normal, sup.min_size, sup.max_size) == before
    sup.start()
    assert background_task(abs, supervisor=sup)(-1).get(WAIT) == 1


def test_submit_does_not_change_the_callers_kwargs(make_supervisor) -> None:
    sup = make_supervisor()
    sup.start()
    kwargs = {"b": 2}
    task = sup.submit(lambda a, b, _task_id: (a, b), (1,), kwargs, pass_task_id=True)
    assert task.get(WAIT) == (1, 2)
    assert kwargs == {"b": 2}


def test_stop_aloop_checks_wait(make_supervisor) -> None:
    sup = make_supervisor()
    aloop = sup.create_aloop("checked")
    for bad, error in ((-1, ValueError), (float("nan"), ValueError), ("1", TypeError)):
        with pytest.raises(error, match="wait"):
            aloop.stop(wait=bad)
    assert aloop.is_active()
    aloop.stop(wait=WAIT)
    assert not aloop.is_active()
