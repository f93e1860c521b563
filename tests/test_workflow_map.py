"""Workflows (issue 10): map / starmap / chunks, wait / as_completed, eager
apply and replace.

map: results in input order for thread and process tasks (chunksize 1 and
more), a process chunk runs as one task, the iterable is consumed lazily
(at most buffersize chunks in flight), a failed or crashed chunk fails only
its own items, an iterable that raises, cancel, await. wait: each
return_when, a timeout, bad arguments; as_completed: finishing order and its
timeout. apply: in the caller's thread, a finished record, hooks, retries,
context, bind, no supervisor needed. replace: the same record ends with the
replacement's outcome.
"""

from __future__ import annotations

import asyncio
import os
import textwrap
import threading
import time

import mptasks
import pytest
import wftasks
from conftest import WAIT, run_script, started

import atasker
from atasker import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    FIRST_EXCEPTION,
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TASK_STATUS_ERROR,
    TASK_STATUS_EXCEPTION,
    TT_MP,
    TT_THREAD,
    TaskCancelledError,
    TaskError,
    WaitTimeoutError,
    WorkerLostError,
    as_completed,
    background_task,
    current_context,
    wait,
)


class Kind:
    """Thread or process tasks of the module-level targets in wftasks (all
    process tasks; a thread run gives tt=TT_THREAD per call)."""

    def __init__(self, name, sup):
        self.name = name
        self.sup = sup
        self.tt = TT_THREAD if name == "thread" else TT_MP
        self.options = {"supervisor": sup, "tt": self.tt}

    def one_more_task(self):
        """The pool still runs a task (after a fault)."""
        record = wftasks.map_square.apply_async((7,), **self.options)
        assert record.get(WAIT) == 49
        if self.tt == TT_MP:
            assert record.tt == TT_MP


@pytest.fixture(params=["thread", "process"])
def kind(request, make_supervisor):
    """A started supervisor of 4 threads and, for process tasks, 2 worker
    processes."""
    tt = TT_THREAD if request.param == "thread" else TT_MP
    return Kind(request.param, started(make_supervisor, tt, threads=4, processes=2))


@pytest.fixture
def sup(make_supervisor):
    """A started supervisor of 4 threads (thread tasks)."""
    return started(make_supervisor, TT_THREAD, threads=4)


class Events:
    """Events made by a test; all set at its end, so no task is left blocked."""

    def __init__(self):
        self.made = []

    def new(self, count=None):
        if count is not None:
            return [self.new() for _ in range(count)]
        event = threading.Event()
        self.made.append(event)
        return event


@pytest.fixture
def events():
    made = Events()
    yield made
    for event in made.made:
        event.set()


def hold(event, value):
    """A thread task: ``value`` once ``event`` is set."""
    assert event.wait(WAIT), "never released"
    return value


def hold_then_fail(event, message):
    """A thread task: ValueError(message) once ``event`` is set."""
    assert event.wait(WAIT), "never released"
    raise ValueError(message)


class Source:
    """An iterable of ``0 .. count - 1`` that records how far it was consumed,
    and which items were drawn while ``gate`` was still closed beyond the
    first ``limit``."""

    def __init__(self, count, limit, gate):
        self.count = count
        self.limit = limit
        self.gate = gate
        self.consumed = 0
        self.beyond_limit = []  # items drawn past the limit while gate was closed
        self.reached = threading.Event()  # ``limit`` items were drawn

    def __iter__(self):
        for i in range(self.count):
            if i >= self.limit and not self.gate.is_set():
                self.beyond_limit.append(i)
            self.consumed = i + 1
            if self.consumed >= self.limit:
                self.reached.set()
            yield i


# ----------------------------------------------------------------------
# map / starmap / chunks: results
# ----------------------------------------------------------------------


@pytest.mark.parametrize("chunksize", [1, 3])
def test_map_gives_results_in_input_order(kind, chunksize) -> None:
    result = wftasks.map_square.map(range(10), chunksize=chunksize, **kind.options)
    assert isinstance(result, atasker.MapResult)
    assert result.get(WAIT) == [i * i for i in range(10)]
    assert result.join(WAIT) == [i * i for i in range(10)]
    assert result.ready() and result.successful()
    assert not result.failed() and not result.waiting()
    assert result.completed_count() == 10  # items, not chunks


