"""atasker 0.7's worker API: unknown options, hooks, error(), wait_until_stop,
last_executed, static run() without a process pool, get_schedulers()."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import typing

from conftest import WAIT

from atasker import (
    BackgroundAsyncWorker,
    BackgroundIntervalWorker,
    BackgroundQueueWorker,
    BackgroundWorker,
    background_worker,
)


def test_unknown_options_are_kept_for_subclasses(supervisor) -> None:
    ran = threading.Event()

    class Configured(BackgroundIntervalWorker):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)  # 0.7 style: everything goes up
            self.colour = kwargs.get("colour")

        def run(self, **kwargs):
            ran.set()
            return False

    worker = Configured(name="c", interval=60, colour="blue", supervisor=supervisor)
    assert worker.colour == "blue"
    assert worker.options == {"colour": "blue"}
    plain = BackgroundWorker(func=print, size=3)
    assert plain.options == {"size": 3}
    worker.start()
    assert ran.wait(WAIT)
    assert worker.wait_until_stop(WAIT)


def test_executor_func_is_accepted(supervisor) -> None:
    ran = threading.Event()
    worker = BackgroundWorker("named", lambda **kw: ran.set() or False)
    assert worker.name == "named"
    worker = BackgroundWorker(
        executor_func=lambda **kw: ran.set() or False, supervisor=supervisor
    )
    worker.start()
    assert ran.wait(WAIT)
    assert worker.wait_until_stop(WAIT)


def test_queue_hooks_and_send_stop_events(supervisor) -> None:
    calls = []
    done = threading.Event()

    class Hooked(BackgroundQueueWorker):
        def before_queue_get(self):
            calls.append("before_queue_get")

        def after_queue_get(self, item):
            calls.append(("after_queue_get", item))

        def send_stop_events(self):
            calls.append("send_stop_events")

        def run(self, item, **kwargs):
            calls.append(("run", item))
            done.set()

    worker = Hooked(supervisor=supervisor)
    worker.start()
    worker.put_threadsafe("a")
    assert done.wait(WAIT)
    worker.stop(wait=WAIT)
    assert calls[:3] == [
        "before_queue_get",
        ("after_queue_get", "a"),
        ("run", "a"),
    ]
    assert calls[-1] == "send_stop_events"


def test_error_is_called_inside_the_except(supervisor) -> None:
    seen = []
    done = threading.Event()

    class Failing(BackgroundWorker):
        def run(self, **kwargs):
            raise ValueError("boom")

        def error(self):
            seen.append(sys.exc_info()[1])
            self.stop(wait=False)
            done.set()

    worker = Failing(supervisor=supervisor)
    worker.start()
    assert done.wait(WAIT)
    assert worker.wait_until_stop(WAIT)
    assert len(seen) == 1 and isinstance(seen[0], ValueError)


def test_on_error_sees_the_exception(supervisor) -> None:
    seen = []
    done = threading.Event()

    def on_error(**kwargs):
        seen.append((sys.exc_info()[1], kwargs))
        done.set()

    @background_worker(
        on_error=on_error, on_error_kwargs={"k": 1}, e=True, supervisor=supervisor
    )
    def failing(**kwargs):
        raise KeyError("x")

    failing.start()
    failing.trigger_threadsafe()
    assert done.wait(WAIT)
    failing.stop(wait=WAIT)
    assert isinstance(seen[0][0], KeyError) and seen[0][1] == {"k": 1}


def test_last_executed_and_wait_until_stop(supervisor) -> None:
    ran = threading.Event()

    @background_worker(e=True, supervisor=supervisor)
    def worker(**kwargs):
        ran.set()

    assert worker.last_executed == 0
    assert worker.wait_until_stop(0)  # never started: stopped
    before = time.perf_counter()
    worker.start()
    worker.trigger_threadsafe()
    assert ran.wait(WAIT)
    assert worker.last_executed >= before
    assert not worker.wait_until_stop(0.01)
    worker.stop(wait=False)
    assert worker.wait_until_stop(WAIT)


class StaticRun(BackgroundIntervalWorker):
    seen: typing.ClassVar[list] = []
    results: typing.ClassVar[list] = []
    processed = threading.Event()

    def process_result(self, result):
        StaticRun.results.append(result)
        StaticRun.processed.set()

    @staticmethod
    def run(**kwargs):
        StaticRun.seen.append((kwargs["_worker"], threading.current_thread().name))
        return False  # to process_result(), as from a process


def test_static_run_without_a_process_pool_runs_in_a_thread(supervisor) -> None:
    StaticRun.seen, StaticRun.results = [], []
    worker = StaticRun(interval=60, supervisor=supervisor)
    worker.start()
    assert StaticRun.processed.wait(WAIT)
    assert worker.is_active()  # the run's False went to process_result
    worker.stop(wait=WAIT)
    assert StaticRun.results == [False]
    assert StaticRun.seen[0][0] is worker
    assert StaticRun.seen[0][1].startswith(f"supervisor_{supervisor.id}_pool_")


def test_get_schedulers_is_a_dict(supervisor) -> None:
    @background_worker(interval=60, supervisor=supervisor)
    def idle(**kwargs):
        pass

    idle.start()
    schedulers = supervisor.get_schedulers()
    assert isinstance(schedulers, dict) and idle in schedulers
    idle.stop(wait=WAIT)
    assert idle not in supervisor.get_schedulers()


def test_interval_worker_without_a_schedule_waits_a_second_between_runs() -> None:
    class Plain(BackgroundIntervalWorker):
        def run(self, **kwargs):
            pass

    worker = Plain()  # 0.7: delay 1 s, not a busy loop
    assert (worker.interval, worker.delay, worker.delay_before) == (None, 1.0, None)
    assert Plain(interval=0.5).delay is None
    assert Plain(delay_after=2).delay == 2
    assert Plain(delay_before=0.5).delay == 1.0  # as in 0.7
    # An override of one schedule replaces the other, as 0.7's start() did.
    worker._apply_overrides({"_interval": 0.2})
    assert (worker.interval, worker.delay) == (0.2, None)
    worker._apply_overrides({"_delay": 0.3})
    assert (worker.interval, worker.delay) == (None, 0.3)


def test_trigger_can_be_awaited_and_supervisor_set(supervisor) -> None:
    ran = threading.Semaphore(0)

    @background_worker(e=True)
    def worker(**kwargs):
        ran.release()

    worker.supervisor = supervisor  # 0.7 kept it as a plain attribute
    assert worker.supervisor is supervisor
    worker.start()

    async def from_a_coroutine():
        await worker.trigger()  # 0.7's trigger was a coroutine

    asyncio.run(from_a_coroutine())
    assert ran.acquire(timeout=WAIT)
    worker.trigger_threadsafe(force=True)
    assert ran.acquire(timeout=WAIT)
    worker.stop(wait=WAIT)


def test_async_worker_pauses_poll_delay_between_runs(supervisor) -> None:
    supervisor.create_aloop("paced", default=True)
    starts: list[float] = []
    two = threading.Event()

    async def executor(**kwargs):
        starts.append(asyncio.get_running_loop().time())
        if len(starts) == 2:
            two.set()

    worker = background_worker(executor, supervisor=supervisor, poll_delay=0.2)
    assert isinstance(worker, BackgroundAsyncWorker)
    worker.start()
    assert two.wait(WAIT)
    worker.stop(wait=WAIT)
    assert starts[1] - starts[0] >= 0.2 * 0.9  # 0.7's pause, not a busy loop

    slow = background_worker(executor, supervisor=supervisor, poll_delay=3600)
    starts.clear()
    slow.start()
    slow.stop(wait=WAIT)  # the pause ends at once
    assert not slow.is_started()
