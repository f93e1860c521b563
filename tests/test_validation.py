"""Bad input gets a clear error at the call site, naming the argument."""

from __future__ import annotations

import datetime
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


# ----------------------------------------------------------------------
# Task options: a bad value is refused where it is given, naming the option
# ----------------------------------------------------------------------

_SOON = datetime.datetime.now(datetime.timezone.utc)
HOOKS = ("on_start", "on_success", "on_error", "on_retry", "after_return")

BAD_OPTIONS = [
    # (option values, error, what the message names)
    ({"max_retries": 3}, TypeError, "max_retries"),  # celery's name, not ours
    ({"timeout": 5}, TypeError, "timeout"),
    ({"priority": 7}, ValueError, "priority"),
    ({"priority": "high"}, ValueError, "priority"),
    ({"priority": True}, ValueError, "priority"),
    ({"tt": 5}, ValueError, "tt"),
    ({"tt": "process"}, ValueError, "tt"),
    ({"name": 5}, TypeError, "name"),
    ({"delay": -1}, ValueError, "delay"),
    ({"delay": math.inf}, ValueError, "delay"),
    ({"delay": "soon"}, TypeError, "delay"),
    ({"countdown": -1}, ValueError, "countdown"),
    ({"countdown": math.nan}, ValueError, "countdown"),
    ({"countdown": "soon"}, TypeError, "countdown"),
    ({"delay": 1, "countdown": 1}, TypeError, "countdown"),
    ({"eta": "tomorrow"}, TypeError, "eta"),
    ({"eta": True}, TypeError, "eta"),
    ({"eta": _SOON.date()}, TypeError, "eta"),
    ({"eta": math.inf}, ValueError, "eta"),
    ({"eta": math.nan}, ValueError, "eta"),
    ({"eta": _SOON, "countdown": 1}, TypeError, "eta"),
    ({"expires": 0}, ValueError, "expires"),
    ({"expires": -5}, ValueError, "expires"),
    ({"expires": math.inf}, ValueError, "expires"),
    ({"expires": "later"}, TypeError, "expires"),
    ({"expires": _SOON.date()}, TypeError, "expires"),
    ({"callback": 5}, TypeError, "callback"),
    *[({hook: 5}, TypeError, hook) for hook in HOOKS],
    *[({hook: "print"}, TypeError, hook) for hook in HOOKS],
    ({"time_limit": 0}, ValueError, "time_limit"),
    ({"time_limit": -1}, ValueError, "time_limit"),
    ({"time_limit": math.inf}, ValueError, "time_limit"),
    ({"time_limit": "1"}, TypeError, "time_limit"),
    ({"time_limit": True}, TypeError, "time_limit"),
    ({"soft_time_limit": 0}, ValueError, "soft_time_limit"),
    ({"soft_time_limit": "1"}, TypeError, "soft_time_limit"),
    ({"soft_time_limit": 2, "time_limit": 1}, ValueError, "soft_time_limit"),
    ({"soft_time_limit": 1, "time_limit": 1}, ValueError, "soft_time_limit"),
    ({"retries": -1}, ValueError, "retries"),
    ({"retries": 1.5}, TypeError, "retries"),
    ({"retries": True}, TypeError, "retries"),
    ({"retries": "3"}, TypeError, "retries"),
    ({"retries": None}, TypeError, "retries"),
    ({"retry_for": ValueError("x")}, TypeError, "retry_for"),
    ({"retry_for": int}, TypeError, "retry_for"),
    ({"retry_for": "ValueError"}, TypeError, "retry_for"),
    ({"retry_for": (ValueError, 5)}, TypeError, "retry_for"),
    ({"retry_delay": -1}, ValueError, "retry_delay"),
    ({"retry_delay": math.inf}, ValueError, "retry_delay"),
    ({"retry_delay": "1"}, TypeError, "retry_delay"),
    ({"retry_backoff": 0}, ValueError, "retry_backoff"),
    ({"retry_backoff": -2}, ValueError, "retry_backoff"),
    ({"retry_backoff": "yes"}, TypeError, "retry_backoff"),
    ({"retry_backoff": None}, TypeError, "retry_backoff"),
    ({"retry_backoff_max": 0}, ValueError, "retry_backoff_max"),
    ({"retry_backoff_max": math.inf}, ValueError, "retry_backoff_max"),
    ({"retry_backoff_max": None}, TypeError, "retry_backoff_max"),
    ({"retry_backoff_max": "600"}, TypeError, "retry_backoff_max"),
    ({"retry_jitter": 1}, TypeError, "retry_jitter"),
    ({"retry_jitter": "yes"}, TypeError, "retry_jitter"),
    ({"retry_jitter": None}, TypeError, "retry_jitter"),
    ({"bind": 1}, TypeError, "bind"),
    ({"bind": "yes"}, TypeError, "bind"),
    ({"bind": None}, TypeError, "bind"),
    ({"depends_on": 5}, TypeError, "depends_on"),
    ({"depends_on": [None]}, TypeError, "depends_on"),
    ({"depends_on": [object()]}, TypeError, "depends_on"),
    ({"depends_on": ["a-task-id", 5]}, TypeError, "depends_on"),
    ({"loop": 42}, TypeError, "loop"),
    ({"supervisor": "main"}, TypeError, "supervisor"),
    ({"supervisor": 5}, TypeError, "supervisor"),
]