@pytest.mark.parametrize("chunksize", [1, 3])
def test_starmap_unpacks_each_item(kind, chunksize) -> None:
    items = [(i, 100 * i) for i in range(8)]
    result = wftasks.map_add.starmap(iter(items), chunksize=chunksize, **kind.options)
    assert result.get(WAIT) == [101 * i for i in range(8)]
    assert result.completed_count() == 8


def test_chunks_gives_a_list_per_chunk(kind) -> None:
    result = wftasks.map_square.chunks(range(7), 3, **kind.options)
    assert result.get(WAIT) == [[0, 1, 4], [9, 16, 25], [36]]
    assert result.completed_count() == 7
    assert result.successful()
    # celery's form: each item a tuple of arguments (star=True here).
    result = wftasks.map_add.chunks(
        zip(range(7), range(7)), 3, star=True, **kind.options
    )
    assert result.get(WAIT) == [[0, 2, 4], [6, 8, 10], [12]]


def test_map_of_nothing(kind) -> None:
    assert wftasks.map_square.map([], **kind.options).get(WAIT) == []
    assert (
        wftasks.map_add.starmap(iter([]), chunksize=4, **kind.options).get(WAIT) == []
    )
    assert wftasks.map_square.chunks([], 3, **kind.options).get(WAIT) == []


def test_a_chunk_runs_as_one_task(kind) -> None:
    result = wftasks.map_task_id.map(range(9), chunksize=3, **kind.options)
    seen = result.get(WAIT)
    assert [x for _, x in seen] == list(range(9))
    ids = [task_id for task_id, _ in seen]
    chunks = [ids[0:3], ids[3:6], ids[6:9]]
    assert all(len(set(chunk)) == 1 for chunk in chunks), chunks
    assert len({chunk[0] for chunk in chunks}) == 3, chunks


def test_a_process_chunk_runs_in_one_worker_process(make_supervisor) -> None:
    sup = started(make_supervisor, TT_MP, threads=2, processes=2)
    result = wftasks.map_pid.map(range(12), chunksize=4, supervisor=sup)
    seen = result.get(WAIT)
    assert [x for _, x in seen] == list(range(12))
    pids = [pid for pid, _ in seen]
    for start in (0, 4, 8):
        assert len(set(pids[start : start + 4])) == 1, pids
    assert os.getpid() not in pids
    assert set(pids) <= set(sup.get_info().mp_pids)


def test_results_keep_input_order_when_items_finish_in_reverse(sup, events) -> None:
    released = events.new(4)
    finished = events.new(4)

    def step(i):
        assert released[i].wait(WAIT)
        finished[i].set()
        return i * 2

    f = background_task(step, supervisor=sup)
    result = f.map(range(4), chunksize=1, buffersize=4)
    for i in reversed(range(4)):
        released[i].set()
        assert finished[i].wait(WAIT)
    assert result.get(WAIT) == [0, 2, 4, 6]


def test_await_a_map_result(kind) -> None:
    async def main():
        result = wftasks.map_square.map(range(6), chunksize=2, **kind.options)
        return await asyncio.wait_for(asyncio.ensure_future(_awaited(result)), WAIT)

    assert asyncio.run(main()) == [0, 1, 4, 9, 16, 25]


async def _awaited(result):
    return await result


def test_map_checks_its_arguments(sup) -> None:
    f = background_task(abs, supervisor=sup)
    with pytest.raises((TypeError, ValueError)):
        f.map(range(3), chunksize=0)
    with pytest.raises((TypeError, ValueError)):
        f.map(range(3), buffersize=0)
    with pytest.raises((TypeError, ValueError)):
        f.chunks([(1,)], 0)
    with pytest.raises(TypeError):
        f.map(5)  # not iterable
    with pytest.raises(TypeError):
        f.map(range(3), no_such_option=1)
    assert f.map([-1, -2], chunksize=2).get(WAIT) == [1, 2]  # still usable


# ----------------------------------------------------------------------
# map: lazy consumption
# ----------------------------------------------------------------------


