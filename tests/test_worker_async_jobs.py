"""Async jobs, atasker 0.7 / aiosched API: AsyncJob.cancel() and .active,
create_async_job(timer=..., number=...)."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import WAIT


class Runs:
    """Counts a job's runs; ``reached(n)`` waits for the n-th."""

    def __init__(self) -> None:
        self.count = 0
        self.times: list[float] = []
        self._condition = threading.Condition()

    def __call__(self) -> None:
        with self._condition:
            self.count += 1
            self.times.append(time.monotonic())
            self._condition.notify_all()

    def reached(self, count: int) -> bool:
        with self._condition:
            return self._condition.wait_for(lambda: self.count >= count, WAIT)


@pytest.fixture
def jobs(supervisor):
    supervisor.create_aloop("jobs")
    supervisor.create_async_job_scheduler("default", aloop="jobs", default=True)
    return supervisor


def settle(supervisor) -> None:
    """Let the scheduler's loop run its queued callbacks and a few ticks of
    another job: whatever was to stop has stopped by then."""
    probe = Runs()
    job = supervisor.create_async_job(target=probe, interval=0.005)
    assert probe.reached(3)
    job.cancel()


def test_job_cancel_and_active(jobs) -> None:
    runs = Runs()
    job = jobs.create_async_job(target=runs, interval=0.005)
    assert job.active
    assert runs.reached(2)
    job.cancel()
    assert not job.active
    settle(jobs)
    count = runs.count
    settle(jobs)
    assert runs.count == count
    assert job not in jobs.default_async_job_scheduler.get_jobs()


def test_number_of_runs(jobs) -> None:
    runs = Runs()
    job = jobs.create_async_job(target=runs, interval=0.005, number=3)
    assert runs.reached(3)
    settle(jobs)
    assert runs.count == 3
    assert not job.active


def test_timer_delays_the_first_run_and_sets_the_interval(jobs) -> None:
    runs = Runs()
    created = time.monotonic()
    job = jobs.create_async_job(target=runs, timer=0.05)
    assert job.interval == 0.05
    assert runs.reached(2)
    job.cancel()
    assert runs.times[0] - created >= 0.045
    # The second run is on the schedule's second tick, 0.05 + 0.05 after the
    # job was created; measured from there, not from the first run, which a
    # loaded loop may start late (shortening the gap after it).
    assert runs.times[1] - created >= 0.095


def test_timer_with_interval(jobs) -> None:
    runs = Runs()
    created = time.monotonic()
    job = jobs.create_async_job(target=runs, timer=0.05, interval=0.005)
    assert job.interval == 0.005
    assert runs.reached(1)
    job.cancel()
    assert runs.times[0] - created >= 0.045


def test_bad_number_and_timer(jobs) -> None:
    with pytest.raises(TypeError, match="number"):
        jobs.create_async_job(target=print, interval=1, number="3")
    with pytest.raises(ValueError, match="number"):
        jobs.create_async_job(target=print, interval=1, number=-1)
    with pytest.raises(ValueError, match="timer"):
        jobs.create_async_job(target=print, timer=-1)
    with pytest.raises(TypeError, match="interval"):
        jobs.create_async_job(target=print)


def test_aiosched_names_on_the_scheduler(jobs) -> None:
    scheduler = jobs.default_async_job_scheduler
    runs = Runs()
    job = scheduler.create_threadsafe(target=runs, interval=0.005)
    assert runs.reached(1)
    scheduler.cancel(job)
    assert not job.active
