"""Bad input gets a clear error at the call site, naming the argument."""

from __future__ import annotations

import math

import pytest

from atasker import TaskSupervisor, background_task, wait_completed


@pytest.mark.parametrize("priority", [1, 150, -5, "high", None, True])
def test_unknown_priority(priority) -> None:
    with pytest.raises(ValueError, match="priority"):
        background_task(int, priority=priority)


@pytest.mark.parametrize("delay", [-1, math.inf, math.nan])
def test_bad_delay_value(delay) -> None:
    with pytest.raises(ValueError, match="delay"):
        background_task(int, delay=delay)


def test_bad_delay_type() -> None:
    with pytest.raises(TypeError, match="delay"):
        background_task(int, delay="soon")


def test_non_callable_target_at_decoration() -> None:
    with pytest.raises(TypeError, match="target"):
        background_task(42)
    with pytest.raises(TypeError, match="target"):
        background_task(priority=100)("not callable")


def test_non_callable_callback() -> None:
    with pytest.raises(TypeError, match="callback"):
        background_task(int, callback=5)


@pytest.mark.parametrize("tt", [3, -1, "thread"])
def test_unknown_task_type(tt) -> None:
    with pytest.raises(ValueError, match="tt"):
        background_task(int, tt=tt)


def test_coroutine_function_takes_no_time_limit() -> None:
    async def coro():
        return 1

    with pytest.raises(ValueError, match="time_limit"):
        background_task(coro, tt=2, time_limit=1)


def test_bad_loop_argument(supervisor) -> None:
    async def coro():
        return 1

    with pytest.raises(TypeError, match="loop"):
        background_task(coro, loop=42, supervisor=supervisor)()


def test_put_task_checks(supervisor) -> None:
    with pytest.raises(TypeError, match="target"):
        supervisor.put_task(None)
    with pytest.raises(ValueError, match="priority"):
        supervisor.put_task(int, priority=7)
    with pytest.raises(ValueError, match="delay"):
        supervisor.put_task(int, delay=-2)


def test_duplicate_task_id(supervisor, gate) -> None:
    supervisor.put_task(gate.block, task_id="same")
    gate.wait_started()
    with pytest.raises(ValueError, match="task_id"):
        supervisor.put_task(int, task_id="same")
    gate.release.set()


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"pool_size": -1}, ValueError),
        ({"pool_size": 1.5}, TypeError),
        ({"reserve_normal": "x"}, TypeError),
        ({"max_size": 0}, ValueError),
        ({"min_size": "all"}, TypeError),
    ],
)
def test_set_thread_pool_checks(kwargs, error) -> None:
    with pytest.raises(error, match=next(iter(kwargs))):
        TaskSupervisor().set_thread_pool(**kwargs)


def test_wait_completed_checks() -> None:
    with pytest.raises(TypeError, match="tasks"):
        wait_completed(5)
    with pytest.raises(TypeError, match="TaskInfo"):
        wait_completed([5])
    with pytest.raises(ValueError, match="timeout"):
        wait_completed([], timeout=-1)


def test_stop_wait_check(make_supervisor) -> None:
    sup = make_supervisor()
    sup.start()
    with pytest.raises(ValueError, match="wait"):
        sup.stop(wait=-3)