@pytest.mark.parametrize("chunksize", [1, 2])
def test_map_consumes_the_iterable_lazily_thread(make_supervisor, gate, chunksize):
    sup = started(make_supervisor, TT_THREAD, threads=4)
    buffersize = 3  # chunks in flight; fewer than the threads: all start
    limit = buffersize * chunksize
    source = Source(100, limit, gate.release)

    def blocked(i):
        gate.block()
        return i

    f = background_task(blocked, supervisor=sup)
    result = f.map(source, chunksize=chunksize, buffersize=buffersize)
    assert source.reached.wait(WAIT), f"only {source.consumed} consumed"
    gate.wait_started(buffersize)  # each chunk in flight runs
    assert source.consumed == limit
    assert not result.ready() and result.waiting()
    assert result.completed_count() == 0
    gate.release.set()
    assert result.get(WAIT) == list(range(100))
    assert source.consumed == 100
    assert source.beyond_limit == []  # nothing past the limit while blocked


@pytest.mark.parametrize("chunksize", [1, 3])
def test_map_consumes_the_iterable_lazily_process(make_supervisor, tmp_path, chunksize):
    sup = started(make_supervisor, TT_MP, threads=2, processes=2)
    gate = mptasks.ProcessGate(tmp_path / "gate")
    released = threading.Event()
    try:
        buffersize = 3  # 2 chunks run, 1 waits for a worker
        limit = buffersize * chunksize
        source = Source(30, limit, released)
        items = ((gate.path, i) for i in source)
        result = wftasks.map_at_gate.starmap(
            items, chunksize=chunksize, buffersize=buffersize, supervisor=sup
        )
        assert source.reached.wait(WAIT), f"only {source.consumed} consumed"
        gate.wait_arrived()
        gate.wait_arrived()  # both workers hold a chunk's first item
        assert source.consumed == limit
        assert not result.ready()
        released.set()
        gate.release()
        assert result.get(WAIT) == list(range(30))
        assert source.consumed == 30
        assert source.beyond_limit == []
    finally:
        released.set()
        gate.release()


def test_map_default_buffersize_bounds_the_consumption(make_supervisor, gate):
    # The default: 4 x the pool's workers, at least 8 -> 8 chunks for 2 threads.
    sup = started(make_supervisor, TT_THREAD, threads=2)
    source = Source(500, 8, gate.release)

    def blocked(i):
        gate.block()
        return i

    result = background_task(blocked, supervisor=sup).map(source)
    assert source.reached.wait(WAIT), f"only {source.consumed} consumed"
    gate.wait_started(2)
    assert source.consumed == 8
    gate.release.set()
    assert result.get(WAIT) == list(range(500))
    assert source.beyond_limit == []


def test_cancel_stops_feeding(make_supervisor, gate) -> None:
    sup = started(make_supervisor, TT_THREAD, threads=2)
    source = Source(1000, 4, gate.release)

    def blocked(i):
        gate.block()
        return i

    f = background_task(blocked, supervisor=sup)
    result = f.map(source, chunksize=1, buffersize=4)
    assert source.reached.wait(WAIT)
    gate.wait_started(2)  # 2 run, 2 wait for a thread
    assert source.consumed == 4
    result.cancel()
    consumed = source.consumed
    gate.release.set()
    with pytest.raises(TaskCancelledError):
        result.get(WAIT)
    slots = result.get(WAIT, propagate=False)
    assert result.ready() and not result.waiting()
    assert len(slots) == consumed
    assert all(
        slot == i or isinstance(slot, TaskCancelledError)
        for i, slot in enumerate(slots)
    ), slots
    # The two that waited for a thread never ran.
    assert sum(isinstance(slot, TaskCancelledError) for slot in slots) >= 2
    assert source.consumed == consumed  # fed no more
    assert source.beyond_limit == []
    # The pool goes on.
    assert background_task(abs, supervisor=sup)(-3).get(WAIT) == 3


# ----------------------------------------------------------------------
# map: faults
# ----------------------------------------------------------------------


