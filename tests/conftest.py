"""Shared fixtures: each test gets its own supervisor, checked for leftovers."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atasker import TT_COROUTINE, TT_MP, TT_THREAD, TaskSupervisor

_numbers = itertools.count(1)

# Seconds a test may wait for anything; a bug fails the test instead of hanging.
WAIT = 10.0

TESTS = Path(__file__).parent


def run_script(script: str) -> list[str]:
    """Run ``script`` in a fresh interpreter (from the tests' directory, so
    it imports their modules); the words it printed. It must exit with 0."""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=TESTS,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


# What follows supervisor_<id>_ in the name of each thread of a supervisor,
# so that supervisor "x" does not count the threads of supervisor "x_y".
THREAD_KINDS = ("pool_", "timer", "aloop_", "mp_", "stop", "callbacks", "events")


def supervisor_threads(supervisor_id: str) -> list[threading.Thread]:
    prefix = f"supervisor_{supervisor_id}_"
    return [
        t
        for t in threading.enumerate()
        if t.name.startswith(prefix) and t.name[len(prefix) :].startswith(THREAD_KINDS)
    ]


@pytest.fixture
def make_supervisor() -> Iterator[type[TaskSupervisor]]:
    """A factory of started-later supervisors; all are stopped and checked."""
    made: list[TaskSupervisor] = []

    def make(**kwargs: object) -> TaskSupervisor:
        kwargs.setdefault("supervisor_id", f"test{next(_numbers)}")
        supervisor = TaskSupervisor(**kwargs)  # type: ignore[arg-type]
        made.append(supervisor)
        return supervisor

    yield make  # type: ignore[misc]
    for supervisor in made:
        supervisor.stop(wait=WAIT)
        for thread in supervisor_threads(supervisor.id):
            thread.join(WAIT)
        left = supervisor_threads(supervisor.id)
        assert not left, f"threads left after stop: {left}"


def started(
    make_supervisor: Any,
    tt: int = TT_THREAD,
    threads: int = 4,
    processes: int = 1,
    **kwargs: object,
) -> TaskSupervisor:
    """A started supervisor that keeps finished records, for tasks of ``tt``:
    ``threads`` pool threads (pool_size, no reserves); for TT_MP also
    ``processes`` worker processes, started; for TT_COROUTINE a default
    aloop, ``main``."""
    kwargs.setdefault("keep_finished", 100)
    sup = make_supervisor(**kwargs)
    sup.set_thread_pool(pool_size=threads, reserve_normal=0, reserve_high=0)
    if tt == TT_MP:
        sup.create_mp_pool(processes=processes)
    sup.start()
    if tt == TT_MP:
        assert sup._mp_pool.wait_workers(processes, WAIT), "no worker started"
    if tt == TT_COROUTINE:
        sup.create_aloop("main", default=True)
    return sup


@pytest.fixture
def supervisor(make_supervisor: type[TaskSupervisor]) -> TaskSupervisor:
    """A started supervisor with a small pool that keeps finished records."""
    sup = make_supervisor(keep_finished=1000)
    sup.set_thread_pool(pool_size=4, reserve_normal=0, reserve_high=0)
    sup.start()
    return sup


class Gate:
    """Tasks that block until released, and tell when they started."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Semaphore(0)

    def block(self, *args: object, **kwargs: object) -> str:
        self.started.release()
        assert self.release.wait(WAIT), "gate never released"
        return "released"

    def wait_started(self, count: int = 1) -> None:
        for _ in range(count):
            assert self.started.acquire(timeout=WAIT), "task did not start"


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    yield g
    g.release.set()


def retry_scheduled(supervisor: Any) -> threading.Event:
    """An Event set once the supervisor has scheduled a task's next attempt
    (the record's retry runs its hooks first, then asks the supervisor)."""
    scheduled = threading.Event()
    schedule = supervisor._retry_task

    def wrapper(task: Any, wait: float) -> bool:
        accepted = schedule(task, wait)
        scheduled.set()
        return bool(accepted)

    supervisor._retry_task = wrapper
    return scheduled
