"""Aloops, coroutine tasks, awaiting records, async jobs."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import mptasks
import pytest
from conftest import WAIT, supervisor_threads

from atasker import (
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TASK_STATUS_EXCEPTION,
    TT_COROUTINE,
    TT_MP,
    ALoop,
    background_task,
    co_apply,
    wait_completed,
)


async def triple(x):
    await asyncio.sleep(0)
    return x * 3, threading.current_thread().name


async def fail_later(message):
    await asyncio.sleep(0)
    raise KeyError(message)


@pytest.fixture
def aloop_supervisor(supervisor):
    supervisor.create_aloop("main", default=True)
    return supervisor


def test_coroutine_task_on_default_and_named_aloop(aloop_supervisor) -> None:
    sup = aloop_supervisor
    sup.create_aloop("other")
    task = background_task(triple, supervisor=sup)(1)
    assert task.tt == TT_COROUTINE
    assert task.get(WAIT) == (3, f"supervisor_{sup.id}_aloop_main")
    other = background_task(triple, loop="other", supervisor=sup)(2)
    assert other.get(WAIT) == (6, f"supervisor_{sup.id}_aloop_other")
    by_object = background_task(triple, loop=sup.get_aloop("other"), supervisor=sup)(3)
    assert by_object.get(WAIT)[1].endswith("_aloop_other")
    assert task.status == TASK_STATUS_COMPLETED
    assert task.time_queued <= task.time_started <= task.time_completed


def test_coroutine_task_on_a_plain_asyncio_loop(aloop_supervisor) -> None:
    loop = aloop_supervisor.get_aloop("main").get_loop()
    task = background_task(triple, loop=loop, supervisor=aloop_supervisor)(4)
    assert task.get(WAIT)[0] == 12


def test_delayed_coroutine_task(aloop_supervisor) -> None:
    task = background_task(triple, delay=0.05, supervisor=aloop_supervisor)(5)
    assert task.get(WAIT)[0] == 15


def test_run_and_its_refusal_from_the_loop_thread(aloop_supervisor) -> None:
    aloop = aloop_supervisor.get_aloop()
    assert isinstance(aloop, ALoop)
    assert aloop.run(triple(2))[0] == 6

    async def nested():
        coro = triple(1)
        try:
            aloop.run(coro)
        except RuntimeError as exc:
            return str(exc)

    assert "own thread" in aloop.run(nested()) or "would wait" in aloop.run(nested())


def test_aloop_background_task(aloop_supervisor) -> None:
    aloop = aloop_supervisor.get_aloop()
    task = aloop.background_task(triple(7))
    assert task.get(WAIT)[0] == 21


def test_no_loop_is_a_clear_error(supervisor) -> None:
    with pytest.raises(RuntimeError, match="create_aloop"):
        background_task(triple, supervisor=supervisor)(1)
    with pytest.raises(ValueError, match="no aloop named"):
        background_task(triple, loop="missing", supervisor=supervisor)(1)
    assert supervisor.get_tasks() == {}


def test_aloop_names(supervisor) -> None:
    supervisor.create_aloop("a", start=False)
    with pytest.raises(ValueError, match="already exists"):
        supervisor.create_aloop("a")
    with pytest.raises(ValueError, match="__supervisor__"):
        supervisor.create_aloop("__supervisor__")
    assert supervisor.get_aloop("a").active is False
    supervisor.start_aloop("a")
    assert supervisor.get_aloop("a").active
    supervisor.set_default_aloop("a")
    assert supervisor.default_aloop is supervisor.get_aloop("a")
    assert set(supervisor.get_info().aloops) == {"a"}
    supervisor.stop_aloop("a")
    assert not supervisor.get_aloop("a").active


def test_exception_propagates(aloop_supervisor) -> None:
    task = background_task(fail_later, supervisor=aloop_supervisor)("k")
    with pytest.raises(KeyError):
        wait_completed(task, timeout=WAIT)
    assert task.status == TASK_STATUS_EXCEPTION
    assert "fail_later" in task.traceback


def test_cancel_coroutine_task(aloop_supervisor) -> None:
    started = threading.Event()

    async def forever():
        started.set()
        await asyncio.sleep(3600)

    task = background_task(forever, supervisor=aloop_supervisor)()
    assert started.wait(WAIT)
    assert task.cancel() is True
    assert task.wait(WAIT)
    assert task.status == TASK_STATUS_CANCELED


def test_await_thread_and_process_records(make_supervisor) -> None:
    sup = make_supervisor()
    sup.create_mp_pool(processes=1)
    sup.start()

    async def main():
        thread_result = await background_task(abs, supervisor=sup)(-2)
        process_result = await background_task(mptasks.add, tt=TT_MP, supervisor=sup)(
            1, 2
        )
        applied = await co_apply(abs, args=(-5,), supervisor=sup)
        with pytest.raises(ValueError, match="remote"):
            await background_task(mptasks.fail, tt=TT_MP, supervisor=sup)("remote")
        return thread_result, process_result, applied

    assert asyncio.run(main()) == (2, 3, 5)


def test_jobs_run_and_cancel(aloop_supervisor) -> None:
    sup = aloop_supervisor
    sup.create_async_job_scheduler("default", aloop="main", default=True)
    counts = {"async": 0, "sync": 0}

    async def tick_async():
        counts["async"] += 1

    def tick_sync():
        counts["sync"] += 1

    job_async = sup.create_async_job(target=tick_async, interval=0.01)
    job_sync = sup.create_async_job(target=tick_sync, interval=0.01)
    time.sleep(0.3)  # the measured window, not a synchronisation
    sup.cancel_async_job(job=job_sync)
    stopped_at = counts["sync"]
    # Both ran many times (about 30 each; a loaded 2-core machine does fewer).
    assert counts["async"] >= 8 and stopped_at >= 8
    done = threading.Event()
    sup.create_async_job(target=done.set, interval=0.01, delay_before=0.05)
    assert done.wait(WAIT)
    assert counts["sync"] <= stopped_at + 1  # at most a run already under way
    assert job_async.runs >= 8


def test_overrunning_job_skips_missed_ticks(aloop_supervisor) -> None:
    sup = aloop_supervisor
    scheduler = sup.create_async_job_scheduler("s", aloop="main", start=False)
    runs = []  # (the tick a run took, when it started)
    enough = threading.Event()

    async def slow():
        runs.append((job._next, asyncio.get_running_loop().time()))
        if len(runs) == 6:
            enough.set()
        await asyncio.sleep(0.025)

    job = sup.create_async_job(scheduler, target=slow, interval=0.01)
    scheduler.start()  # after ``job`` is bound: the first run reads it
    assert enough.wait(WAIT)
    first = runs[:6]
    ticks = [tick for tick, _ in first]
    # Each 25 ms run misses the next two 10 ms ticks; the next run takes the
    # first tick of the grid still ahead (3 on, more on a loaded machine),
    # never a missed one to catch up. Checked on the grid, not on start
    # times: a start a loaded loop delays would shorten the gap that follows.
    steps = [round((b - a) / 0.01, 6) for a, b in zip(ticks, ticks[1:])]
    assert all(step >= 3 and step == int(step) for step in steps), steps
    # No run starts before its tick (asyncio may fire a timer up to its clock
    # resolution early).
    early = time.get_clock_info("monotonic").resolution
    assert all(start >= tick - early for tick, start in first), first


def test_failing_job_keeps_its_schedule(aloop_supervisor, caplog) -> None:
    sup = aloop_supervisor
    sup.create_async_job_scheduler("s", aloop="main")
    runs = []
    again = threading.Event()

    async def flaky():
        runs.append(1)
        if len(runs) == 3:
            again.set()
        raise RuntimeError("job broke")

    with caplog.at_level(logging.ERROR, logger="atasker"):
        sup.create_async_job("s", target=flaky, interval=0.01)
        assert again.wait(WAIT)
    assert "job broke" in caplog.text


def test_stop_ends_every_aloop_without_pending_tasks(make_supervisor, caplog) -> None:
    sup = make_supervisor()
    sup.start()
    sup.create_aloop("a", default=True)
    sup.create_aloop("b")
    sup.create_async_job_scheduler("s", aloop="b")
    sup.create_async_job("s", target=asyncio.sleep, args=(0,), interval=0.01)
    started = threading.Event()

    async def forever():
        started.set()
        await asyncio.sleep(3600)

    long = background_task(forever, supervisor=sup)()
    assert started.wait(WAIT)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        sup.stop(wait=0.2)
    assert long.status == TASK_STATUS_CANCELED
    assert not supervisor_threads(sup.id)
    assert not [r for r in caplog.records if r.name == "asyncio"]


def test_stop_waits_for_coroutine_tasks(make_supervisor) -> None:
    sup = make_supervisor()
    sup.start()
    sup.create_aloop("a", default=True)

    async def short():
        await asyncio.sleep(0.05)
        return "done"

    task = background_task(short, supervisor=sup)()
    sup.stop()
    assert task.result == "done"


def test_a_running_coroutine_task_canceled_by_the_stop_says_stopped(
    aloop_supervisor,
) -> None:
    # As a thread or process task the stop cancels: "canceled" would say
    # cancel() was called.
    started = threading.Event()

    async def forever():
        started.set()
        await asyncio.sleep(3600)

    task = background_task(forever, supervisor=aloop_supervisor)()
    canceled = background_task(forever, supervisor=aloop_supervisor)()
    assert started.wait(WAIT)
    assert canceled.cancel("mine") is True
    aloop_supervisor.stop(wait=WAIT, cancel_tasks=True)
    assert task.wait(WAIT)
    assert (task.status, task.cancel_reason) == (TASK_STATUS_CANCELED, "stopped")
    assert (canceled.status, canceled.cancel_reason) == (TASK_STATUS_CANCELED, "mine")