def test_a_crashed_chunk_fails_only_its_own_items(make_supervisor) -> None:
    sup = started(make_supervisor, TT_MP, threads=2, processes=2)
    items = ((i, 4) for i in range(9))  # item 4 kills its worker
    result = wftasks.map_crash_at.starmap(items, chunksize=3, supervisor=sup)
    slots = result.get(WAIT, propagate=False)
    assert slots[:3] == [0, 10, 20] and slots[6:] == [60, 70, 80]
    for slot in slots[3:6]:  # the whole chunk, items 3 and 5 too
        assert isinstance(slot, WorkerLostError), slots
    with pytest.raises(WorkerLostError):
        result.get(WAIT)
    assert result.ready() and result.failed() and not result.successful()
    assert result.completed_count() == 6
    # The pool lives: one more task, and one more map.
    Kind("process", sup).one_more_task()
    again = wftasks.map_square.map(range(5), chunksize=2, supervisor=sup)
    assert again.get(WAIT) == [0, 1, 4, 9, 16]


def test_a_failing_item_fails_its_chunk(kind) -> None:
    items = ((i, 4) for i in range(9))  # item 4 raises
    result = wftasks.map_fail_at.starmap(items, chunksize=3, **kind.options)
    slots = result.get(WAIT, propagate=False)
    assert slots[:3] == [0, 10, 20] and slots[6:] == [60, 70, 80]
    for slot in slots[3:6]:  # each slot of the chunk holds the chunk's exception
        assert isinstance(slot, ValueError) and str(slot) == "item 4 failed", slots
    with pytest.raises(ValueError, match="item 4 failed"):
        result.get(WAIT)
    assert result.ready() and result.failed() and not result.successful()
    assert result.completed_count() == 6
    kind.one_more_task()


def test_a_failing_item_with_chunksize_1(kind) -> None:
    result = wftasks.map_fail_at.starmap([(i, 1) for i in range(3)], **kind.options)
    slots = result.get(WAIT, propagate=False)
    assert slots[0] == 0 and slots[2] == 20
    assert isinstance(slots[1], ValueError)
    assert result.completed_count() == 2
    kind.one_more_task()


def test_an_iterable_that_raises(kind) -> None:
    def items():
        yield from range(3)
        raise RuntimeError("the iterable broke")

    result = wftasks.map_square.map(items(), chunksize=2, **kind.options)
    with pytest.raises(RuntimeError, match="the iterable broke"):
        result.get(WAIT)
    kind.one_more_task()


def test_an_iterable_that_raises_at_once(kind) -> None:
    def items():
        raise KeyError("nothing to give")
        yield  # a generator

    result = wftasks.map_square.map(items(), **kind.options)
    with pytest.raises(KeyError, match="nothing to give"):
        result.get(WAIT)
    kind.one_more_task()


# ----------------------------------------------------------------------
# wait / as_completed
# ----------------------------------------------------------------------


def test_wait_all_completed(sup, events) -> None:
    gates = events.new(3)
    f = background_task(hold, supervisor=sup)
    records = [f(gates[i], i) for i in range(3)]
    for gate in gates:
        gate.set()
    done, not_done = wait(records, timeout=WAIT)  # ALL_COMPLETED by default
    assert done == set(records) and not_done == set()
    assert isinstance(done, set) and isinstance(not_done, set)
    done, not_done = wait(records, timeout=WAIT, return_when=ALL_COMPLETED)
    assert done == set(records) and not_done == set()
    assert [r.get(0) for r in records] == [0, 1, 2]


def test_wait_all_completed_waits_for_each(sup, events) -> None:
    gates = events.new(2)
    f = background_task(hold, supervisor=sup)
    first, second = f(gates[0], "a"), f(gates[1], "b")
    gates[0].set()
    assert first.get(WAIT) == "a"
    done, not_done = wait([first, second], timeout=0.05)
    assert done == {first} and not_done == {second}
    gates[1].set()
    done, not_done = wait([first, second], timeout=WAIT)
    assert done == {first, second} and not_done == set()


def test_wait_first_completed(sup, events) -> None:
    gates = events.new(3)
    f = background_task(hold, supervisor=sup)
    records = [f(gates[i], i) for i in range(3)]
    gates[1].set()
    done, not_done = wait(records, timeout=WAIT, return_when=FIRST_COMPLETED)
    assert done == {records[1]}
    assert not_done == {records[0], records[2]}


def test_wait_first_completed_returns_at_once_if_one_is_done(sup, events) -> None:
    gate = events.new()
    blocked = background_task(hold, supervisor=sup)(gate, "x")
    finished = background_task(abs, supervisor=sup)(-1)
    assert finished.get(WAIT) == 1
    done, not_done = wait(
        [blocked, finished], timeout=WAIT, return_when=FIRST_COMPLETED
    )
    assert done == {finished} and not_done == {blocked}
    gate.set()
    assert blocked.get(WAIT) == "x"


