"""depends_on: a task waits, DELAYED and holding no slot, for other tasks."""

from __future__ import annotations

import threading

import mptasks
import pytest
from conftest import WAIT, Gate, started

from atasker import (
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TASK_STATUS_DELAYED,
    TT_MP,
    TT_THREAD,
    TaskCancelledError,
    background_task,
)


@pytest.fixture(params=[TT_THREAD, TT_MP], ids=["thread", "process"])
def tt_supervisor(request, make_supervisor):
    """(supervisor, task type): two pool threads, or two worker processes."""
    return started(
        make_supervisor, request.param, threads=2, processes=2
    ), request.param


@pytest.fixture
def process_gate(tmp_path):
    gate = mptasks.ProcessGate(tmp_path / "gate")
    yield gate
    gate.release()


def test_dependant_runs_after_its_dependency(tt_supervisor, process_gate) -> None:
    sup, tt = tt_supervisor
    dependency = background_task(mptasks.wait_at_gate, tt=tt, supervisor=sup)(
        process_gate.path, "first"
    )
    process_gate.wait_arrived()
    dependant = background_task(
        mptasks.add, tt=tt, depends_on=[dependency], supervisor=sup
    )(1, 2)
    assert dependant.status == TASK_STATUS_DELAYED
    assert dependant.state == "DELAYED"
    # It holds no slot: another task takes the second one meanwhile.
    assert background_task(mptasks.add, tt=tt, supervisor=sup)(3, 4).get(WAIT) == 7
    assert dependant.status == TASK_STATUS_DELAYED
    process_gate.release()
    assert dependant.get(WAIT) == 3
    assert dependency.status == TASK_STATUS_COMPLETED


def test_dependency_failure_cancels_the_dependant(tt_supervisor) -> None:
    sup, tt = tt_supervisor
    sup.log_exceptions = False
    dependency = background_task(mptasks.fail, tt=tt, supervisor=sup)("broken")
    dependant = background_task(
        mptasks.add, tt=tt, depends_on=dependency, supervisor=sup
    )(1, 2)
    with pytest.raises(TaskCancelledError):
        dependant.get(WAIT)
    assert dependant.status == TASK_STATUS_CANCELED
    assert dependant.cancel_reason == f"dependency failed: {dependency.id}"
    assert not dependant.is_started()
    assert dependency.failed()


def test_canceled_dependency_cancels_the_dependant(supervisor) -> None:
    dependency = background_task(int, countdown=3600, supervisor=supervisor)()
    dependant = background_task(int, depends_on=[dependency], supervisor=supervisor)()
    assert dependant.status == TASK_STATUS_DELAYED
    assert dependency.cancel() is True
    with pytest.raises(TaskCancelledError):
        dependant.get(WAIT)
    assert dependant.cancel_reason == f"dependency failed: {dependency.id}"


def test_canceling_the_dependant_leaves_the_dependency(supervisor, gate: Gate) -> None:
    dependency = background_task(gate.block, supervisor=supervisor)()
    dependant = background_task(int, depends_on=[dependency], supervisor=supervisor)()
    assert dependant.cancel() is True
    assert dependant.cancel_reason == "canceled"
    gate.release.set()
    assert dependency.get(WAIT) == "released"
    assert dependant.status == TASK_STATUS_CANCELED and not dependant.is_started()


def test_chain_of_three(tt_supervisor, process_gate, tmp_path) -> None:
    sup, tt = tt_supervisor
    log = str(tmp_path / "order.txt")
    first = background_task(mptasks.wait_at_gate, tt=tt, supervisor=sup)(
        process_gate.path, "first"
    )
    second = background_task(mptasks.record, tt=tt, depends_on=[first], supervisor=sup)(
        log, "second"
    )
    third = background_task(
        mptasks.record, tt=tt, depends_on=[second.id], supervisor=sup
    )(log, "third")
    process_gate.wait_arrived()
    assert (second.status, third.status) == (TASK_STATUS_DELAYED,) * 2
    process_gate.release()
    assert [first.get(WAIT), second.get(WAIT), third.get(WAIT)] == [
        "first",
        "second",
        "third",
    ]
    # Two slots, yet the third ran only after the second had finished.
    with open(log) as f:
        assert f.read().split() == ["second", "third"]


