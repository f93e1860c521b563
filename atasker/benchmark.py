"""What ``python -m atasker bench`` runs: each measure's code, ours and the peer's.

Each measure is a pair of functions, one round each: atasker's side and the
``concurrent.futures`` side, given the same size. A round starts its own pool,
warms it (every thread or worker process up and answering), then times only
the measured code and returns a :class:`Round`. The rounds, their medians and
the report are in :mod:`atasker.benchcompare`; the scale curves in
:mod:`atasker.benchscale`. Nothing here is a test: speed is reported, never
asserted.
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import statistics
import threading
import time
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Callable, NamedTuple

from .api import background_task, wait_completed
from .core.constants import TASK_HIGH, TASK_LOW, TT_MP, TT_THREAD
from .pools.mplaunch import default_context
from .supervisor import TaskSupervisor
from .taskfunction import TaskFunction

THREADS = 8
PROCESSES = 2
MAP_CHUNK = 100
# The spaced latency submits one task every SPACING seconds: long enough for
# a worker to go idle between tasks, so each task pays for waking it.
SPACING = 0.0005
# Seconds a warm-up may take before the benchmark gives up (a broken pool).
WARM_UP_LIMIT = 60.0


Out = Callable[[str], object]


class Round(NamedTuple):
    """One round of one side of a measure.

    Attributes:
        value: in the measure's unit (tasks/s, items/s, us, bytes per task).
        cpu_per_task: CPU seconds of this process per task over the timed
            code (``time.process_time``: every thread of this process, none
            of a worker process's); None where not measured.
    """

    value: float
    cpu_per_task: float | None


def machine() -> dict[str, object]:
    """Where the figures come from: the platform, Python and CPU count."""
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpu_count": os.cpu_count(),
    }


def spread(values: list[float]) -> dict[str, object]:
    """The samples with their median, min and max."""
    return {
        "samples": values,
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def number(value: float) -> str:
    """``value`` with as many digits as a benchmark figure deserves."""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def noop() -> None:
    """The task of the throughput and latency measures."""


def square(x: int) -> int:
    """The task of the map measure."""
    return x * x


# In a ProcessPoolExecutor's worker: the barrier its warm-up tasks meet at.
_warm_up_barrier: Any = None


def _keep_barrier(barrier: Any) -> None:
    """The peer's worker initializer: keep the warm-up barrier."""
    global _warm_up_barrier
    _warm_up_barrier = barrier


def meet_and_tell_pid(timeout: float) -> int:
    """A warm-up task for a process pool: it returns (its worker's pid) only
    once one task runs in every worker, so no worker can take two."""
    _warm_up_barrier.wait(timeout)
    return os.getpid()


def _quiet(supervisor: TaskSupervisor) -> TaskSupervisor:
    """No queue-wait reports: the measures queue far more than a pool runs."""
    supervisor.timeout_warning = supervisor.timeout_critical = None
    return supervisor


def thread_supervisor(pool_size: int, max_size: int) -> TaskSupervisor:
    """A started supervisor with a thread pool of ``pool_size`` threads (no
    reserves) and at most ``max_size``."""
    supervisor = _quiet(TaskSupervisor(supervisor_id="bench"))
    supervisor.set_thread_pool(
        pool_size=pool_size, reserve_normal=0, reserve_high=0, max_size=max_size
    )
    supervisor.start()
    return supervisor


@contextlib.contextmanager
def atasker_pool(tt: int, threads: int = THREADS) -> Iterator[TaskFunction]:
    """A started, warmed supervisor for ``tt`` tasks; yields the no-op task
    factory. Thread tasks get ``threads`` threads; process tasks 2 processes."""
    if tt == TT_MP:
        supervisor = _quiet(TaskSupervisor(supervisor_id="bench-mp"))
        supervisor.create_mp_pool(processes=PROCESSES)
        supervisor.start()
        # start() does not wait for workers; a measure must not pay for their
        # start-up (peer_pool waits for both of its workers too).
        assert supervisor.mp_pool is not None
        if not supervisor.mp_pool.wait_workers(PROCESSES, timeout=WARM_UP_LIMIT):
            supervisor.stop()
            raise RuntimeError("the worker processes did not start")
    else:
        supervisor = thread_supervisor(threads, threads)
    try:
        run = background_task(noop, tt=tt, supervisor=supervisor)
        if tt == TT_MP:
            run().get(WARM_UP_LIMIT)
        else:
            # Every thread up: each waits until all have arrived.
            barrier = threading.Barrier(threads)
            meet = background_task(barrier.wait, supervisor=supervisor)
            wait_completed([meet(WARM_UP_LIMIT) for _ in range(threads)])
        yield run
    finally:
        supervisor.stop()


@contextlib.contextmanager
def peer_pool(tt: int, threads: int = THREADS) -> Iterator[Executor]:
    """The concurrent.futures executor to compare ``tt`` tasks with, warmed
    as :func:`atasker_pool` warms ours."""
    executor: Executor
    if tt == TT_MP:
        context = default_context()
        executor = ProcessPoolExecutor(
            PROCESSES,
            mp_context=context,
            initializer=_keep_barrier,
            initargs=(context.Barrier(PROCESSES),),
        )
    else:
        executor = ThreadPoolExecutor(max_workers=threads)
    with executor:
        if tt == TT_MP:
            # Every worker answered: the tasks meet at a barrier, so each
            # runs in a worker of its own.
            futures = [
                executor.submit(meet_and_tell_pid, WARM_UP_LIMIT)
                for _ in range(PROCESSES)
            ]
            if len({future.result() for future in futures}) < PROCESSES:
                raise RuntimeError("the worker processes did not all answer")
        else:
            barrier = threading.Barrier(threads)
            for future in [
                executor.submit(barrier.wait, WARM_UP_LIMIT) for _ in range(threads)
            ]:
                future.result()
        yield executor


def timed(count: int, run_all: Callable[[], object]) -> Round:
    """``count`` per second of wall time over ``run_all()``, with the CPU per
    one of them."""
    cpu = time.process_time()
    started = time.perf_counter()
    run_all()
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    return Round(count / wall, cpu / count)


def latency(samples: int, run_one: Callable[[], object], period: float = 0) -> Round:
    """The median microseconds of ``run_one()`` over ``samples`` calls, each
    started ``period`` seconds after the one before (0: back to back)."""
    times = []
    cpu = time.process_time()
    for _ in range(samples):
        started = time.perf_counter()
        run_one()
        done = time.perf_counter()
        times.append(done - started)
        # Pacing of the benchmark, not synchronisation: nothing to wait for.
        rest = started + period - done
        if rest > 0:
            time.sleep(rest)
    cpu = time.process_time() - cpu
    return Round(statistics.median(times) * 1e6, cpu / samples)


def throughput_atasker(
    tasks: int, tt: int = TT_THREAD, threads: int = THREADS
) -> Round:
    """Tasks per second: submit all through background_task, then wait_completed."""
    with atasker_pool(tt, threads) as run:
        return timed(tasks, lambda: wait_completed([run() for _ in range(tasks)]))


def throughput_executor(
    tasks: int, tt: int = TT_THREAD, threads: int = THREADS
) -> Round:
    """Tasks per second: executor.submit all, then each result()."""
    with peer_pool(tt, threads) as executor:

        def run_all() -> None:
            for future in [executor.submit(noop) for _ in range(tasks)]:
                future.result()

        return timed(tasks, run_all)


def latency_atasker(samples: int, tt: int = TT_THREAD, period: float = 0) -> Round:
    """Median microseconds of ``f().get()`` on an idle pool."""
    with atasker_pool(tt) as run:
        return latency(samples, lambda: run().get(), period)


def latency_executor(samples: int, tt: int = TT_THREAD, period: float = 0) -> Round:
    """Median microseconds of ``executor.submit(f).result()`` on an idle pool."""
    with peer_pool(tt) as executor:
        return latency(samples, lambda: executor.submit(noop).result(), period)


def map_atasker(items: int) -> Round:
    """Items per second: ``f.map(range(items), chunksize=100).get()`` on the
    process pool."""
    with atasker_pool(TT_MP) as run:
        mapped = background_task(square, tt=TT_MP, supervisor=run.options["supervisor"])
        return timed(items, lambda: mapped.map(range(items), chunksize=MAP_CHUNK).get())


def map_executor(items: int) -> Round:
    """Items per second: ``list(executor.map(..., chunksize=100))``."""
    with peer_pool(TT_MP) as executor:
        return timed(
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


def memory_atasker(tasks: int) -> Round:
    """Bytes per queued, not yet started task."""
    supervisor = thread_supervisor(1, 1)
    gate = threading.Event()
    blocker = background_task(gate.wait, supervisor=supervisor)()
    run = background_task(noop, supervisor=supervisor)
    try:
        return Round(_queued_bytes(lambda: [run() for _ in range(tasks)]) / tasks, None)
    finally:
        gate.set()
        blocker.wait(WARM_UP_LIMIT)
        supervisor.stop()


def memory_executor(tasks: int) -> Round:
    """Bytes per queued, not yet started ThreadPoolExecutor future."""
    gate = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as executor:
        executor.submit(gate.wait)
        try:
            queued = _queued_bytes(
                lambda: [executor.submit(noop) for _ in range(tasks)]
            )
            return Round(queued / tasks, None)
        finally:
            gate.set()


def priority_drain(low: int = 1000, high: int = 10) -> tuple[bool, float]:
    """8 busy threads, ``low`` LOW then ``high`` HIGH queued, then released.

    Returns:
        (the HIGH tasks started before every LOW one, seconds to drain all).
    """
    supervisor = thread_supervisor(THREADS, THREADS)
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
        gate.set()
        supervisor.stop()
