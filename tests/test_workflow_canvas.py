"""Workflows (issue 10): signatures, links, chain, group, chord, task names
and signatures as JSON.

The targets are module-level task functions of ``wftasks`` (process tasks
must pickle by reference); each signature is given the test's supervisor
(``s(f, ...)`` below), since the functions' default, the global supervisor,
is not started.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import pickle
import re
import sys
import threading

import mptasks
import pytest
import wftasks
from conftest import WAIT, Gate, started

import atasker
from atasker import (
    TASK_HIGH,
    TASK_LOW,
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TASK_STATUS_DELAYED,
    TASK_STATUS_ERROR,
    TASK_STATUS_EXCEPTION,
    TT_MP,
    TT_THREAD,
    SupervisorNotRunningError,
    TaskCancelledError,
    TaskError,
    UnknownTaskError,
    WaitTimeoutError,
    WorkerLostError,
    background_task,
    chain,
    chord,
    group,
    registered_tasks,
    signature,
)
from atasker import Signature as SignatureClass

# For fault tests: what adds and what fails, as thread and as process tasks.
KINDS = {
    "thread": (wftasks.add, wftasks.fail),
    "process": (wftasks.p_add, wftasks.p_fail),
}

# A failure of each status: (the failing task function, its exception, its
# record's status).
FAILURES = {
    "thread exception": (wftasks.fail, ValueError, TASK_STATUS_EXCEPTION),
    "process exception": (wftasks.p_fail, ValueError, TASK_STATUS_EXCEPTION),
    "thread error": (wftasks.error, TaskError, TASK_STATUS_ERROR),
    "process error": (wftasks.p_error, TaskError, TASK_STATUS_ERROR),
}


@pytest.fixture
def sup(make_supervisor):
    """A started supervisor: 3 pool threads and one worker process."""
    return started(make_supervisor, TT_MP, threads=3, processes=1)


@pytest.fixture
def s(sup):
    """``s(f, *args, **kwargs)``: ``f.s(*args, **kwargs)`` set to run on ``sup``."""

    def make(f, *args, **kwargs):
        return f.s(*args, **kwargs).set(supervisor=sup)

    return make


@pytest.fixture
def si(sup):
    """``si(f, *args, **kwargs)``: ``f.si(*args, **kwargs)`` set to run on ``sup``."""

    def make(f, *args, **kwargs):
        return f.si(*args, **kwargs).set(supervisor=sup)

    return make


def assert_alive(sup):
    """One more thread task and one more process task run on ``sup``: both
    pools still work."""
    assert wftasks.add.apply_async((1, 2), supervisor=sup).get(WAIT) == 3
    assert wftasks.square.apply_async((3,), supervisor=sup).get(WAIT) == 9


def children(record, count):
    """``record.children`` (whole once the record has ended), which holds
    ``count`` records."""
    assert record.wait(WAIT)
    found = record.children
    assert isinstance(found, tuple)
    assert len(found) == count, found
    return found


def lineage(record):
    """``record`` and its ``parent``s, the first first."""
    found = []
    while record is not None:
        found.append(record)
        record = record.parent
    return found[::-1]


# ----------------------------------------------------------------------
# Signatures
# ----------------------------------------------------------------------


def test_s_makes_a_mutable_signature() -> None:
    sig = wftasks.add.s(2, b=3)
    assert isinstance(sig, SignatureClass)
    assert sig.task is wftasks.add
    assert sig.name == wftasks.add.name == "wftasks.add"
    assert sig.args == (2,)
    assert sig.kwargs == {"b": 3}
    assert sig.options == {}
    assert sig.immutable is False


def test_si_makes_an_immutable_signature() -> None:
    sig = wftasks.add.si(2, 3)
    assert (sig.task, sig.args, sig.kwargs, sig.immutable) == (
        wftasks.add,
        (2, 3),
        {},
        True,
    )


def test_signature_function_takes_a_task_function_or_its_name() -> None:
    by_function = signature(wftasks.add, (2,), {"b": 3}, priority=TASK_HIGH)
    by_name = signature("wftasks.add", [2], {"b": 3}, priority=TASK_HIGH)
    for sig in (by_function, by_name):
        assert sig.task is wftasks.add
        assert (sig.args, sig.kwargs) == ((2,), {"b": 3})
        assert sig.options == {"priority": TASK_HIGH}
        assert sig.immutable is False
    assert by_function == by_name
    assert signature(wftasks.add).args == ()
    assert signature(wftasks.add).kwargs == {}
    assert signature(wftasks.add, (1, 2), immutable=True).immutable is True


def test_signature_of_an_unknown_name() -> None:
    with pytest.raises(UnknownTaskError):
        signature("wftasks.no_such_task", (1,))


def test_set_updates_the_signature_in_place(sup) -> None:
    sig = wftasks.add.s(1)
    same = sig.set(priority=TASK_LOW, supervisor=sup)
    assert same is sig
    assert sig.options == {"priority": TASK_LOW, "supervisor": sup}
    sig.set(priority=TASK_HIGH)
    assert sig.options == {"priority": TASK_HIGH, "supervisor": sup}
    # The task function's own options are not the signature's.
    assert wftasks.add.options["priority"] != TASK_HIGH
    assert wftasks.add.options["supervisor"] is None


def test_clone_makes_a_new_signature_with_a_partial_applied() -> None:
    sig = wftasks.collect.s(10, k=1).set(priority=TASK_LOW)
    copy = sig.clone()
    assert copy == sig and copy is not sig
    more = sig.clone((1,), {"j": 2}, priority=TASK_HIGH)
    assert more.args == (1, 10)  # prepended, as apply_async does
    assert more.kwargs == {"k": 1, "j": 2}
    assert more.options == {"priority": TASK_HIGH}
    assert more.immutable is False
    # The original is unchanged, and changing the clone leaves it so.
    more.set(retries=3)
    assert (sig.args, sig.kwargs, sig.options) == (
        (10,),
        {"k": 1},
        {"priority": TASK_LOW},
    )
    assert wftasks.add.si(1).clone().immutable is True


def test_apply_async_prepends_the_calls_args_and_merges(sup) -> None:
    sig = wftasks.collect.s(10, k=1).set(
        priority=TASK_LOW, time_limit=WAIT, supervisor=sup
    )
    record = sig.apply_async((1,), {"k": 2, "j": 3}, priority=TASK_HIGH)
    assert record.get(WAIT) == ((1, 10), {"k": 2, "j": 3})
    # The call's options win; the signature's others apply.
    assert record.priority == TASK_HIGH
    assert record.time_limit == WAIT
    assert record.name == "wftasks.collect"
    # The signature is unchanged.
    assert (sig.args, sig.kwargs) == ((10,), {"k": 1})
    assert sig.options["priority"] == TASK_LOW
    # Without arguments, it runs as it is.
    assert sig.apply_async().get(WAIT) == ((10,), {"k": 1})
    # apply_async(..., supervisor=) is enough for a signature without one.
    plain = wftasks.add.s(10).apply_async((1,), supervisor=sup)
    assert plain.get(WAIT) == 11


def test_apply_async_of_an_immutable_signature_ignores_the_calls_args(sup) -> None:
    sig = wftasks.collect.si(10).set(supervisor=sup)
    assert sig.apply_async((1, 2)).get(WAIT) == ((10,), {})
    assert sig.delay(1, 2).get(WAIT) == ((10,), {})


def test_apply_async_of_a_process_task_signature(sup) -> None:
    record = wftasks.p_collect.s(10, k=1).apply_async((1,), supervisor=sup)
    assert record.get(WAIT) == ((1, 10), 1)
    assert record.tt == TT_MP
    assert wftasks.square.s(4).set(supervisor=sup).delay().get(WAIT) == 16


def test_delay_is_apply_async_with_args_and_kwargs(sup) -> None:
    sig = wftasks.collect.s(10, k=1).set(supervisor=sup)
    assert sig.delay(1, k=2, j=3).get(WAIT) == ((1, 10), {"k": 2, "j": 3})
    assert sig.delay().get(WAIT) == ((10,), {"k": 1})


def test_calling_a_signature_runs_it_here() -> None:
    # No supervisor runs: nothing is submitted.
    assert wftasks.ident.s()() == threading.get_ident()
    assert wftasks.collect.s(10, k=1)(1, j=2) == ((1, 10), {"k": 1, "j": 2})
    assert wftasks.collect.s(10)() == ((10,), {})
    # A process task's function too runs in the caller.
    assert wftasks.square.s(4)() == 16
    with pytest.raises(ValueError, match="here"):
        wftasks.fail.s("here")()


def test_signatures_compare_by_name_args_kwargs_options_immutable() -> None:
    sig = wftasks.add.s(1, b=2)
    assert sig == wftasks.add.s(1, b=2)
    assert sig == signature("wftasks.add", (1,), {"b": 2})
    assert sig != wftasks.add.s(2, b=1)
    assert sig != wftasks.add.s(1, b=3)
    assert sig != wftasks.add.si(1, b=2)
    assert sig != wftasks.add.s(1, b=2).set(priority=TASK_HIGH)
    assert sig != wftasks.p_add.s(1, b=2)
    assert wftasks.add.s(1).set(priority=TASK_HIGH) == wftasks.add.s(1).set(
        priority=TASK_HIGH
    )


def test_repr_shows_the_call() -> None:
    text = repr(wftasks.add.s(2, 3))
    assert "wftasks.add(2, 3" in text
    text = repr(wftasks.collect.s("x", 3).set(priority=TASK_HIGH))
    assert "wftasks.collect('x', 3" in text
    assert f"priority={TASK_HIGH}" in text


@pytest.mark.parametrize(
    "make, option",
    [
        (lambda: signature(wftasks.add, (1,), bogus=1), "bogus"),
        (lambda: signature(wftasks.add, (1,), retries=-1), "retries"),
        (lambda: wftasks.add.s(1).set(bogus=1), "bogus"),
        (lambda: wftasks.add.s(1).set(priority="high"), "priority"),
        (lambda: wftasks.add.s(1).set(time_limit=-5), "time_limit"),
    ],
    ids=[
        "signature unknown",
        "signature bad value",
        "set unknown",
        "set bad type",
        "set bad value",
    ],
)
def test_a_bad_option_is_refused_at_once_by_name(make, option) -> None:
    with pytest.raises((TypeError, ValueError), match=option):
        make()


def test_a_bad_option_leaves_the_signature_as_it_was() -> None:
    sig = wftasks.add.s(1).set(priority=TASK_LOW)
    with pytest.raises((TypeError, ValueError), match="retries"):
        sig.set(retries=-1)
    assert sig.options == {"priority": TASK_LOW}


def test_a_signature_pickles_by_reference_to_its_task_function() -> None:
    sig = wftasks.add.s(1, b=2).set(priority=TASK_HIGH)
    back = pickle.loads(pickle.dumps(sig))
    assert back == sig
    assert back.task is wftasks.add


def test_a_process_task_can_carry_a_signature(sup) -> None:
    record = wftasks.run_signature.apply_async((wftasks.add.s(10), 1), supervisor=sup)
    value, pid = record.get(WAIT)
    assert value == 11
    assert pid != os.getpid()


# ----------------------------------------------------------------------
# Links
# ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_links_run_after_success_with_the_result_prepended(sup, s, kind) -> None:
    add, _fail = KINDS[kind]
    parent = add.apply_async(
        (1, 2),
        link=[s(wftasks.collect, 10), s(wftasks.square)],
        link_error=s(wftasks.on_failure),
        supervisor=sup,
    )
    assert parent.get(WAIT) == 3
    collected, squared = children(parent, 2)  # in the links' order
    assert collected.get(WAIT) == ((3, 10), {})
    assert squared.get(WAIT) == 9
    assert squared.tt == TT_MP
    assert collected.status == squared.status == TASK_STATUS_COMPLETED
    # link_error was not applied.
    assert len(parent.children) == 2


def test_a_link_given_alone_not_in_a_list(sup, s) -> None:
    parent = wftasks.add.apply_async((1, 2), link=s(wftasks.add, 10), supervisor=sup)
    assert parent.get(WAIT) == 3
    (child,) = children(parent, 1)
    assert child.get(WAIT) == 13


def test_links_in_the_decorator_and_in_set(sup, s) -> None:
    @background_task(link=s(wftasks.collect, "decorator"), supervisor=sup)
    def double(x):
        return 2 * x

    parent = double(3)
    assert parent.get(WAIT) == 6
    (child,) = children(parent, 1)
    assert child.get(WAIT) == ((6, "decorator"), {})

    sig = wftasks.p_add.s(1, 2).set(supervisor=sup, link=s(wftasks.square))
    parent = sig.delay()
    assert parent.get(WAIT) == 3
    (child,) = children(parent, 1)
    assert child.get(WAIT) == 9


def test_a_record_without_links_has_no_children(sup) -> None:
    record = wftasks.add.apply_async((1, 2), supervisor=sup)
    assert record.get(WAIT) == 3
    assert record.children == ()


def test_an_immutable_link_does_not_get_the_result(sup, si) -> None:
    parent = wftasks.add.apply_async(
        (1, 2), link=si(wftasks.collect, "alone"), supervisor=sup
    )
    assert parent.get(WAIT) == 3
    (child,) = children(parent, 1)
    assert child.get(WAIT) == (("alone",), {})


@pytest.mark.parametrize("failure", list(FAILURES))
def test_link_error_gets_the_failed_record(sup, s, failure) -> None:
    fail, exception, status = FAILURES[failure]
    parent = fail.apply_async(
        ("boom",),
        link=s(wftasks.collect, "never"),
        link_error=[s(wftasks.on_failure, "extra"), s(wftasks.on_failure)],
        supervisor=sup,
    )
    with pytest.raises(exception, match="boom"):
        parent.get(WAIT)
    first, second = children(parent, 2)
    record, seen_status, args = first.get(WAIT)
    assert record is parent
    assert seen_status == status  # the record was final when it ran
    assert args == ("extra",)
    assert second.get(WAIT) == (parent, status, ())
    assert isinstance(parent.exception, exception)
    assert parent.status == status
    assert_alive(sup)


def test_link_error_gets_a_record_whose_worker_was_lost(sup, s) -> None:
    parent = wftasks.p_exit.apply_async(
        link=s(wftasks.collect), link_error=s(wftasks.on_failure), supervisor=sup
    )
    with pytest.raises(WorkerLostError):
        parent.get(WAIT)
    (child,) = children(parent, 1)
    record, status, _args = child.get(WAIT)
    assert record is parent
    assert status == parent.status
    assert isinstance(record.exception, WorkerLostError)
    assert_alive(sup)


@pytest.mark.parametrize("tt", [TT_THREAD, TT_MP], ids=["thread", "process"])
def test_a_retried_task_applies_its_links_once_it_ends(sup, s, tmp_path, tt) -> None:
    retried = background_task(mptasks.fail_times, tt=tt, retries=1, supervisor=sup)
    links = {"link": s(wftasks.collect), "link_error": s(wftasks.on_failure)}
    # Fails once, then returns 2: only the link, once.
    parent = retried.apply_async((str(tmp_path / "once"), 1), **links)
    assert parent.get(WAIT) == 2
    (child,) = children(parent, 1)
    assert child.get(WAIT) == ((2,), {})
    # Fails twice: the retry is used up; only the link_error, once.
    parent = retried.apply_async((str(tmp_path / "twice"), 2), **links)
    with pytest.raises(ValueError, match="attempt 2"):
        parent.get(WAIT)
    (child,) = children(parent, 1)
    assert child.get(WAIT)[0] is parent
    assert_alive(sup)


@pytest.mark.parametrize("option", ["link", "link_error"])
@pytest.mark.parametrize("value", [5, "x", [wftasks.collect.s(), 5]], ids=repr)
def test_a_link_that_is_not_a_signature_is_refused(sup, option, value) -> None:
    with pytest.raises(TypeError, match=option):
        wftasks.add.apply_async((1, 2), supervisor=sup, **{option: value})
    with pytest.raises(TypeError, match=option):
        wftasks.add.s(1, 2).set(**{option: value})
    assert_alive(sup)


def test_link_error_must_not_be_a_process_task(sup, s) -> None:
    with pytest.raises(ValueError, match="link_error"):
        wftasks.fail.apply_async(("x",), link_error=s(wftasks.square), supervisor=sup)
    assert_alive(sup)


def test_a_canceled_task_applies_no_link(sup, s) -> None:
    canceled = wftasks.add.apply_async(
        (1, 2),
        countdown=3600,
        link=s(wftasks.collect),
        link_error=s(wftasks.on_failure),
        supervisor=sup,
    )
    assert canceled.cancel() is True
    with pytest.raises(TaskCancelledError):
        canceled.get(WAIT)
    # A later task's link is applied; the canceled one's never were.
    later = wftasks.add.apply_async((1, 2), link=s(wftasks.collect), supervisor=sup)
    (child,) = children(later, 1)
    assert child.get(WAIT) == ((3,), {})
    assert canceled.children == ()


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_failing_link_fails_its_own_record_never_the_parent(sup, s, kind) -> None:
    add, fail = KINDS[kind]
    parent = add.apply_async((1, 2), link=[s(fail), s(wftasks.collect)], supervisor=sup)
    assert parent.get(WAIT) == 3
    failing, other = children(parent, 2)
    with pytest.raises(ValueError, match="3"):
        failing.get(WAIT)
    assert failing.status == TASK_STATUS_EXCEPTION
    assert other.get(WAIT) == ((3,), {})  # the other link still ran
    assert parent.status == TASK_STATUS_COMPLETED
    assert parent.exception is None
    assert parent.get(WAIT) == 3
    assert_alive(sup)


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_failing_link_error_leaves_the_parents_failure(sup, s, kind) -> None:
    _add, fail = KINDS[kind]
    parent = fail.apply_async(("boom",), link_error=s(wftasks.fail), supervisor=sup)
    with pytest.raises(ValueError, match="boom"):
        parent.get(WAIT)
    (child,) = children(parent, 1)
    with pytest.raises(ValueError):
        child.get(WAIT)
    assert child.failed()
    assert parent.status == TASK_STATUS_EXCEPTION
    assert str(parent.exception) == "boom"
    assert_alive(sup)


def test_a_link_that_cannot_take_the_result_fails_its_own_record(sup) -> None:
    # The result (a lambda) cannot go to a process task: the link's record
    # fails, the parent stays COMPLETED.
    link = wftasks.square.s().set(supervisor=sup)
    parent = wftasks.unpicklable.apply_async(link=link, supervisor=sup)
    parent.get(WAIT)
    (child,) = children(parent, 1)
    with pytest.raises(TypeError):
        child.get(WAIT)
    assert child.failed()
    assert parent.status == TASK_STATUS_COMPLETED
    assert parent.exception is None
    assert_alive(sup)


def test_a_link_that_cannot_be_submitted_refuses_the_task(sup, make_supervisor) -> None:
    # The links are made with the task: one that cannot be (its supervisor
    # is not running) is an error at the call, and nothing runs.
    link = wftasks.collect.s().set(supervisor=make_supervisor())
    fine = wftasks.collect.s().set(supervisor=sup)
    with pytest.raises(SupervisorNotRunningError):
        wftasks.add.apply_async((1, 2), link=[fine, link], supervisor=sup)
    left = sup.get_tasks().values()
    assert [r.name for r in left if r.name in ("wftasks.add", "wftasks.collect")] == []
    assert_alive(sup)


# ----------------------------------------------------------------------
# chain
# ----------------------------------------------------------------------


def test_a_chain_passes_each_result_to_the_next(sup, s) -> None:
    last = (s(wftasks.add, 1, 2) | s(wftasks.add, 3) | s(wftasks.square)).apply_async()
    assert last.get(WAIT) == 36
    assert last.tt == TT_MP
    first, second, third = lineage(last)
    assert third is last
    assert first.parent is None
    assert [r.get(WAIT) for r in (first, second, third)] == [3, 6, 36]
    assert [r.name for r in (first, second, third)] == [
        "wftasks.add",
        "wftasks.add",
        "wftasks.square",
    ]


def test_chain_function_args_go_to_the_first(sup, s) -> None:
    workflow = chain(s(wftasks.add, 1), s(wftasks.square), s(wftasks.collect, "end"))
    last = workflow.apply_async((2,))
    assert last.get(WAIT) == ((9, "end"), {})
    assert [r.get(WAIT) for r in lineage(last)[:2]] == [3, 9]
    # The chain can be applied again: new records.
    again = workflow.apply_async((3,))
    assert again.get(WAIT) == ((16, "end"), {})
    assert again.id != last.id


def test_a_chain_of_chains_is_flat(sup, s) -> None:
    left = s(wftasks.add, 1, 1) | s(wftasks.add, 1)
    right = chain(s(wftasks.p_add, 1), s(wftasks.add, 1))
    last = chain(left, right).apply_async()
    assert last.get(WAIT) == 5
    assert [r.get(WAIT) for r in lineage(last)] == [2, 3, 4, 5]
    last = (left | right).apply_async()
    assert [r.get(WAIT) for r in lineage(last)] == [2, 3, 4, 5]


def test_an_immutable_signature_in_a_chain_ignores_the_result(sup, s, si) -> None:
    last = chain(
        s(wftasks.add, 1, 2), si(wftasks.add, 10, 20), s(wftasks.collect)
    ).apply_async()
    assert last.get(WAIT) == ((30,), {})
    assert [r.get(WAIT) for r in lineage(last)[:2]] == [3, 30]


@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_failure_in_a_chain_cancels_the_rest(sup, s, failure) -> None:
    fail, exception, status = FAILURES[failure]
    last = chain(
        s(wftasks.add, 1, 2), s(fail), s(wftasks.add, 1), s(wftasks.square)
    ).apply_async()
    with pytest.raises(TaskCancelledError):
        last.get(WAIT)
    first, failed, third, fourth = lineage(last)
    assert fourth is last
    assert first.get(WAIT) == 3
    with pytest.raises(exception, match="3"):
        failed.get(WAIT)
    assert failed.status == status
    for record in (third, fourth):
        assert record.wait(WAIT)
        assert record.status == TASK_STATUS_CANCELED
        assert record.cancel_reason == f"chain: {failed.id} failed"
        assert record.time_started is None  # never ran
    assert_alive(sup)


def test_a_worker_lost_in_a_chain_cancels_the_rest(sup, s) -> None:
    last = chain(
        s(wftasks.add, 1, 2), s(wftasks.p_exit), s(wftasks.add, 1)
    ).apply_async()
    with pytest.raises(TaskCancelledError):
        last.get(WAIT)
    _first, lost, _last = lineage(last)
    with pytest.raises(WorkerLostError):
        lost.get(WAIT)
    assert last.cancel_reason == f"chain: {lost.id} failed"
    assert_alive(sup)


@pytest.mark.parametrize("tt", [TT_THREAD, TT_MP], ids=["thread", "process"])
def test_a_chain_waits_for_a_retried_task(sup, s, tmp_path, tt) -> None:
    retried = background_task(mptasks.fail_times, tt=tt, retries=1, supervisor=sup)
    last = chain(
        retried.s(str(tmp_path / "count"), 1).set(supervisor=sup),
        s(wftasks.collect),
    ).apply_async()
    assert last.get(WAIT) == ((2,), {})


def test_a_failure_before_a_group_cancels_each_member(sup, s) -> None:
    result = chain(
        s(wftasks.p_fail, "x"), group(s(wftasks.add, 1), s(wftasks.square))
    ).apply_async()
    values = result.get(WAIT, propagate=False)
    assert [type(v) for v in values] == [TaskCancelledError, TaskCancelledError]
    reasons = {record.cancel_reason for record in result.tasks}
    assert len(reasons) == 1
    assert re.fullmatch(r"chain: \S+ failed", reasons.pop())
    assert_alive(sup)


def test_chain_kwargs_go_to_the_first(sup, s) -> None:
    last = chain(s(wftasks.collect), s(wftasks.collect, "second")).apply_async(
        (1,), {"k": 2}
    )
    assert last.get(WAIT) == ((((1,), {"k": 2}), "second"), {})


def test_a_chain_members_own_link_runs_too(sup, s) -> None:
    first = s(wftasks.add, 1, 2).set(link=s(wftasks.collect, "link"))
    last = (first | s(wftasks.square)).apply_async()
    assert last.get(WAIT) == 9
    (child,) = children(last.parent, 1)
    assert child.get(WAIT) == ((3, "link"), {})


def test_a_chain_failing_at_its_first_task(sup, s) -> None:
    last = chain(s(wftasks.p_fail, "first"), s(wftasks.add, 1)).apply_async()
    with pytest.raises(TaskCancelledError):
        last.get(WAIT)
    failed, canceled = lineage(last)
    assert failed.status == TASK_STATUS_EXCEPTION
    assert canceled.cancel_reason == f"chain: {failed.id} failed"
    assert_alive(sup)


def test_a_chain_ending_in_a_group_gives_each_member_the_result(sup, s) -> None:
    result = chain(
        s(wftasks.add, 1, 2), group(s(wftasks.add, 10), s(wftasks.square))
    ).apply_async()
    assert isinstance(result, atasker.GroupResult)
    assert result.get(WAIT) == [13, 9]


def test_a_chain_starting_with_a_group_is_a_chord(sup, s) -> None:
    body = chain(
        group(s(wftasks.add, 1, 1), s(wftasks.square, 3)), s(wftasks.total)
    ).apply_async()
    assert body.get(WAIT) == 11
    assert body.parent.get(WAIT) == [2, 9]


def test_a_chain_with_a_group_in_the_middle(sup, s) -> None:
    parts = (
        s(wftasks.add, 1, 2),
        group(s(wftasks.add, 1), s(wftasks.square)),
        s(wftasks.total),
    )
    body = chain(*parts).apply_async()
    assert body.get(WAIT) == 13  # total([4, 9])
    assert body.parent.get(WAIT) == [4, 9]
    assert (parts[0] | parts[1] | parts[2]).apply_async().get(WAIT) == 13


# ----------------------------------------------------------------------
# group
# ----------------------------------------------------------------------


def test_a_group_gets_its_results_in_order(sup, s, gate: Gate) -> None:
    block = background_task(gate.block, supervisor=sup)
    result = group(s(block), s(wftasks.add, 1, 2), s(wftasks.square, 3)).apply_async()
    assert isinstance(result, atasker.GroupResult)
    assert isinstance(result.id, str) and result.id
    assert len(result) == 3
    assert list(result) == result.tasks == result.results
    _blocked, added, squared = result.tasks
    gate.wait_started()
    # The later ones finish first; the results keep the group's order.
    assert added.get(WAIT) == 3 and squared.get(WAIT) == 9
    gate.release.set()
    assert result.get(WAIT) == ["released", 3, 9]
    assert result.join(WAIT) == ["released", 3, 9]


def test_a_group_of_an_iterable_with_args_and_options(sup) -> None:
    sigs = (f.s(n) for f, n in ((wftasks.add, 1), (wftasks.p_add, 2)))
    # The call's args are prepended to each member's; its options apply to
    # each (here, the supervisor).
    result = group(sigs).apply_async((10,), supervisor=sup)
    assert result.get(WAIT) == [11, 12]
    assert result.tasks[1].tt == TT_MP


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_group_with_failures(sup, s, kind) -> None:
    add, fail = KINDS[kind]
    result = group(
        s(add, 1, 2), s(fail, "first"), s(add, 3, 4), s(fail, "second")
    ).apply_async()
    with pytest.raises(ValueError, match="first"):
        result.get(WAIT)
    values = result.get(WAIT, propagate=False)
    assert values[0] == 3 and values[2] == 7
    assert [type(v) for v in values[1::2]] == [ValueError, ValueError]
    assert [str(v) for v in values[1::2]] == ["first", "second"]
    assert values[1] is result.tasks[1].exception
    assert result.ready() and not result.waiting()
    assert result.failed() and not result.successful()
    assert result.completed_count() == 2
    assert_alive(sup)


def test_a_group_tells_how_far_it_is(sup, s, gate: Gate) -> None:
    block = background_task(gate.block, supervisor=sup)
    result = group(s(block), s(wftasks.add, 1, 2), s(wftasks.p_fail, "x")).apply_async()
    _blocked, added, failed = result.tasks
    gate.wait_started()
    assert added.wait(WAIT) and failed.wait(WAIT)
    assert result.completed_count() == 1
    assert result.waiting() and not result.ready()
    assert result.failed() and not result.successful()
    gate.release.set()
    values = result.get(WAIT, propagate=False)
    assert values[:2] == ["released", 3] and isinstance(values[2], ValueError)
    assert result.completed_count() == 2
    assert result.ready() and not result.waiting()

    good = group(s(wftasks.add, 1), s(wftasks.square, 2)).apply_async()
    assert good.get(WAIT) == [1, 4]
    assert good.successful() and good.ready() and not good.failed()
    assert good.completed_count() == 2


def test_cancel_cancels_each_member(sup, s) -> None:
    result = group(
        s(wftasks.add, 1).set(countdown=3600),
        s(wftasks.square, 2).set(countdown=3600),
    ).apply_async()
    assert result.waiting() and not result.ready()
    result.cancel()
    assert all(r.status == TASK_STATUS_CANCELED for r in result.tasks)
    assert result.ready() and not result.waiting()
    assert not result.successful() and not result.failed()
    assert result.completed_count() == 0
    values = result.get(WAIT, propagate=False)
    assert [type(v) for v in values] == [TaskCancelledError, TaskCancelledError]
    with pytest.raises(TaskCancelledError):
        result.get(WAIT)
    assert_alive(sup)


def test_a_group_result_can_be_awaited(sup, s) -> None:
    result = group(s(wftasks.add, 1, 2), s(wftasks.square, 3)).apply_async()

    async def main():
        async def wait():
            return await result

        return await asyncio.wait_for(wait(), WAIT)

    assert asyncio.run(main()) == [3, 9]


def test_awaiting_a_failed_group_raises(sup, s) -> None:
    result = group(s(wftasks.add, 1, 2), s(wftasks.p_fail, "awaited")).apply_async()

    async def main():
        async def wait():
            return await result

        return await asyncio.wait_for(wait(), WAIT)

    with pytest.raises(ValueError, match="awaited"):
        asyncio.run(main())


def test_a_worker_lost_fails_only_its_slot(sup, s) -> None:
    result = group(
        s(wftasks.square, 2), s(wftasks.p_exit), s(wftasks.square, 3)
    ).apply_async()
    values = result.get(WAIT, propagate=False)
    assert values[0] == 4 and values[2] == 9
    assert isinstance(values[1], WorkerLostError)
    with pytest.raises(WorkerLostError):
        result.get(WAIT)
    assert_alive(sup)


def test_a_group_get_times_out(sup, s) -> None:
    result = group(
        s(wftasks.add, 1, 2), s(wftasks.add, 1).set(countdown=3600)
    ).apply_async()
    assert result.tasks[0].get(WAIT) == 3
    with pytest.raises(WaitTimeoutError):
        result.get(timeout=0.05)
    with pytest.raises(TimeoutError):
        result.join(timeout=0.05)
    assert result.tasks[1].status == TASK_STATUS_DELAYED  # it goes on
    result.cancel()
    assert result.ready()


# ----------------------------------------------------------------------
# chord
# ----------------------------------------------------------------------


def test_a_chord_body_gets_the_list_of_results(sup, s) -> None:
    header = [s(wftasks.p_add, 1, 1), s(wftasks.add, 2, 2), s(wftasks.square, 3)]
    body = chord(header, s(wftasks.collect, "tail")).apply_async()
    assert body.get(WAIT) == (([2, 4, 9], "tail"), {})
    assert isinstance(body.parent, atasker.GroupResult)
    assert body.parent.get(WAIT) == [2, 4, 9]
    assert body.parent.successful()


def test_chord_forms(sup, s) -> None:
    def header():
        return (s(wftasks.add, n, n) for n in (1, 2, 3))

    assert chord(header(), s(wftasks.total)).apply_async().get(WAIT) == 12
    assert chord(group(header()), s(wftasks.total, 100)).apply_async().get(WAIT) == 112
    assert (group(header()) | s(wftasks.total)).apply_async().get(WAIT) == 12


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_failing_header_cancels_the_body(sup, s, kind) -> None:
    add, fail = KINDS[kind]
    body = chord([s(add, 1, 2), s(fail, "header")], s(wftasks.total)).apply_async()
    with pytest.raises(TaskCancelledError):
        body.get(WAIT)
    header = body.parent
    assert body.status == TASK_STATUS_CANCELED
    assert re.fullmatch(r"chord: \S+ failed", body.cancel_reason)
    assert body.time_started is None
    values = header.get(WAIT, propagate=False)
    assert values[0] == 3 and str(values[1]) == "header"
    assert header.failed()
    assert_alive(sup)


def test_a_failing_headers_reason_names_the_header_task(sup, s) -> None:
    body = chord([s(wftasks.add, 1, 2), s(wftasks.fail, "x")], s(wftasks.total))
    body = body.apply_async()
    assert body.wait(WAIT)
    failed = body.parent.tasks[1]
    assert body.cancel_reason == f"chord: {failed.id} failed"


# ----------------------------------------------------------------------
# Names
# ----------------------------------------------------------------------


def test_module_level_task_functions_are_registered() -> None:
    tasks = registered_tasks()
    assert tasks["wftasks.add"] is wftasks.add
    assert tasks["wftasks.square"] is wftasks.square
    # A copy: changing it changes nothing.
    tasks.clear()
    assert registered_tasks()["wftasks.add"] is wftasks.add


def test_a_taken_name_refuses_a_different_function() -> None:
    name = f"{__name__}.conflict"

    def first():
        return 1

    def second():
        return 2

    registered = background_task(first, name=name)
    with pytest.raises(ValueError) as info:
        background_task(second, name=name)
    message = str(info.value)
    assert first.__qualname__ in message
    assert second.__qualname__ in message
    assert registered_tasks()[name] is registered
    with pytest.raises(ValueError):

        @background_task(name=name)
        def third():
            return 3

    assert registered_tasks()[name] is registered


def test_the_same_function_may_register_again(sup) -> None:
    name = f"{__name__}.again"
    made = []
    for n in (1, 2):

        def again(x, n=n):  # the same qualname each time round
            return x + n

        made.append(background_task(again, name=name, supervisor=sup))
    assert registered_tasks()[name] is made[-1]
    assert sup.send_task(name, (10,)).get(WAIT) == 12
    # Decorating the very same function again is fine too.
    twice = background_task(made[-1].run, name=name, supervisor=sup)
    assert registered_tasks()[name] is twice


def test_send_task_by_name(sup) -> None:
    record = sup.send_task("wftasks.add", args=(1,), kwargs={"b": 2})
    assert record.get(WAIT) == 3
    assert record.name == "wftasks.add"
    assert sup.get_task(record.id) is record  # on that supervisor
    high = sup.send_task("wftasks.collect", [1], priority=TASK_HIGH)
    assert high.get(WAIT) == ((1,), {})
    assert high.priority == TASK_HIGH
    process = sup.send_task("wftasks.square", (5,))
    assert process.get(WAIT) == 25
    assert process.tt == TT_MP


def test_send_task_of_an_unknown_name(sup) -> None:
    with pytest.raises(UnknownTaskError, match=re.escape("wftasks.nothing_here")):
        sup.send_task("wftasks.nothing_here", (1,))
    assert issubclass(UnknownTaskError, LookupError)
    assert_alive(sup)


# ----------------------------------------------------------------------
# JSON
# ----------------------------------------------------------------------


def test_a_signature_round_trips_through_json(sup) -> None:
    sig = wftasks.add.s(1, b=2).set(priority=TASK_HIGH, retries=2)
    text = sig.to_json()
    assert isinstance(text, str)
    json.loads(text)  # it is JSON
    back = SignatureClass.from_json(text)
    assert back == sig
    assert back.task is wftasks.add
    assert back.options == {"priority": TASK_HIGH, "retries": 2}
    record = back.apply_async(supervisor=sup)
    assert record.get(WAIT) == 3
    assert record.priority == TASK_HIGH

    immutable = SignatureClass.from_json(wftasks.square.si(4).to_json())
    assert immutable.immutable is True
    assert immutable.apply_async((9,), supervisor=sup).get(WAIT) == 16


def test_json_makes_tuples_lists() -> None:
    sig = wftasks.collect.s((1, 2), "x", k=(3,), d={"a": (None, True, 1.5)})
    back = SignatureClass.from_json(sig.to_json())
    assert back.args == ([1, 2], "x")
    assert back.kwargs == {"k": [3], "d": {"a": [None, True, 1.5]}}


def _hook(record):
    return None


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: wftasks.collect.s(1, when=datetime.datetime(2024, 1, 1)),
            "kwargs['when']: datetime is not JSON",
        ),
        (lambda: wftasks.collect.s(1, [{1}]), "args[1][0]: set is not JSON"),
        (lambda: wftasks.collect.s(b"x"), "args[0]: bytes is not JSON"),
        (
            lambda: wftasks.collect.s(d={"x": {1, 2}}),
            "kwargs['d']['x']: set is not JSON",
        ),
        (lambda: wftasks.collect.s({1: "a"}), "args[0]"),
        (lambda: wftasks.collect.s(x=float("nan")), "kwargs['x']"),
        (
            lambda: wftasks.collect.s().set(on_success=_hook),
            "options['on_success']: function is not JSON",
        ),
    ],
    ids=[
        "kwarg",
        "nested arg",
        "arg",
        "nested kwarg",
        "a key not a str",
        "not a number",
        "option",
    ],
)
def test_to_json_refuses_what_is_not_json_by_path(make, message) -> None:
    with pytest.raises(TypeError, match=re.escape(message)):
        make().to_json()


def test_to_json_refuses_a_supervisor(make_supervisor) -> None:
    sig = wftasks.add.s(1).set(supervisor=make_supervisor())
    with pytest.raises(TypeError, match=re.escape("options['supervisor']")):
        sig.to_json()


def test_from_json_of_an_unknown_name() -> None:
    text = wftasks.add.s(1, 2).to_json()
    assert "wftasks.add" in text
    with pytest.raises(UnknownTaskError):
        SignatureClass.from_json(text.replace("wftasks.add", "wftasks.not_there"))


def test_from_json_never_imports() -> None:
    if "colorsys" in sys.modules:
        pytest.skip("colorsys was imported already")
    text = wftasks.add.s(1, 2).to_json().replace("wftasks.add", "colorsys.rgb_to_hsv")
    with pytest.raises(UnknownTaskError):
        SignatureClass.from_json(text)
    assert "colorsys" not in sys.modules


def test_from_json_of_fields_of_a_wrong_type() -> None:
    good = json.loads(wftasks.add.s(1, 2).to_json())
    assert isinstance(good, dict)
    for field in good:
        bad = {**good, field: 5}
        with pytest.raises(ValueError):
            SignatureClass.from_json(json.dumps(bad))
        if good[field] == "wftasks.add":
            continue  # another name is an unknown name, not malformed
        bad = {**good, field: "text"}
        with pytest.raises(ValueError):
            SignatureClass.from_json(json.dumps(bad))


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[1, 2]", "42", '{"x": 1}', "{"],
    ids=["empty", "not json", "a list", "a number", "no fields", "cut short"],
)
def test_from_json_of_malformed_text(text) -> None:
    with pytest.raises(ValueError):
        SignatureClass.from_json(text)