def test_wait_first_exception(sup, events) -> None:
    gates = events.new(3)
    ok = background_task(hold, supervisor=sup)
    bad = background_task(hold_then_fail, supervisor=sup)
    first = ok(gates[0], "first")
    failing = bad(gates[1], "broken")
    last = ok(gates[2], "last")
    gates[0].set()
    assert first.get(WAIT) == "first"
    gates[1].set()
    done, not_done = wait(
        [first, failing, last], timeout=WAIT, return_when=FIRST_EXCEPTION
    )
    assert done == {first, failing}
    assert not_done == {last}
    assert failing.status == TASK_STATUS_EXCEPTION


def test_wait_first_exception_counts_an_error_status(sup, events) -> None:
    def refuse():
        raise TaskError("refused")

    gate = events.new()
    waiting = background_task(hold, supervisor=sup)(gate, 1)
    refused = background_task(refuse, supervisor=sup)()
    done, not_done = wait([waiting, refused], timeout=WAIT, return_when=FIRST_EXCEPTION)
    assert done == {refused} and not_done == {waiting}
    assert refused.status == TASK_STATUS_ERROR


def test_wait_first_exception_a_cancel_is_not_an_exception(sup, events) -> None:
    gate = events.new()
    canceled = background_task(abs, supervisor=sup).apply_async((-1,), countdown=3600)
    assert canceled.cancel() is True
    assert canceled.status == TASK_STATUS_CANCELED
    running = background_task(hold, supervisor=sup)(gate, "ok")
    # The canceled record does not end the wait: it lasts its whole timeout.
    began = time.monotonic()
    done, not_done = wait([canceled, running], timeout=0.3, return_when=FIRST_EXCEPTION)
    assert time.monotonic() - began >= 0.25
    assert done == {canceled} and not_done == {running}
    # No exception at all: it returns when all are done.
    gate.set()
    assert running.get(WAIT) == "ok"
    done, not_done = wait(
        [canceled, running], timeout=WAIT, return_when=FIRST_EXCEPTION
    )
    assert done == {canceled, running} and not_done == set()


def test_wait_timeout_returns_the_not_done(sup, events) -> None:
    gate = events.new()
    blocked = background_task(hold, supervisor=sup)(gate, 1)
    finished = background_task(abs, supervisor=sup)(-2)
    assert finished.get(WAIT) == 2
    for return_when in (ALL_COMPLETED, FIRST_EXCEPTION):
        done, not_done = wait(
            [blocked, finished], timeout=0.05, return_when=return_when
        )
        assert done == {finished} and not_done == {blocked}
    done, not_done = wait([blocked], timeout=0.05, return_when=FIRST_COMPLETED)
    assert done == set() and not_done == {blocked}
    assert not blocked.done()
    gate.set()
    assert blocked.get(WAIT) == 1


def test_wait_takes_any_iterable_and_nothing(sup) -> None:
    records = [background_task(abs, supervisor=sup)(-i) for i in range(3)]
    done, not_done = wait(iter(records), timeout=WAIT)
    assert done == set(records) and not_done == set()
    assert wait([], timeout=WAIT) == (set(), set())


def test_wait_checks_its_arguments(sup) -> None:
    record = background_task(abs, supervisor=sup)(-1)
    with pytest.raises(ValueError):
        wait([record], timeout=WAIT, return_when="SOMETIME")
    with pytest.raises(TypeError):
        wait([record, 5], timeout=WAIT)
    with pytest.raises(TypeError):
        wait(["not a record"], timeout=WAIT)
    with pytest.raises(TypeError):
        list(as_completed([record, object()], timeout=WAIT))
    assert record.get(WAIT) == 1


def test_as_completed_yields_in_finishing_order(sup, events) -> None:
    gates = events.new(4)
    f = background_task(hold, supervisor=sup)
    already = background_task(abs, supervisor=sup)(-9)
    assert already.get(WAIT) == 9
    records = [f(gates[i], i) for i in range(4)]
    iterator = as_completed([*records, already], timeout=WAIT)
    assert next(iterator) is already  # a final one first
    # Each is released only once the one before was yielded.
    for i in [2, 0, 3, 1]:
        gates[i].set()
        record = next(iterator)
        assert record is records[i] and record.done()
    with pytest.raises(StopIteration):
        next(iterator)


