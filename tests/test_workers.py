"""Workers: each kind, schedules, no overlap, stop, errors, process executors."""

from __future__ import annotations

import asyncio
import threading
import time

import mptasks
import pytest
from conftest import WAIT

from atasker import (
    TASK_HIGH,
    TASK_LOW,
    BackgroundAsyncWorker,
    BackgroundEventWorker,
    BackgroundIntervalWorker,
    BackgroundQueueWorker,
    BackgroundWorker,
    background_worker,
    current_task,
)


class Counter:
    """Counts runs; ``reached(n)`` waits until n runs happened."""

    def __init__(self) -> None:
        self.runs: list = []
        self._condition = threading.Condition()

    def add(self, value=None) -> None:
        with self._condition:
            self.runs.append(value)
            self._condition.notify_all()

    def reached(self, count: int) -> bool:
        with self._condition:
            return self._condition.wait_for(lambda: len(self.runs) >= count, WAIT)


@pytest.fixture(params=["sync", "async"])
def kind(request, supervisor):
    if request.param == "async":
        supervisor.create_aloop("workers", default=True)
    return request.param


def executor_for(kind: str, counter: Counter, value=lambda kwargs: None):
    if kind == "async":

        async def run(*args, **kwargs):
            counter.add(value(kwargs) if not args else args[0])

        return run

    def run(*args, **kwargs):
        counter.add(value(kwargs) if not args else args[0])

    return run


def test_plain_worker_runs_until_false(supervisor, kind) -> None:
    counter = Counter()

    def stop_at_five(*args, **kwargs):
        counter.add(kwargs["_name"])
        return False if len(counter.runs) >= 5 else None

    if kind == "async":

        async def executor(**kwargs):
            return stop_at_five(**kwargs)

    else:
        executor = stop_at_five
    worker = background_worker(executor, name="five", supervisor=supervisor)
    expected = BackgroundAsyncWorker if kind == "async" else BackgroundWorker
    assert type(worker) is expected
    assert worker.start()
    assert counter.reached(5)
    worker.stop()
    assert counter.runs == ["five"] * 5
    assert worker.is_stopped() and not worker.is_active()


def test_executor_kwargs_and_start_arguments(supervisor) -> None:
    seen = []
    done = threading.Event()
    marker = object()

    @background_worker(supervisor=supervisor, o=marker)
    def worker(a, b=None, **kwargs):
        seen.append((a, b, kwargs["_worker"], kwargs["_name"], kwargs["o"]))
        done.set()
        return False

    worker.start(1, b=2)
    assert done.wait(WAIT)
    worker.stop()
    assert seen == [(1, 2, worker, "worker", marker)]


def test_interval_rate(supervisor, kind) -> None:
    counter = Counter()
    worker = background_worker(
        executor_for(kind, counter), interval=0.02, supervisor=supervisor
    )
    assert isinstance(worker, BackgroundIntervalWorker)
    worker.start()
    time.sleep(0.4)  # the measured window, not a synchronisation
    worker.stop()
    # About 20 runs; a loaded 2-core machine may manage fewer, never more.
    assert 5 <= len(counter.runs) <= 22


def test_runs_never_overlap(supervisor) -> None:
    spans = []
    counter = Counter()

    @background_worker(interval=0.005, supervisor=supervisor)
    def slow(**kwargs):
        start = time.monotonic()
        time.sleep(0.02)
        spans.append((start, time.monotonic()))
        counter.add()

    slow.start()
    assert counter.reached(5)
    slow.stop()
    assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:]))


def test_overrun_is_followed_at_once_and_missed_ticks_skipped(supervisor) -> None:
    starts = []
    counter = Counter()

    @background_worker(interval=0.1, supervisor=supervisor)
    def first_is_long(**kwargs):
        starts.append(time.monotonic())
        if len(starts) == 1:
            time.sleep(0.25)  # misses the ticks at 0.1 and 0.2
        counter.add()

    first_is_long.start()
    assert counter.reached(3)
    first_is_long.stop()
    # The second run follows the overrun at once; the third waits for the
    # next tick of the schedule (0.3), instead of a burst for 0.1 and 0.2.
    assert starts[1] - starts[0] >= 0.25
    assert starts[2] - starts[1] >= 0.02, starts


def test_delay_between_runs(supervisor) -> None:
    starts = []
    counter = Counter()

    @background_worker(delay=0.05, supervisor=supervisor)
    def paced(**kwargs):
        starts.append(time.monotonic())
        counter.add()

    paced.start()
    assert counter.reached(3)
    paced.stop()
    assert all(b - a >= 0.045 for a, b in zip(starts, starts[1:]))


def test_trigger_runs_an_interval_worker_now(supervisor, kind) -> None:
    counter = Counter()
    worker = background_worker(
        executor_for(kind, counter), interval=60, supervisor=supervisor
    )
    worker.start()
    assert counter.reached(1)  # the first run is at start
    worker.trigger_threadsafe()
    assert counter.reached(2)
    worker.stop()


def test_queue_order(supervisor, kind) -> None:
    counter = Counter()
    worker = background_worker(
        executor_for(kind, counter), q=True, supervisor=supervisor
    )
    assert isinstance(worker, BackgroundQueueWorker)
    worker.start()
    worker.put_threadsafe("early")  # may come before the worker's loop is ready
    for i in range(20):
        worker.put_threadsafe(i)
    assert counter.reached(21)
    worker.stop()
    assert counter.runs == ["early", *range(20)]
    assert isinstance(worker.get_queue_obj(), asyncio.Queue)


