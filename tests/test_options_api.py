"""The task function object: what ``@background_task(**options)`` returns."""

from __future__ import annotations

import os
import pickle
import textwrap
import threading
import time

import mptasks
import pytest
from conftest import WAIT, Gate, run_script, started

from atasker import (
    TASK_HIGH,
    TASK_LOW,
    TASK_NORMAL,
    TASK_STATUS_COMPLETED,
    TASK_STATUS_DELAYED,
    TASK_STATUS_QUEUED,
    TT_MP,
    TT_THREAD,
    TaskFunction,
    background_task,
)


def where(a, b=0):
    return threading.current_thread(), a + b


@pytest.fixture
def single(make_supervisor):
    """A started supervisor with one pool thread."""
    return started(make_supervisor, threads=1)


def test_decorator_makes_a_task_function(supervisor) -> None:
    @background_task(priority=TASK_HIGH, supervisor=supervisor)
    def add(a, b):
        return a + b

    assert isinstance(add, TaskFunction)
    assert add.name == f"{__name__}.test_decorator_makes_a_task_function.<locals>.add"
    assert add.__name__ == "add"  # it wraps the function
    called = add(1, 2)
    delayed = add.delay(3, b=4)
    assert (called.get(WAIT), delayed.get(WAIT)) == (3, 7)
    for record in (called, delayed):
        assert (record.name, record.priority) == (add.name, TASK_HIGH)
    assert called.id != delayed.id


def test_options_are_a_read_only_mapping(supervisor) -> None:
    f = background_task(abs, name="jobs.abs", retries=2, supervisor=supervisor)
    assert f.name == "jobs.abs"
    assert f.options["name"] == "jobs.abs"
    assert f.options["retries"] == 2
    assert f.options["priority"] == TASK_NORMAL
    assert f.options["supervisor"] is supervisor
    with pytest.raises(TypeError):
        f.options["retries"] = 5  # type: ignore[index]
    with pytest.raises(AttributeError):
        f.options = {}  # type: ignore[misc]
    assert f.options["retries"] == 2


def test_run_calls_the_function_in_the_caller(supervisor) -> None:
    f = background_task(where, supervisor=supervisor)
    assert f.run(1, b=2) == (threading.current_thread(), 3)
    assert supervisor.get_info().completed == 0  # no task was made


def test_apply_async_overrides_options_for_one_call(single, gate: Gate) -> None:
    f = background_task(
        gate.block, priority=TASK_HIGH, name="jobs.block", supervisor=single
    )
    before = dict(f.options)
    blocker = f()
    gate.wait_started()
    other = f.apply_async((1,), {"k": 2}, task_id="mine", priority=TASK_LOW, name="x")
    later = f.apply_async(countdown=3600)
    plain = f()
    assert (other.id, other.priority, other.name) == ("mine", TASK_LOW, "x")
    assert (other.args, dict(other.kwargs)) == ((1,), {"k": 2})
    assert other.status == TASK_STATUS_QUEUED
    assert later.status == TASK_STATUS_DELAYED
    # The next plain call has the decorator's options again.
    assert (plain.priority, plain.name, plain.status) == (
        TASK_HIGH,
        "jobs.block",
        TASK_STATUS_QUEUED,
    )
    assert dict(f.options) == before
    assert later.cancel() is True
    gate.release.set()
    assert [t.get(WAIT) for t in (blocker, other, plain)] == ["released"] * 3


def test_apply_async_takes_a_list_and_no_kwargs(supervisor) -> None:
    f = background_task(where, supervisor=supervisor)
    assert f.apply_async([1, 2]).get(WAIT)[1] == 3
    assert f.apply_async(kwargs={"a": 5}).get(WAIT)[1] == 5
    assert background_task(int, supervisor=supervisor).apply_async().get(WAIT) == 0


@pytest.mark.parametrize("when", ["delay", "countdown", "eta"])
def test_a_per_call_time_replaces_the_decorators(single, when) -> None:
    f = background_task(where, delay=3600, supervisor=single)
    now = time.time()
    given = {"delay": 0, "countdown": 0, "eta": now - 1}[when]
    record = f.apply_async((1,), **{when: given})
    assert record.get(WAIT)[1] == 1
    # The decorator's delay is unchanged, and was not added to the call's.
    assert f.options["delay"] == 3600
    delayed = f(2)
    assert delayed.status == TASK_STATUS_DELAYED
    assert delayed.cancel() is True