def test_as_completed_timeout(sup, events) -> None:
    gate = events.new()
    finished = background_task(abs, supervisor=sup)(-1)
    assert finished.get(WAIT) == 1
    blocked = background_task(hold, supervisor=sup)(gate, 2)
    iterator = as_completed([blocked, finished], timeout=0.1)
    assert next(iterator) is finished  # the final ones first, at once
    with pytest.raises(WaitTimeoutError):
        next(iterator)
    iterator = as_completed([blocked], timeout=0.05)
    with pytest.raises(TimeoutError):  # WaitTimeoutError is a TimeoutError
        list(iterator)
    gate.set()
    assert list(as_completed([blocked], timeout=WAIT)) == [blocked]


def test_as_completed_of_a_duplicate_and_of_nothing(sup) -> None:
    record = background_task(abs, supervisor=sup)(-1)
    assert list(as_completed([], timeout=WAIT)) == []
    # concurrent.futures yields a duplicate once.
    assert list(as_completed([record, record], timeout=WAIT)) == [record]


def test_wait_and_as_completed_take_process_records(kind) -> None:
    records = [wftasks.map_square.apply_async((i,), **kind.options) for i in range(3)]
    done, not_done = wait(records, timeout=WAIT)
    assert done == set(records) and not not_done
    assert sorted(r.get(0) for r in as_completed(records, timeout=WAIT)) == [0, 1, 4]


# ----------------------------------------------------------------------
# Eager apply
# ----------------------------------------------------------------------


def test_apply_runs_in_the_caller_and_returns_a_finished_record(sup) -> None:
    def where(a, b=0):
        return threading.get_ident(), a + b

    f = background_task(where, supervisor=sup)
    record = f.apply((1,), {"b": 2})
    assert record.done() and record.status == TASK_STATUS_COMPLETED
    assert record.successful() and not record.failed()
    assert record.result == (threading.get_ident(), 3)
    assert record.get(WAIT) == (threading.get_ident(), 3)
    assert record.name == f.name
    assert current_context() is None  # nothing left behind in the caller
    assert f.apply([5]).get(0)[1] == 5  # args as a list
    assert f.apply(kwargs={"a": 6}).get(0)[1] == 6


def test_apply_of_a_signature(sup) -> None:
    def pair(a, b):
        return threading.get_ident(), (a, b)

    f = background_task(pair, supervisor=sup)
    assert f.s(1, 2).apply().get(0) == (threading.get_ident(), (1, 2))
    # A mutable signature: the call's args come first.
    assert f.s(10).apply((1,)).get(0) == (threading.get_ident(), (1, 10))
    # An immutable one ignores them.
    assert f.si(3, 4).apply((1,)).get(0) == (threading.get_ident(), (3, 4))


def test_apply_runs_the_hooks_in_the_caller(sup) -> None:
    log = []

    def hook(name):
        def run(record, *argument):
            log.append((name, threading.get_ident(), argument))

        return run

    hooks = {n: hook(n) for n in ("on_start", "on_success", "on_error", "after_return")}

    def double(x):
        log.append(("function", threading.get_ident(), ()))
        return x * 2

    def broken(x):
        log.append(("function", threading.get_ident(), ()))
        raise ValueError(x)

    me = threading.get_ident()
    record = background_task(double, supervisor=sup, **hooks).apply((4,))
    assert record.result == 8
    assert log == [
        ("on_start", me, ()),
        ("function", me, ()),
        ("on_success", me, (8,)),
        ("after_return", me, ()),
    ]
    log.clear()
    record = background_task(broken, supervisor=sup, **hooks).apply(("no",))
    assert record.status == TASK_STATUS_EXCEPTION
    assert [entry[0] for entry in log] == [
        "on_start",
        "function",
        "on_error",
        "after_return",
    ]
    assert log[2][2] == (record.exception,)
    assert {entry[1] for entry in log} == {me}