def test_a_failure_cancels_the_whole_chain(supervisor) -> None:
    gate = threading.Event()

    def fail():
        assert gate.wait(WAIT)
        raise ValueError("first")

    supervisor.log_exceptions = False
    first = background_task(fail, supervisor=supervisor)()
    second = background_task(int, depends_on=[first], supervisor=supervisor)()
    third = background_task(int, depends_on=[second], supervisor=supervisor)()
    gate.set()
    with pytest.raises(TaskCancelledError):
        third.get(WAIT)
    assert second.cancel_reason == f"dependency failed: {first.id}"
    assert third.cancel_reason == f"dependency failed: {second.id}"


def test_several_dependencies(supervisor) -> None:
    gates = [threading.Event(), threading.Event()]
    gated = [background_task(g.wait, supervisor=supervisor)(WAIT) for g in gates]
    delayed = background_task(int, countdown=0.01, supervisor=supervisor)()
    dependant = background_task(
        int, depends_on=[*gated, delayed.id], supervisor=supervisor
    )("7")
    assert delayed.get(WAIT) == 0
    for gate, record in zip(gates, gated):
        assert dependant.status == TASK_STATUS_DELAYED
        gate.set()
        assert record.get(WAIT) is True
    assert dependant.get(WAIT) == 7


def test_one_failure_among_several(supervisor) -> None:
    supervisor.log_exceptions = False
    gate = threading.Event()
    slow = background_task(gate.wait, supervisor=supervisor)(WAIT)

    def fail():
        raise KeyError("k")

    failing = background_task(fail, supervisor=supervisor)()
    dependant = background_task(
        int, depends_on=[slow, failing], supervisor=supervisor
    )()
    # Canceled as soon as one fails, before the other completes.
    with pytest.raises(TaskCancelledError):
        dependant.get(WAIT)
    assert dependant.cancel_reason == f"dependency failed: {failing.id}"
    assert slow.status != TASK_STATUS_COMPLETED
    gate.set()
    assert slow.get(WAIT) is True


def test_id_of_a_running_task(supervisor, gate: Gate) -> None:
    running = background_task(gate.block, supervisor=supervisor)()
    gate.wait_started()
    dependant = background_task(int, depends_on=running.id, supervisor=supervisor)("5")
    assert dependant.status == TASK_STATUS_DELAYED
    gate.release.set()
    assert dependant.get(WAIT) == 5


def test_unknown_id_is_refused_at_the_call(supervisor) -> None:
    f = background_task(int, supervisor=supervisor)
    with pytest.raises(ValueError, match="depends_on"):
        f.apply_async(depends_on=["no-such-task"])
    g = background_task(int, depends_on=["no-such-task"], supervisor=supervisor)
    with pytest.raises(ValueError, match="depends_on"):
        g()
    info = supervisor.get_info()
    assert (info.delayed, info.completed, info.canceled) == (0, 0, 0)


def test_finished_id_not_kept_is_refused(make_supervisor) -> None:
    sup = make_supervisor(keep_finished=0)
    sup.start()
    done = background_task(abs, supervisor=sup)(-1)
    assert done.get(WAIT) == 1
    with pytest.raises(ValueError, match="keep_finished"):
        background_task(abs, depends_on=[done.id], supervisor=sup)(-2)
    # The record itself is always known.
    assert background_task(abs, depends_on=[done], supervisor=sup)(-3).get(WAIT) == 3


def test_finished_id_kept_is_accepted(make_supervisor) -> None:
    sup = make_supervisor(keep_finished=10)
    sup.start()
    done = background_task(abs, supervisor=sup)(-1)
    assert done.get(WAIT) == 1
    dependant = background_task(abs, depends_on=[done.id], supervisor=sup)(-2)
    assert dependant.get(WAIT) == 2


def test_dependants_waiting_at_stop_are_canceled(make_supervisor, gate: Gate) -> None:
    sup = make_supervisor(keep_finished=10)
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    sup.start()
    dependency = background_task(gate.block, supervisor=sup)()
    gate.wait_started()
    dependants = [
        background_task(int, depends_on=[dependency], supervisor=sup)(),
        background_task(int, depends_on=[dependency], countdown=3600, supervisor=sup)(),
    ]
    stopper = threading.Thread(target=sup.stop, kwargs={"wait": WAIT})
    stopper.start()
    for dependant in dependants:
        with pytest.raises(TaskCancelledError):
            dependant.get(WAIT)
        assert dependant.cancel_reason == "stopped"
    gate.release.set()
    stopper.join(WAIT)
    assert not stopper.is_alive()
    assert dependency.status == TASK_STATUS_COMPLETED
    assert all(not d.is_started() for d in dependants)