def test_a_per_call_delay_replaces_the_decorators_eta(single) -> None:
    f = background_task(where, eta=time.time() + 3600, supervisor=single)
    assert f.apply_async((1,), countdown=0).get(WAIT)[1] == 1
    later = f.apply_async((1,), delay=7200)
    assert later.status == TASK_STATUS_DELAYED
    # Its own time, not the decorator's.
    assert later.delay == pytest.approx(7200, abs=1)
    assert later.cancel() is True


def test_supervisor_submit_takes_options(supervisor) -> None:
    record = supervisor.submit(
        where, (1,), {"b": 2}, priority=TASK_LOW, name="jobs.where", task_id="s1"
    )
    assert record.get(WAIT)[1] == 3
    assert (record.id, record.name, record.priority) == ("s1", "jobs.where", TASK_LOW)


def test_supervisor_submit_takes_a_task_function(supervisor) -> None:
    f = background_task(
        where, priority=TASK_HIGH, name="jobs.where", supervisor=supervisor
    )
    record = supervisor.submit(f, (1,), {"b": 2}, priority=TASK_LOW)
    # The function runs once (not a second submit), with f's options under
    # the call's.
    _thread, total = record.get(WAIT)
    assert total == 3
    assert (record.name, record.priority) == ("jobs.where", TASK_LOW)
    assert f.options["priority"] == TASK_HIGH


def test_module_level_task_function_runs_in_a_process(make_supervisor) -> None:
    sup = make_supervisor()
    sup.create_mp_pool(processes=1)
    sup.start()
    f = mptasks.pid_and_sum
    assert f.options["tt"] == TT_MP
    assert pickle.loads(pickle.dumps(f)) is f  # by reference
    record = f.apply_async((1, 2), supervisor=sup)
    pid, total = record.get(WAIT)
    assert total == 3
    assert pid != os.getpid() and pid in sup.get_info().mp_pids
    assert record.tt == TT_MP and record.status == TASK_STATUS_COMPLETED
    assert record.name == "mptasks.pid_and_sum"
    # Its task type too is an option a call may override.
    here = f.apply_async((3, 4), tt=TT_THREAD, supervisor=sup)
    assert here.get(WAIT) == (os.getpid(), 7)
    assert f.apply_async((5, 6), supervisor=sup).get(WAIT)[0] != os.getpid()


def test_task_function_binds_like_a_method(supervisor) -> None:
    class Account:
        def __init__(self, balance):
            self.balance = balance

        @background_task(supervisor=supervisor)
        def deposit(self, amount):
            self.balance += amount
            return self.balance

    account = Account(10)
    assert isinstance(Account.deposit, TaskFunction)
    assert account.deposit(5).get(WAIT) == 15
    assert Account.deposit(account, 1).get(WAIT) == 16
    assert Account.deposit.run(account, 4) == 20
    # Each way to call it gets the instance first.
    assert account.deposit.delay(5).get(WAIT) == 25
    assert account.deposit.apply_async((1,)).get(WAIT) == 26
    assert account.deposit.run(4) == 30


def test_atasker_07_calling_styles(supervisor) -> None:
    @background_task
    def bare(x):
        return x * 2

    assert isinstance(bare, TaskFunction)
    assert bare.options["supervisor"] is None  # the default supervisor
    assert bare.apply_async((4,), supervisor=supervisor).get(WAIT) == 8
    direct = background_task(abs, priority=TASK_HIGH, supervisor=supervisor)(-3)
    assert (direct.get(WAIT), direct.priority) == (3, TASK_HIGH)


def test_atasker_07_calling_styles_on_the_default_supervisor() -> None:
    script = textwrap.dedent(
        """
        from atasker import TASK_HIGH, background_task, task_supervisor

        @background_task
        def bare(x):
            return x * 2

        @background_task()
        def empty(x):
            return x * 3

        @background_task(priority=TASK_HIGH)
        def high(x):
            return x * 4

        task_supervisor.start()
        direct = background_task(abs, priority=TASK_HIGH)(-5)
        print(bare(1).get(10), empty(1).get(10), high(1).get(10), direct.get(10))
        print(direct.priority == TASK_HIGH)
        task_supervisor.stop()
        """
    )
    assert run_script(script) == ["2", "3", "4", "5", "True"]


def test_a_task_function_decorated_again_runs_its_function_once(supervisor) -> None:
    @background_task(priority=TASK_LOW, supervisor=supervisor)
    def plus_one(x):
        return x + 1

    again = background_task(plus_one, name="jobs.again")
    record = again(1)
    assert record.get(WAIT) == 2
    assert (record.name, record.priority) == ("jobs.again", TASK_LOW)
