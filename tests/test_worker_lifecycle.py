"""Worker lifecycle faults: bounded stops, failed starts, stopped queues,
restart from the worker's own run (issue 8, items 4 and 12)."""

from __future__ import annotations

import asyncio
import sys
import threading
import time

import pytest
from conftest import WAIT

from atasker import (
    BackgroundEventWorker,
    BackgroundQueueWorker,
    BackgroundWorker,
    background_worker,
)

# What a bounded stop may take past its limit (thread hand-offs, a loaded CI).
SLACK = 1.5


class Blocking:
    """An executor that blocks each run until released."""

    def __init__(self) -> None:
        self.started = threading.Semaphore(0)
        self.release = threading.Event()

    def __call__(self, *args: object, **kwargs: object) -> None:
        self.started.release()
        self.release.wait(WAIT)

    def wait_started(self) -> None:
        assert self.started.acquire(timeout=WAIT), "the worker did not run"


def test_worker_stop_wait_seconds_is_bounded_while_a_run_blocks(supervisor) -> None:
    run = Blocking()
    worker = background_worker(run, supervisor=supervisor)
    worker.start()
    run.wait_started()
    began = time.monotonic()
    worker.stop(wait=0.3)
    assert time.monotonic() - began < 0.3 + SLACK
    assert not worker.is_active()
    run.release.set()
    assert worker.wait_until_stop(WAIT)


def test_supervisor_stop_wait_seconds_is_bounded_by_busy_workers(
    make_supervisor,
) -> None:
    sup = make_supervisor()
    sup.start()
    runs = [Blocking() for _ in range(3)]
    workers = [background_worker(run, supervisor=sup) for run in runs]
    for worker, run in zip(workers, runs):
        worker.start()
        run.wait_started()
    began = time.monotonic()
    try:
        sup.stop(wait=0.5)
        # Workers used to be stopped with wait=True: as long as the longest run.
        assert time.monotonic() - began < 0.5 + SLACK
    finally:
        for run in runs:
            run.release.set()
    for worker in workers:
        assert worker.wait_until_stop(WAIT)


def test_registry_stop_gives_each_scheduler_only_the_time_left(supervisor) -> None:
    runs = [Blocking() for _ in range(3)]
    workers = [background_worker(run, supervisor=supervisor) for run in runs]
    for worker, run in zip(workers, runs):
        worker.start()
        run.wait_started()
    began = time.monotonic()
    try:
        supervisor._schedulers.stop_schedulers(time.monotonic() + 0.4)
        # Each worker given the whole 0.4 s in turn would take 1.2 s.
        assert time.monotonic() - began < 0.4 + SLACK
        assert not any(worker.is_active() for worker in workers)
    finally:
        for run in runs:
            run.release.set()
    for worker in workers:
        assert worker.wait_until_stop(WAIT)
    assert not supervisor.get_schedulers()


@pytest.mark.parametrize("asynchronous", [False, True])
def test_supervisor_stop_without_stopping_schedulers_returns(
    make_supervisor, asynchronous
) -> None:
    sup = make_supervisor()
    sup.start()
    ran = threading.Event()
    if asynchronous:
        sup.create_aloop("jobs", default=True)

        async def executor(**kwargs):
            ran.set()

    else:

        def executor(**kwargs):
            ran.set()

    worker = background_worker(executor, interval=60, supervisor=sup)
    worker.start()
    assert ran.wait(WAIT)
    # The worker's driver waits for its next tick; the supervisor used to
    # wait for that driver as for any task of its own loop: for ever.
    stopper = threading.Thread(
        target=sup.stop, kwargs={"wait": True, "stop_schedulers": False}, daemon=True
    )
    stopper.start()
    stopper.join(WAIT)
    assert not stopper.is_alive(), "stop(wait=True, stop_schedulers=False) hung"
    assert worker.wait_until_stop(WAIT)
    assert worker.is_stopped() and not worker.is_active()


class Refusing(BackgroundWorker):
    """A worker whose before_start refuses once."""

    refuse = True

    def before_start(self) -> None:
        if self.refuse:
            raise RuntimeError("not now")


def _starts_and_stops(worker: BackgroundWorker, ran: threading.Event) -> None:
    assert worker.start()
    assert ran.wait(WAIT)
    worker.stop(wait=WAIT)
    assert worker.is_stopped() and not worker.is_active()


def test_failed_before_start_leaves_the_worker_as_it_was(supervisor) -> None:
    ran = threading.Event()
    worker = Refusing(name="w", func=lambda **kw: ran.set(), supervisor=supervisor)
    with pytest.raises(RuntimeError, match="not now"):
        worker.start(_name="other")
    assert worker.name == "w"
    assert not worker.is_active() and worker.is_stopped()
    worker.stop(wait=True)  # returns at once: nothing runs
    assert worker not in supervisor.get_schedulers()
    worker.refuse = False
    _starts_and_stops(worker, ran)


def test_start_on_a_stopped_supervisor_leaves_the_worker_as_it_was(
    make_supervisor,
) -> None:
    sup = make_supervisor()
    ran = threading.Event()
    worker = background_worker(lambda **kw: ran.set(), name="w", supervisor=sup)
    with pytest.raises(RuntimeError, match="not running"):
        worker.start(_name="other", _priority=50)
    assert (worker.name, worker.priority) == ("w", 100)
    worker.stop(wait=True)
    sup.start()
    _starts_and_stops(worker, ran)


