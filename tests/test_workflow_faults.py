"""Workflows under faults: what the review of issue 10 found, each fixed.

Each test names the defect it guards against; the fault tests end by
pushing one more task through the same pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

import pytest
import wftasks
from conftest import WAIT, started

from atasker import (
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TT_MP,
    MapResult,
    SupervisorNotRunningError,
    TaskCancelledError,
    TaskInfo,
    background_task,
    chain,
    chord,
    current_context,
)


@pytest.fixture
def sup(make_supervisor):
    return started(make_supervisor, threads=2, processes=1)


def alive(sup) -> None:
    assert wftasks.f_add.apply_async((1, 2), supervisor=sup).get(WAIT) == 3
    assert background_task(lambda: 4, supervisor=sup)().get(WAIT) == 4


def test_a_task_replaced_a_thousand_times_ends(sup) -> None:
    # The replacements end one another from a queue, not by recursion.
    @background_task(supervisor=sup)
    def countdown(n):
        if n:
            current_context().replace(countdown.s(n - 1))
        return "done"

    first = countdown(1000)
    assert first.get(WAIT) == "done"
    assert first._replacement() is None  # a finished record keeps none
    alive(sup)


@contextlib.contextmanager
def replacement_pending(sup) -> Iterator[TaskInfo]:
    """A process task whose attempt has raised Replace, its replacement not
    submitted yet: the callbacks thread that submits it is busy with a hook
    until the block ends."""
    gate, in_hook = threading.Event(), threading.Event()

    def busy(*args):
        in_hook.set()
        gate.wait(WAIT)

    try:
        wftasks.f_add.apply_async((1, 2), supervisor=sup, on_success=busy)
        assert in_hook.wait(WAIT)  # the callbacks thread runs user code
        record = wftasks.f_replacer.apply_async((10,), supervisor=sup)
        # The worker is free once the record's attempt has raised Replace.
        wftasks.f_add.apply_async((0, 0), supervisor=sup).get(WAIT)
        yield record
    finally:
        gate.set()


def test_a_canceled_replacement_in_waiting_is_not_lost(sup) -> None:
    # A process task's replacement is submitted on the callbacks thread: a
    # cancel before then ends the record, and the replacement never runs.
    with replacement_pending(sup) as record:
        assert record.cancel("stop it")
    assert record.wait(WAIT)
    assert record.status == TASK_STATUS_CANCELED
    assert record.cancel_reason == "stop it"
    alive(sup)


def test_a_fed_process_task_is_pickled_off_the_manager_thread(sup) -> None:
    wftasks.PICKLED_ON.clear()
    last = (wftasks.f_add.s(40) | wftasks.f_pair.s(wftasks.Traced(1))).apply_async(
        supervisor=sup
    )
    assert last.get(WAIT) == 41
    assert not [name for name in wftasks.PICKLED_ON if "mp_manager" in name]
    alive(sup)


def test_a_map_reads_no_more_once_its_supervisor_stops(make_supervisor) -> None:
    sup = started(make_supervisor, threads=1)
    gate, running = threading.Event(), threading.Event()
    read = []

    @background_task(supervisor=sup)
    def work(x):
        running.set()
        gate.wait(WAIT)
        return x

    def endless():
        n = 0
        while True:
            read.append(n)
            yield n
            n += 1

    mapped = work.map(endless(), buffersize=2)
    assert running.wait(WAIT)
    stopping = threading.Thread(target=sup.stop, kwargs={"wait": WAIT})
    stopping.start()
    gate.set()
    stopping.join(WAIT)
    assert not stopping.is_alive()
    with pytest.raises((TaskCancelledError, SupervisorNotRunningError)):
        mapped.get(WAIT)
    assert mapped.ready()
    assert len(read) < 10


def test_a_map_iterable_may_ask_the_map_how_far_it_is(sup) -> None:
    # The iterable runs with no lock of the map held.
    @background_task(supervisor=sup)
    def double(x):
        return 2 * x

    made: dict[str, MapResult] = {}
    progress = []

    def items():
        for n in range(6):
            if "map" in made:  # the first chunks are read before it exists
                progress.append(made["map"].completed_count())
            yield n

    made["map"] = double.map(items(), buffersize=2)
    assert made["map"].get(WAIT) == [0, 2, 4, 6, 8, 10]
    assert progress  # it asked while the map ran
    alive(sup)


def test_an_awaiting_loop_that_closed_does_not_keep_others_from_waking(sup) -> None:
    gate = threading.Event()

    @background_task(supervisor=sup)
    def held(x):
        gate.wait(WAIT)
        return x

    mapped = held.map(range(3))
    first = asyncio.new_event_loop()

    async def give_up():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(_awaiting(mapped)), 0.01)

    first.run_until_complete(give_up())
    first.close()  # its waker is still registered
    done = threading.Event()
    got = []

    def second():
        got.append(asyncio.run(_awaiting(mapped)))
        done.set()

    thread = threading.Thread(target=second)
    thread.start()
    gate.set()
    assert done.wait(WAIT)
    thread.join(WAIT)
    assert got == [[0, 1, 2]]
    alive(sup)


async def _awaiting(mapped):
    return await mapped


def test_signatures_and_chains_take_a_task_id(sup) -> None:
    add = wftasks.f_add
    assert add.s(1).apply_async(task_id="sig-1", supervisor=sup).id == "sig-1"
    last = (add.s(1) | add.s(2)).apply_async(task_id="chain-1", supervisor=sup)
    assert last.id == "chain-1"
    assert last.get(WAIT) == 3


def test_a_chain_that_cannot_be_submitted_whole_cancels_what_it_queued(
    sup,
) -> None:
    gate = threading.Event()

    @background_task(supervisor=sup)
    def first():
        gate.wait(WAIT)
        return 1

    # The second's argument does not pickle for a process task.
    with pytest.raises(TypeError):
        chain(
            first.s(), wftasks.f_add.s(lambda: None).set(supervisor=sup)
        ).apply_async()
    gate.set()
    queued = [r for r in sup.get_tasks().values() if r.name == first.name]
    for record in queued:
        assert record.wait(WAIT)
    alive(sup)


def test_bad_canvas_arguments_are_named(sup) -> None:
    with pytest.raises(ValueError, match=r"^n must be at least 1"):
        wftasks.f_add.chunks(range(4), 0)
    with pytest.raises(TypeError, match="header"):
        chord(5, wftasks.f_add.s())


def test_lambdas_do_not_take_each_others_names() -> None:
    from atasker import registered_tasks

    one = background_task(lambda: 1)
    background_task(lambda: 2)
    assert one.name not in registered_tasks()


def test_the_links_not_taken_end_canceled(sup) -> None:
    record = wftasks.f_add.apply_async(
        (1, 2),
        link=wftasks.f_add.s(1).set(supervisor=sup),
        link_error=background_task(lambda r: r, supervisor=sup).s(),
        supervisor=sup,
    )
    assert record.get(WAIT) == 3
    (child,) = record.children
    assert child.get(WAIT) == 4
    assert child.parent is record
    assert child.status == TASK_STATUS_COMPLETED
    assert child.tt == TT_MP


def test_a_replacement_a_stop_came_before_ends_canceled(make_supervisor) -> None:
    sup = started(make_supervisor, threads=2, processes=1)
    with replacement_pending(sup) as record:
        # The stop begins before this returns (it cannot end: the callbacks
        # thread is busy), so the replacement finds the supervisor stopping.
        sup.stop(wait=0)
    assert record.wait(WAIT)
    assert record.status == TASK_STATUS_CANCELED
    assert record.cancel_reason == "stopped"


def test_a_map_pumped_by_two_threads_in_turn_loses_no_item(sup, monkeypatch) -> None:
    # The caller's pump has just handed over (its chunk is in flight) when
    # the chunk's end makes a pool thread the pump: the caller must not
    # take that thread's pumping for its own and end the map early.
    reading = threading.Event()  # the pool thread reads item 1
    go_on = threading.Event()
    caller = threading.current_thread()
    original = MapResult._pump_chunks

    def pump_chunks(self):
        original(self)
        if threading.current_thread() is caller and not reading.is_set():
            assert reading.wait(WAIT)  # the other thread pumps now

    monkeypatch.setattr(MapResult, "_pump_chunks", pump_chunks)

    def items():
        yield 0
        if threading.current_thread() is not caller:
            reading.set()
            assert go_on.wait(WAIT)
        yield from range(1, 5)

    mapped = wftasks.f_add.map(items(), buffersize=1, supervisor=sup)
    go_on.set()
    assert mapped.get(WAIT) == [0, 1, 2, 3, 4]
    alive(sup)