def test_priority_queue_and_async_put(supervisor) -> None:
    counter = Counter()
    busy = threading.Event()
    gate = threading.Event()

    @background_worker(queue=asyncio.PriorityQueue, supervisor=supervisor)
    def ordered(item, **kwargs):
        if item == 0:
            busy.set()
            gate.wait(WAIT)
        counter.add(item)

    ordered.start()
    ordered.put_threadsafe(0)
    assert busy.wait(WAIT)  # the worker holds item 0; the rest wait in the queue

    async def feed():
        for item in (5, 1, 3):
            await ordered.put(item)  # from another loop than the worker's

    asyncio.run(feed())
    gate.set()
    assert counter.reached(4)
    ordered.stop()
    assert counter.runs == [0, 1, 3, 5]


def test_event_count(supervisor, kind) -> None:
    counter = Counter()
    worker = background_worker(
        executor_for(kind, counter), e=True, priority=TASK_HIGH, supervisor=supervisor
    )
    assert isinstance(worker, BackgroundEventWorker)
    worker.start()
    for n in range(1, 6):
        worker.trigger_threadsafe()
        assert counter.reached(n)
    worker.stop()
    assert len(counter.runs) == 5
    assert isinstance(worker.get_event_obj(), asyncio.Event)


def test_on_error_and_worker_goes_on(supervisor) -> None:
    errors = []
    counter = Counter()

    def on_error(**kwargs):
        errors.append(kwargs)

    @background_worker(
        on_error=on_error, on_error_kwargs={"where": "w"}, supervisor=supervisor
    )
    def flaky(**kwargs):
        counter.add()
        if len(counter.runs) == 1:
            raise RuntimeError("first run fails")
        return False if len(counter.runs) >= 3 else None

    flaky.start()
    assert counter.reached(3)
    flaky.stop()
    assert errors == [{"where": "w"}]


def test_process_executor_with_process_result(make_supervisor) -> None:
    sup = make_supervisor()
    sup.create_mp_pool(processes=1)
    sup.start()
    worker = mptasks.SquareWorker(name="squares", supervisor=sup)
    worker.prepare(expected=3)
    worker.start()
    for i in (2, 3, 4):
        worker.put_threadsafe(i)
    assert worker.done.wait(WAIT)
    worker.stop()
    assert [r[0] for r in worker.results] == [4, 9, 16]
    assert worker.results[0][1] == ["_name", "_task_id"]
    assert worker.is_stopped()  # process_result returned False


def test_restart_and_overrides(supervisor) -> None:
    seen = []
    counter = Counter()

    @background_worker(e=True, supervisor=supervisor)
    def worker(**kwargs):
        seen.append((kwargs["_name"], current_task().priority))
        counter.add()

    worker.start(_name="first", _priority=TASK_HIGH)
    worker.trigger()
    assert counter.reached(1)
    assert worker.restart(_name="second", _priority=TASK_LOW)
    worker.trigger()
    assert counter.reached(2)
    worker.stop()
    assert seen == [("first", TASK_HIGH), ("second", TASK_LOW)]


def test_class_workers_and_hooks(supervisor) -> None:
    calls = []
    counter = Counter()

    class MyWorker(BackgroundIntervalWorker):
        def before_start(self):
            calls.append("before_start")

        def after_start(self):
            calls.append("after_start")

        def before_stop(self):
            calls.append("before_stop")

        def after_stop(self):
            calls.append("after_stop")

        def run(self, **kwargs):
            counter.add(kwargs["_name"])

    worker = MyWorker(interval=0.01, name="w5", supervisor=supervisor)
    worker.start()
    assert counter.reached(2)
    worker.stop()
    assert counter.runs[0] == "w5"
    assert calls == ["before_start", "after_start", "before_stop", "after_stop"]


def test_stop_wakes_a_sleeping_interval_worker_at_once(supervisor) -> None:
    counter = Counter()

    @background_worker(interval=60, supervisor=supervisor)
    def hourly(**kwargs):
        counter.add()

    hourly.start()
    assert counter.reached(1)
    started = time.monotonic()
    hourly.stop()
    assert time.monotonic() - started < 5  # not the 60 s interval
    assert hourly.is_stopped()


def test_supervisor_stop_stops_workers(make_supervisor) -> None:
    sup = make_supervisor()
    sup.start()
    counter = Counter()

    @background_worker(interval=60, supervisor=sup)
    def idle(**kwargs):
        counter.add()

    idle.start()
    assert counter.reached(1)
    assert idle in sup.get_info().schedulers
    sup.stop()
    assert idle.is_stopped() and not sup.get_info().schedulers


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="together"):
        background_worker(lambda **kw: None, interval=1, delay=1)
    with pytest.raises(ValueError, match="priority"):
        background_worker(lambda **kw: None, priority=3)
    with pytest.raises(TypeError, match="queue"):
        background_worker(lambda **kw: None, q=list)
    assert BackgroundWorker(func=print, colour="blue").options == {"colour": "blue"}


def test_no_executor_is_a_clear_error(supervisor) -> None:
    with pytest.raises(TypeError, match="no executor"):
        BackgroundWorker(supervisor=supervisor).start()


def test_stop_from_the_executor(supervisor) -> None:
    counter = Counter()

    @background_worker(supervisor=supervisor)
    def self_stopping(**kwargs):
        counter.add()
        kwargs["_worker"].stop()  # must not wait for itself

    self_stopping.start()
    assert counter.reached(1)
    self_stopping.stop()
    assert len(counter.runs) == 1