def test_apply_retries_with_their_delay(sup) -> None:
    calls = []
    retried = []

    def flaky():
        calls.append(threading.get_ident())
        if len(calls) < 3:
            raise ValueError(f"attempt {len(calls)}")
        return len(calls)

    f = background_task(
        flaky,
        retries=2,
        retry_delay=0.05,
        on_retry=lambda record, exc: retried.append(str(exc)),
        supervisor=sup,
    )
    began = time.monotonic()
    record = f.apply()
    elapsed = time.monotonic() - began
    assert record.status == TASK_STATUS_COMPLETED and record.result == 3
    assert calls == [threading.get_ident()] * 3
    assert retried == ["attempt 1", "attempt 2"]
    assert record.retries == 2
    # The failed attempts are kept.
    assert [a.exception for a in record.attempts] == [
        "ValueError('attempt 1')",
        "ValueError('attempt 2')",
    ]
    assert elapsed >= 0.09  # two waits of retry_delay


def test_apply_retries_run_out(sup) -> None:
    calls = []

    def always():
        calls.append(1)
        raise ValueError(f"attempt {len(calls)}")

    record = background_task(always, retries=1, supervisor=sup).apply()
    assert record.status == TASK_STATUS_EXCEPTION
    assert len(calls) == 2 and record.retries == 1
    with pytest.raises(ValueError, match="attempt 2"):
        record.get(0)


def test_apply_never_raises_what_the_task_raised(sup) -> None:
    def broken():
        raise ValueError("broken")

    def refuse():
        raise TaskError("refused")

    record = background_task(broken, supervisor=sup).apply()
    assert record.done() and record.failed()
    assert record.status == TASK_STATUS_EXCEPTION
    assert isinstance(record.exception, ValueError)
    with pytest.raises(ValueError, match="broken"):
        record.get(0)
    record = background_task(refuse, supervisor=sup).apply()
    assert record.status == TASK_STATUS_ERROR
    with pytest.raises(TaskError, match="refused"):
        record.get(0)


def test_an_eager_error_link_may_wait_for_its_parent(sup) -> None:
    # The parent's waiters wait for its links, but not in the thread that
    # applies them: an eager link_error that reads the parent's outcome
    # must not wait for itself.
    seen = []

    def broken():
        raise ValueError("broken")

    def on_fail(record):
        try:
            record.get(WAIT)
        except ValueError as exc:
            seen.append(exc)

    handler = background_task(on_fail, supervisor=sup)
    record = background_task(broken, supervisor=sup).apply(link_error=handler.s())
    assert record.failed() and len(record.children) == 1
    assert record.children[0].successful()
    assert [str(exc) for exc in seen] == ["broken"]


def test_apply_gives_a_context(sup) -> None:
    seen = {}

    def look(x, k=None):
        ctx = current_context()
        seen.update(id=ctx.id, name=ctx.name, args=ctx.args, kwargs=dict(ctx.kwargs))
        seen["retries"] = ctx.retries
        return x

    f = background_task(look, supervisor=sup)
    record = f.apply((5,), {"k": 6})
    assert record.result == 5
    assert seen == {
        "id": record.id,
        "name": f.name,
        "args": (5,),
        "kwargs": {"k": 6},
        "retries": 0,
    }
    assert current_context() is None


def test_apply_inside_a_task_restores_its_context(sup) -> None:
    def inner():
        return current_context().id

    def outer():
        mine = current_context().id
        applied = background_task(inner, supervisor=sup).apply()
        return mine, applied.result, applied.id, current_context().id

    record = background_task(outer, supervisor=sup)()
    mine, inner_seen, inner_id, after = record.get(WAIT)
    assert mine == record.id == after
    assert inner_seen == inner_id != record.id


def test_apply_bind_and_ctx_retry(sup) -> None:
    def bound(ctx, x):
        assert ctx is current_context()
        if ctx.retries < 2:
            ctx.retry(countdown=0.01)
        return ctx.id, ctx.retries, x

    record = background_task(bound, bind=True, retries=3, supervisor=sup).apply((7,))
    assert record.status == TASK_STATUS_COMPLETED
    assert record.result == (record.id, 2, 7)


def test_apply_needs_no_started_supervisor(make_supervisor) -> None:
    idle = make_supervisor()  # never started

    def where(x):
        return threading.get_ident(), x

    record = background_task(where, supervisor=idle).apply((1,))
    assert record.get(0) == (threading.get_ident(), 1)
    # The default (global) supervisor, which no test starts.
    record = background_task(where).apply((2,))
    assert record.get(0) == (threading.get_ident(), 2)


