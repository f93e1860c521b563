"""Benchmarks against concurrent.futures.ThreadPoolExecutor, in one run.

``python -m atasker bench`` prints each measure for both, the median of
several rounds, and the ratio. Nothing here is a test: speed is reported,
never asserted.
"""

from __future__ import annotations

import gc
import statistics
import threading
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Callable

from .api import background_task, wait_completed
from .constants import TASK_HIGH, TASK_LOW, TT_MP
from .processpool import default_context
from .supervisor import TaskSupervisor

THREADS = 8
PROCESSES = 2


def noop() -> None:
    """The task of the throughput and latency measures."""


def _supervisor(pool_size: int, max_size: int) -> TaskSupervisor:
    supervisor = TaskSupervisor(supervisor_id="bench")
    supervisor.set_thread_pool(
        pool_size=pool_size, reserve_normal=0, reserve_high=0, max_size=max_size
    )
    supervisor.start()
    return supervisor


def throughput_atasker(tasks: int) -> float:
    """Tasks per second through background_task + wait_completed."""
    supervisor = _supervisor(THREADS, THREADS)
    run = background_task(noop, supervisor=supervisor)
    try:
        started = time.perf_counter()
        wait_completed([run() for _ in range(tasks)])
        return tasks / (time.perf_counter() - started)
    finally:
        supervisor.stop()


def throughput_executor(tasks: int) -> float:
    """Tasks per second through ThreadPoolExecutor.submit + result."""
    with ThreadPoolExecutor(max_workers=THREADS) as executor:
        started = time.perf_counter()
        futures = [executor.submit(noop) for _ in range(tasks)]
        for future in futures:
            future.result()
        return tasks / (time.perf_counter() - started)


def latency_atasker(samples: int) -> float:
    """Median seconds from submit to result on an idle pool."""
    supervisor = _supervisor(THREADS, THREADS)
    run = background_task(noop, supervisor=supervisor)
    try:
        run().get()  # warm: a thread exists
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            run().get()
            times.append(time.perf_counter() - started)
        return statistics.median(times)
    finally:
        supervisor.stop()


def latency_executor(samples: int) -> float:
    """Median seconds from submit to result on an idle executor."""
    with ThreadPoolExecutor(max_workers=THREADS) as executor:
        executor.submit(noop).result()
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            executor.submit(noop).result()
            times.append(time.perf_counter() - started)
        return statistics.median(times)


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


def _mp_supervisor() -> TaskSupervisor:
    supervisor = TaskSupervisor(supervisor_id="bench-mp")
    supervisor.create_mp_pool(processes=PROCESSES)
    supervisor.start()
    return supervisor


def _warm_executor(executor: ProcessPoolExecutor) -> None:
    for future in [executor.submit(noop) for _ in range(PROCESSES * 2)]:
        future.result()


def mp_throughput_atasker(tasks: int) -> float:
    """Process tasks per second: submit all, then wait (pool already started)."""
    supervisor = _mp_supervisor()
    run = background_task(noop, tt=TT_MP, supervisor=supervisor)
    try:
        run().get()
        started = time.perf_counter()
        wait_completed([run() for _ in range(tasks)])
        return tasks / (time.perf_counter() - started)
    finally:
        supervisor.stop()


def mp_throughput_executor(tasks: int) -> float:
    """ProcessPoolExecutor(PROCESSES) tasks per second: submit all, then wait."""
    with ProcessPoolExecutor(PROCESSES, mp_context=default_context()) as executor:
        _warm_executor(executor)
        started = time.perf_counter()
        for future in [executor.submit(noop) for _ in range(tasks)]:
            future.result()
        return tasks / (time.perf_counter() - started)


def mp_latency_atasker(samples: int) -> float:
    """Median seconds from submit to result of one process task, idle pool."""
    supervisor = _mp_supervisor()
    run = background_task(noop, tt=TT_MP, supervisor=supervisor)
    try:
        run().get()
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            run().get()
            times.append(time.perf_counter() - started)
        return statistics.median(times)
    finally:
        supervisor.stop()


def mp_latency_executor(samples: int) -> float:
    """Median seconds from submit to result of one ProcessPoolExecutor task."""
    with ProcessPoolExecutor(PROCESSES, mp_context=default_context()) as executor:
        _warm_executor(executor)
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            executor.submit(noop).result()
            times.append(time.perf_counter() - started)
        return statistics.median(times)


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
    ours = median_of(mp_throughput_atasker, mp_tasks)
    theirs = median_of(mp_throughput_executor, mp_tasks)
    out(
        f"process throughput, {mp_tasks} trivial tasks: {ours:,.0f}/s vs "
        f"{theirs:,.0f}/s  ratio {ours / theirs:.2f}x (target >= 1.0x, aim 2.5x)"
    )
    ours = median_of(mp_latency_atasker, 500)
    theirs = median_of(mp_latency_executor, 500)
    out(
        f"process idle submit-to-result latency: {ours * 1e6:.0f} us vs "
        f"{theirs * 1e6:.0f} us  ratio {ours / theirs:.2f}x (target <= 1.0x)"
    )