def _option_ids(case):
    return ",".join(f"{k}={v!r}" for k, v in case[0].items())


@pytest.mark.parametrize(
    "options, error, named", BAD_OPTIONS, ids=[_option_ids(c) for c in BAD_OPTIONS]
)
def test_bad_option_at_decoration(options, error, named) -> None:
    with pytest.raises(error, match=rf"\b{named}\b"):
        background_task(int, **options)
    with pytest.raises(error, match=rf"\b{named}\b"):
        background_task(**options)


@pytest.mark.parametrize(
    "options, error, named", BAD_OPTIONS, ids=[_option_ids(c) for c in BAD_OPTIONS]
)
def test_bad_option_at_the_call(supervisor, options, error, named) -> None:
    f = background_task(int, supervisor=supervisor)
    with pytest.raises(error, match=rf"\b{named}\b"):
        f.apply_async(**options)
    with pytest.raises(error, match=rf"\b{named}\b"):
        supervisor.submit(int, **options)
    # Nothing was queued, and the function's own options are unchanged.
    info = supervisor.get_info()
    assert (info.delayed, info.completed, info.canceled) == (0, 0, 0)
    assert f.options == background_task(int, supervisor=supervisor).options


def test_bad_option_against_the_decorators(supervisor) -> None:
    f = background_task(int, time_limit=1, supervisor=supervisor)
    with pytest.raises(ValueError, match="soft_time_limit"):
        f.apply_async(soft_time_limit=2)
    g = background_task(int, soft_time_limit=2, supervisor=supervisor)
    with pytest.raises(ValueError, match="soft_time_limit"):
        g.apply_async(time_limit=1)


def test_unknown_dependency_is_refused_at_the_call(supervisor) -> None:
    f = background_task(int, depends_on=["not-a-task"], supervisor=supervisor)
    with pytest.raises(ValueError, match="depends_on"):
        f()
    g = background_task(int, supervisor=supervisor)
    with pytest.raises(ValueError, match="depends_on"):
        g.apply_async(depends_on=["not-a-task"])
    with pytest.raises(ValueError, match="depends_on"):
        supervisor.submit(int, depends_on="not-a-task")


def test_apply_async_checks_its_arguments(supervisor, gate) -> None:
    f = background_task(int, supervisor=supervisor)
    with pytest.raises(TypeError, match="args"):
        f.apply_async(5)
    with pytest.raises(TypeError, match="kwargs"):
        f.apply_async((), [("base", 10)])
    with pytest.raises(TypeError, match="kwargs"):
        f.apply_async((), {1: 10})
    supervisor.put_task(gate.block, task_id="taken")
    gate.wait_started()
    with pytest.raises(ValueError, match="task_id"):
        f.apply_async(task_id="taken")
    gate.release.set()