def test_start_on_a_refusing_loop_leaves_the_worker_as_it_was(supervisor) -> None:
    ran = threading.Event()
    supervisor.create_aloop("good")

    async def executor(**kwargs):
        ran.set()

    worker = background_worker(executor, e=True, loop="good", supervisor=supervisor)
    closed = asyncio.new_event_loop()
    closed.close()
    with pytest.raises(RuntimeError, match="closed"):
        worker.start(_loop=closed)
    assert worker.loop == "good"
    idle = asyncio.new_event_loop()  # never run: it would never run the driver
    try:
        with pytest.raises(RuntimeError, match="not running"):
            worker.start(_loop=idle)
    finally:
        idle.close()
    assert worker.loop == "good"
    worker.stop(wait=True)
    assert worker.start()
    worker.trigger_threadsafe()
    assert ran.wait(WAIT)
    worker.stop(wait=WAIT)
    assert worker.is_stopped()


def test_a_stopped_queue_worker_refuses_items(supervisor) -> None:
    got = []
    done = threading.Event()

    def executor(item, **kwargs):
        got.append(item)
        done.set()

    worker = background_worker(executor, q=True, supervisor=supervisor)
    assert isinstance(worker, BackgroundQueueWorker)
    with pytest.raises(RuntimeError, match="not running"):
        worker.put_threadsafe("before start")
    worker.start()
    worker.put_threadsafe(1)  # may arrive before the worker's loop is ready
    assert done.wait(WAIT)
    worker.stop(wait=WAIT)
    for _ in range(3):
        with pytest.raises(RuntimeError, match="not running"):
            worker.put_threadsafe("after stop")
    assert not worker._early
    assert got == [1]


def test_restart_from_the_workers_own_run(supervisor) -> None:
    seen = []
    starts = threading.Semaphore(0)
    second = threading.Event()

    class Restarting(BackgroundEventWorker):
        def after_start(self) -> None:
            starts.release()

        def run(self, tag, **kwargs):
            seen.append(tag)
            if tag == "first":
                # Must not wait for itself, nor stop the worker for good.
                assert self.restart("second")
            else:
                second.set()

    worker = Restarting(supervisor=supervisor)
    worker.start("first")
    assert starts.acquire(timeout=WAIT)
    worker.trigger_threadsafe()
    # The restart happens once the current run is over.
    assert starts.acquire(timeout=WAIT), "the worker did not start again"
    assert worker.is_active()
    worker.trigger_threadsafe()
    assert second.wait(WAIT)
    worker.stop(wait=WAIT)
    assert seen == ["first", "second"]
    assert worker.is_stopped()


def test_start_stop_restart_race(supervisor) -> None:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    runs = threading.Semaphore(0)
    try:
        worker = background_worker(
            lambda **kw: runs.release(), delay=0.001, supervisor=supervisor
        )
        barrier = threading.Barrier(6)
        errors = []

        def churn(index: int) -> None:
            try:
                barrier.wait(WAIT)
                for _ in range(30):
                    if index % 3 == 0:
                        worker.start()
                    elif index % 3 == 1:
                        worker.stop(wait=WAIT)
                    else:
                        worker.restart()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=churn, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT * 3)
        assert not any(thread.is_alive() for thread in threads)
        assert errors == []
    finally:
        sys.setswitchinterval(old)
    # Whatever the interleaving, the worker is in one piece: it stops, and it
    # starts and runs again.
    worker.stop(wait=WAIT)
    assert worker.is_stopped() and not worker.is_active()
    assert worker not in supervisor.get_schedulers()
    while runs.acquire(blocking=False):
        pass
    assert worker.start()
    assert runs.acquire(timeout=WAIT)
    worker.stop(wait=WAIT)
    assert worker.is_stopped()


@pytest.mark.parametrize("raised", [SystemExit, KeyboardInterrupt, ValueError])
@pytest.mark.parametrize("asynchronous", [False, True])
def test_base_exceptions_from_user_code_are_logged(
    supervisor, raised, asynchronous, caplog
) -> None:
    ran = threading.Semaphore(0)

    class Hostile(BackgroundEventWorker):
        def before_stop(self):
            raise raised("before_stop")

        def after_start(self):
            raise raised("after_start")

        def after_stop(self):
            raise raised("after_stop")

    if asynchronous:

        async def executor(**kwargs):
            ran.release()
            raise raised("run")

    else:

        def executor(**kwargs):
            ran.release()
            raise raised("run")

    worker = Hostile(func=executor, supervisor=supervisor)
    assert worker.start()
    for _ in range(2):
        worker.trigger_threadsafe()
        assert ran.acquire(timeout=WAIT)
    worker.stop(wait=WAIT)
    assert worker.is_stopped()
    # The loop the driver ran on lives: the worker starts and runs again.
    assert worker.start()
    worker.trigger_threadsafe()
    assert ran.acquire(timeout=WAIT)
    worker.stop(wait=WAIT)
    assert "after_start" in caplog.text and "after_stop" in caplog.text