def test_apply_needs_no_started_supervisor_in_a_fresh_interpreter() -> None:
    script = textwrap.dedent(
        """
        import threading
        from atasker import background_task, task_supervisor

        @background_task(retries=1)
        def flaky(calls=[]):
            calls.append(1)
            if len(calls) == 1:
                raise ValueError("first")
            return threading.get_ident()

        record = flaky.apply()
        print(record.status, record.get(0) == threading.get_ident(), record.retries)
        """
    )
    assert run_script(script) == [str(TASK_STATUS_COMPLETED), "True", "1"]


def test_apply_of_a_process_task_runs_in_the_caller(sup) -> None:
    # map_where is a process task (tt=TT_MP): applied, it runs here (on the
    # given supervisor, and on the default one, which no test starts).
    record = wftasks.map_where.apply((5,), supervisor=sup)
    assert record.status == TASK_STATUS_COMPLETED
    assert record.result == (os.getpid(), threading.get_ident(), 5)
    assert wftasks.map_where.s(6).apply().get(0) == (
        os.getpid(),
        threading.get_ident(),
        6,
    )


def test_apply_of_a_coroutine_function_runs_in_the_caller(sup) -> None:
    async def later(x):
        await asyncio.sleep(0)
        return threading.get_ident(), current_context() is not None, x

    record = background_task(later, supervisor=sup).apply((3,))
    assert record.status == TASK_STATUS_COMPLETED
    assert record.result == (threading.get_ident(), True, 3)


def test_apply_runs_its_links(sup) -> None:
    record = wftasks.map_add.apply(
        (2, 3), link=wftasks.map_square.s().set(supervisor=sup, tt=TT_THREAD)
    )
    assert record.result == 5
    assert len(record.children) == 1
    assert record.children[0].get(WAIT) == 25


# ----------------------------------------------------------------------
# replace
# ----------------------------------------------------------------------


def test_replace_in_a_thread_task(make_supervisor) -> None:
    # One thread: the replacement runs only if the slot is freed.
    sup = started(make_supervisor, TT_THREAD, threads=1)
    seen = []

    def inner(x):
        return "inner", x

    def outer(x):
        seen.append(current_context().id)
        current_context().replace(background_task(inner, supervisor=sup).s(x + 1))
        seen.append("replace() returned")
        return "not replaced"

    record = background_task(outer, supervisor=sup)(1)
    task_id = record.id
    assert record.get(WAIT) == ("inner", 2)
    assert record.status == TASK_STATUS_COMPLETED
    assert record.id == task_id and seen == [task_id]
    assert sup.get_task(task_id) is record
    assert background_task(abs, supervisor=sup)(-4).get(WAIT) == 4


def test_replace_in_a_process_task(make_supervisor) -> None:
    # One worker process: the replacement (a process task) runs only if the
    # worker is freed.
    sup = started(make_supervisor, TT_MP, threads=2, processes=1)
    record = wftasks.map_replace_with_square.apply_async((3,), supervisor=sup)
    task_id = record.id
    assert record.get(WAIT) == 16
    assert record.status == TASK_STATUS_COMPLETED
    assert record.id == task_id and sup.get_task(task_id) is record
    Kind("process", sup).one_more_task()


def test_a_failing_replacement_fails_the_record(kind) -> None:
    record = wftasks.map_replace_with_failure.apply_async((5,), **kind.options)
    with pytest.raises(ValueError, match="item 5 failed"):
        record.get(WAIT)
    assert record.status == TASK_STATUS_EXCEPTION and record.failed()
    assert kind.sup.get_task(record.id) is record
    kind.one_more_task()


def test_a_failing_replacement_of_a_local_thread_task(sup) -> None:
    def broken():
        raise TaskError("replacement refused")

    def outer():
        current_context().replace(background_task(broken, supervisor=sup).si())

    record = background_task(outer, supervisor=sup)()
    with pytest.raises(TaskError, match="replacement refused"):
        record.get(WAIT)
    assert record.status == TASK_STATUS_ERROR
    assert background_task(abs, supervisor=sup)(-4).get(WAIT) == 4
