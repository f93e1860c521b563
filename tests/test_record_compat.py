"""atasker 0.7 compatibility of the record and the waits."""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import time

import mptasks
import pytest
from conftest import WAIT, Gate

from atasker import WaitTimeoutError, background_task, co_mp_apply, wait_completed


def test_started_and_completed_events(supervisor, gate: Gate) -> None:
    task = background_task(gate.block, supervisor=supervisor)()
    assert task.started.wait(WAIT)
    assert not task.completed.is_set()
    gate.release.set()
    assert task.completed.wait(WAIT)
    assert task.started.is_set()


def test_events_of_a_canceled_and_a_finished_record(make_supervisor, gate) -> None:
    sup = make_supervisor()
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0, max_size=1)
    sup.start()
    background_task(gate.block, supervisor=sup)()
    gate.wait_started()
    queued = background_task(abs, supervisor=sup)(-1)
    assert queued.cancel()
    assert queued.completed.is_set()
    assert not queued.started.is_set()
    gate.release.set()
    done = background_task(abs, supervisor=sup)(-2)
    assert done.get(WAIT) == 2
    # Created on first access after the fact: already set.
    assert done.started.is_set() and done.completed.is_set()


def test_time_queued_is_the_submit_time_for_delayed_tasks(supervisor) -> None:
    before = time.time()
    task = background_task(abs, delay=0.05, supervisor=supervisor)(-1)
    after = time.time()
    assert task.get(WAIT) == 1
    assert before <= task.time_queued <= after


@pytest.mark.parametrize(
    "error", [WaitTimeoutError, TimeoutError, concurrent.futures.TimeoutError]
)
def test_waits_raise_wait_timeout_error(supervisor, gate: Gate, error) -> None:
    task = background_task(gate.block, supervisor=supervisor)()
    gate.wait_started()
    with pytest.raises(error):
        task.get(0.01)
    with pytest.raises(error):
        wait_completed(task, timeout=0.01)
    with pytest.raises(error):
        wait_completed([task], timeout=0.01)
    assert task.wait(0.01) is False
    gate.release.set()
    assert task.get(WAIT) == "released"


def test_keep_finished_zero(make_supervisor) -> None:
    sup = make_supervisor(keep_finished=0)
    sup.start()
    task = background_task(abs, supervisor=sup)(-1)
    assert task.get(WAIT) == 1
    assert sup.get_task(task.id) is None
    assert sup._registry.finished_count() == 0
    assert sup._registry.completed == 1


def test_co_mp_apply_passes_task_id(make_supervisor) -> None:
    sup = make_supervisor()
    sup.create_mp_pool(processes=1)
    sup.start()

    async def main():
        named = await co_mp_apply(mptasks.with_task_id, (1,), supervisor=sup)
        plain = await co_mp_apply(mptasks.without_task_id, (2,), supervisor=sup)
        return named, plain

    (value, task_id), plain = asyncio.run(asyncio.wait_for(main(), WAIT))
    assert value == 1 and isinstance(task_id, str) and task_id
    assert plain == 2


@pytest.mark.parametrize(
    ("timeout", "error"),
    [("1", TypeError), (-1, ValueError), (math.nan, ValueError), (True, TypeError)],
)
def test_wait_timeouts_checked(supervisor, timeout, error) -> None:
    task = background_task(abs, supervisor=supervisor)(-1)
    task.wait(WAIT)
    for call in (task.get, task.wait, lambda timeout: wait_completed(task, timeout)):
        with pytest.raises(error, match="timeout"):
            call(timeout=timeout)
