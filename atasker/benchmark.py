"""Benchmarks against concurrent.futures.ThreadPoolExecutor, in one run.

``python -m atasker bench`` prints each measure for both, the median of
several rounds, and the ratio. Nothing here is a test: speed is reported,
never asserted.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import statistics
import threading
import time
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Callable

from .api import background_task, wait_completed
from .core.constants import TASK_HIGH, TASK_LOW, TT_MP, TT_THREAD
from .pools.mplaunch import default_context
from .supervisor import TaskSupervisor
from .taskfunction import TaskFunction

THREADS = 8
PROCESSES = 2


def noop() -> None:
    """The task of the throughput and latency measures."""


def _quiet(supervisor: TaskSupervisor) -> TaskSupervisor:
    """No queue-wait reports: the measures queue far more than a pool runs."""
    supervisor.timeout_warning = supervisor.timeout_critical = None
    return supervisor


def _supervisor(pool_size: int, max_size: int) -> TaskSupervisor:
    supervisor = _quiet(TaskSupervisor(supervisor_id="bench"))
    supervisor.set_thread_pool(
        pool_size=pool_size, reserve_normal=0, reserve_high=0, max_size=max_size
    )
    supervisor.start()
    return supervisor


@contextlib.contextmanager
def _atasker(tt: int) -> Iterator[TaskFunction]:
    """A started supervisor for ``tt`` tasks; yields the no-op task factory."""
    if tt == TT_MP:
        supervisor = _quiet(TaskSupervisor(supervisor_id="bench-mp"))
        supervisor.create_mp_pool(processes=PROCESSES)
        supervisor.start()
        # start() does not wait for workers; a measure must not pay for their
        # start-up (the peer's warm-up below starts all of its processes too).
        assert supervisor.mp_pool is not None
        supervisor.mp_pool.wait_workers(PROCESSES, timeout=60)
    else:
        supervisor = _supervisor(THREADS, THREADS)
    try:
        run = background_task(noop, tt=tt, supervisor=supervisor)
        run().get()  # warm: a thread or process is ready
        yield run
    finally:
        supervisor.stop()


@contextlib.contextmanager
def _executor(tt: int) -> Iterator[Executor]:
    """The concurrent.futures executor to compare ``tt`` tasks with, warmed."""
    executor: Executor
    if tt == TT_MP:
        executor = ProcessPoolExecutor(PROCESSES, mp_context=default_context())
    else:
        executor = ThreadPoolExecutor(max_workers=THREADS)
    with executor:
        for future in [executor.submit(noop) for _ in range(PROCESSES * 2)]:
            future.result()
        yield executor


def _per_second(tasks: int, run_all: Callable[[], object]) -> float:
    started = time.perf_counter()
    run_all()
    return tasks / (time.perf_counter() - started)


def _median_seconds(samples: int, run_one: Callable[[], object]) -> float:
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        run_one()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def throughput_atasker(tasks: int, tt: int = TT_THREAD) -> float:
    """Tasks per second: submit all through background_task, then wait_completed."""
    with _atasker(tt) as run:
        return _per_second(tasks, lambda: wait_completed([run() for _ in range(tasks)]))


def throughput_executor(tasks: int, tt: int = TT_THREAD) -> float:
    """Tasks per second: executor.submit all, then each result()."""
    with _executor(tt) as executor:

        def run_all() -> None:
            for future in [executor.submit(noop) for _ in range(tasks)]:
                future.result()

        return _per_second(tasks, run_all)


def latency_atasker(samples: int, tt: int = TT_THREAD) -> float:
    """Median seconds from submit to result on an idle pool."""
    with _atasker(tt) as run:
        return _median_seconds(samples, lambda: run().get())


def latency_executor(samples: int, tt: int = TT_THREAD) -> float:
    """Median seconds from submit to result on an idle executor."""
    with _executor(tt) as executor:
        return _median_seconds(samples, lambda: executor.submit(noop).result())


def square(x: int) -> int:
    """The task of the map measure."""
    return x * x


MAP_CHUNK = 100


def map_atasker(items: int) -> float:
    """Items per second: ``f.map(range(items), chunksize=100).get()`` on the
    process pool."""
    with _atasker(TT_MP) as run:
        mapped = background_task(square, tt=TT_MP, supervisor=run.options["supervisor"])
        return _per_second(
            items, lambda: mapped.map(range(items), chunksize=MAP_CHUNK).get()
        )


def map_executor(items: int) -> float:
    """Items per second: ``list(executor.map(..., chunksize=100))``."""
    with _executor(TT_MP) as executor:
        return _per_second(
            items, lambda: list(executor.map(square, range(items), chunksize=MAP_CHUNK))
        )


def _queued_bytes(submit_all: Callable[[], object]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = submit_all()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del kept
    return float(after - before)


def memory_atasker(tasks: int) -> float:
    """Bytes per queued, not yet started task."""
    supervisor = _supervisor(1, 1)
    gate = threading.Event()
    blocker = background_task(gate.wait, supervisor=supervisor)()
    run = background_task(noop, supervisor=supervisor)
    try:
        return _queued_bytes(lambda: [run() for _ in range(tasks)]) / tasks
    finally:
        gate.set()
        blocker.wait()
        supervisor.stop()


def memory_executor(tasks: int) -> float:
    """Bytes per queued, not yet started ThreadPoolExecutor future."""
    gate = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as executor:
        executor.submit(gate.wait)
        try:
            return (
                _queued_bytes(lambda: [executor.submit(noop) for _ in range(tasks)])
                / tasks
            )
        finally:
            gate.set()


def priority_drain(low: int = 1000, high: int = 10) -> tuple[bool, float]:
    """8 busy threads, ``low`` LOW then ``high`` HIGH queued, then released.

    Returns:
        (the HIGH tasks started before every LOW one, seconds to drain all).
    """
    supervisor = _supervisor(THREADS, THREADS)
    gate = threading.Event()
    order: list[int] = []
    record = order.append
    try:
        busy = [
            background_task(gate.wait, supervisor=supervisor)() for _ in range(THREADS)
        ]
        queued = [
            background_task(record, priority=TASK_LOW, supervisor=supervisor)(TASK_LOW)
            for _ in range(low)
        ]
        queued += [
            background_task(record, priority=TASK_HIGH, supervisor=supervisor)(
                TASK_HIGH
            )
            for _ in range(high)
        ]
        started = time.perf_counter()
        gate.set()
        wait_completed(busy + queued)
        elapsed = time.perf_counter() - started
        # Eight threads take tasks at once, so the first 8 + high records
        # hold every HIGH one if and only if no LOW started before one.
        highs_first = order[: high + THREADS].count(TASK_HIGH) == high
        return highs_first, elapsed
    finally:
        supervisor.stop()


def run(
    rounds: int = 5,
    tasks: int = 50_000,
    mp_tasks: int = 5_000,
    out: Callable[[str], object] = print,
) -> None:
    """Run every measure ``rounds`` times and print medians and ratios."""

    def median_of(measure: Callable[[int], float], size: int) -> float:
        return statistics.median(measure(size) for _ in range(rounds))

    out(f"atasker vs ThreadPoolExecutor, {THREADS} threads, median of {rounds} rounds")
    ours = median_of(throughput_atasker, tasks)
    theirs = median_of(throughput_executor, tasks)
    out(
        f"throughput, {tasks} no-op tasks: {ours:,.0f}/s vs {theirs:,.0f}/s"
        f"  ratio {ours / theirs:.2f}x (target >= 1.0x)"
    )
    ours = median_of(latency_atasker, 2000)
    theirs = median_of(latency_executor, 2000)
    out(
        f"idle submit-to-result latency: {ours * 1e6:.1f} us vs {theirs * 1e6:.1f} us"
        f"  ratio {ours / theirs:.2f}x (target <= 1.5x)"
    )
    queued = 100_000
    ours = median_of(memory_atasker, queued)
    theirs = median_of(memory_executor, queued)
    out(
        f"memory per queued task ({queued}): {ours:,.0f} B vs {theirs:,.0f} B"
        f"  ratio {ours / theirs:.2f}x (target <= 1.0x)"
    )
    results = [priority_drain() for _ in range(rounds)]
    drain = statistics.median(elapsed for _, elapsed in results)
    out(
        f"priority: {THREADS} busy threads, 1000 LOW then 10 HIGH: HIGH first in "
        f"{sum(ok for ok, _ in results)}/{rounds} rounds, all drained in "
        f"{drain * 1000:.1f} ms (target < 50 ms)"
    )
    out(
        f"atasker vs ProcessPoolExecutor, {PROCESSES} processes, "
        f"median of {rounds} rounds"
    )
    ours = median_of(functools.partial(throughput_atasker, tt=TT_MP), mp_tasks)
    theirs = median_of(functools.partial(throughput_executor, tt=TT_MP), mp_tasks)
    out(
        f"process throughput, {mp_tasks} trivial tasks: {ours:,.0f}/s vs "
        f"{theirs:,.0f}/s  ratio {ours / theirs:.2f}x (target >= 1.0x, aim 2.5x)"
    )
    ours = median_of(functools.partial(latency_atasker, tt=TT_MP), 500)
    theirs = median_of(functools.partial(latency_executor, tt=TT_MP), 500)
    out(
        f"process idle submit-to-result latency: {ours * 1e6:.0f} us vs "
        f"{theirs * 1e6:.0f} us  ratio {ours / theirs:.2f}x (target <= 1.0x)"
    )
    items = 100_000
    ours = median_of(map_atasker, items)
    theirs = median_of(map_executor, items)
    out(
        f"map of {items} items, chunksize={MAP_CHUNK}: {ours:,.0f}/s vs "
        f"{theirs:,.0f}/s  ratio {ours / theirs:.2f}x (target >= 1.0x)"
    )
