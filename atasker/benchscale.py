"""``python -m atasker bench scale``: how the cost per task grows, as tables.

(a) The cost per task of submitting N no-op tasks behind one busy thread
(so all N are queued at once), then of draining them, for N = 10^3, 10^4,
... up to ``max_queued``; with ThreadPoolExecutor's beside it.
(b) The cost per task of submitting N no-op tasks and waiting for all, on 1,
2, 4, ... up to ``max_threads`` threads; with ThreadPoolExecutor's.
(c) How long ``get_info()`` and ``get_tasks()`` take with N tasks queued.

A flat column is what the issue asks of (a) and (b); (c) should not grow
with N. Each figure is the median of the rounds (ours and the peer's
interleaved); CPU is ``time.process_time`` of this process per task.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import statistics
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

from . import __version__
from .api import background_task
from .benchmark import (
    WARM_UP_LIMIT,
    Out,
    machine,
    noop,
    number,
    spread,
    thread_supervisor,
    throughput_atasker,
    throughput_executor,
)
from .core.task import TaskInfo

Costs = dict[str, float]

# The defaults of ``bench scale``'s options.
ROUNDS = 3
MAX_QUEUED = 100_000
MAX_THREADS = 64
TASKS = 20_000
CALLS = 11


def levels(first: int, factor: int, top: int) -> list[int]:
    """``first``, ``first * factor``, ... while below ``top``, then ``top``."""
    sizes = []
    size = first
    while size < top:
        sizes.append(size)
        size *= factor
    return [*sizes, top]


def _timed(count: int, run_all: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU microseconds per one of ``count`` over ``run_all()``."""
    cpu = time.process_time()
    started = time.perf_counter()
    run_all()
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    return wall * 1e6 / count, cpu * 1e6 / count


def _median_call_us(calls: int, call: Callable[[], object]) -> list[float]:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1e6)
    return times


def queued_atasker(count: int, calls: int) -> tuple[Costs, list[float], list[float]]:
    """Submit ``count`` tasks behind one busy thread, look the supervisor up
    ``calls`` times, then drain them.

    Returns:
        The costs per task (``submit``, ``submit_cpu``, ``drain``,
        ``drain_cpu``, in microseconds) and the microseconds of each
        ``get_info()`` and of each ``get_tasks()`` call.
    """
    supervisor = thread_supervisor(1, 1)
    started, gate = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        gate.wait()  # set at the drain, or by the finally clause below

    try:
        background_task(hold, supervisor=supervisor)()
        if not started.wait(WARM_UP_LIMIT):
            raise RuntimeError("the pool thread did not start")
        run = background_task(noop, supervisor=supervisor)
        tasks: list[TaskInfo] = []
        submit = _timed(count, lambda: tasks.extend(run() for _ in range(count)))
        info = _median_call_us(calls, supervisor.get_info)
        listing = _median_call_us(calls, supervisor.get_tasks)

        def drain_all() -> None:
            gate.set()
            # One thread runs them in the order queued: the last one ends last.
            tasks[-1].wait()

        drain = _timed(count, drain_all)
    finally:
        gate.set()
        supervisor.stop()
    costs = {
        "submit": submit[0],
        "submit_cpu": submit[1],
        "drain": drain[0],
        "drain_cpu": drain[1],
    }
    return costs, info, listing


def queued_executor(count: int) -> Costs:
    """As :func:`queued_atasker`, for ThreadPoolExecutor(max_workers=1)."""
    gate = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as executor:
        executor.submit(gate.wait, WARM_UP_LIMIT)
        futures: list[Future[None]] = []
        try:
            submit = _timed(
                count,
                lambda: futures.extend(executor.submit(noop) for _ in range(count)),
            )

            def drain_all() -> None:
                gate.set()
                futures[-1].result()

            drain = _timed(count, drain_all)
        finally:
            gate.set()
    return {
        "submit": submit[0],
        "submit_cpu": submit[1],
        "drain": drain[0],
        "drain_cpu": drain[1],
    }


def _medians(rows: list[Costs]) -> Costs:
    return {key: statistics.median(row[key] for row in rows) for key in rows[0]}


@dataclasses.dataclass
class QueuedRow:
    """A row of tables (a) and (c): ``queued`` tasks behind one busy thread."""

    queued: int
    atasker: Costs
    peer: Costs
    get_info_us: list[float]
    get_tasks_us: list[float]

    def as_dict(self) -> dict[str, object]:
        return {
            "queued": self.queued,
            "atasker_us_per_task": self.atasker,
            "peer_us_per_task": self.peer,
            "get_info_us": spread(self.get_info_us),
            "get_tasks_us": spread(self.get_tasks_us),
        }


@dataclasses.dataclass
class ThreadsRow:
    """A row of table (b): submit all then wait on ``threads`` threads."""

    threads: int
    atasker: Costs
    peer: Costs

    def as_dict(self) -> dict[str, object]:
        return {
            "threads": self.threads,
            "atasker_us_per_task": self.atasker,
            "peer_us_per_task": self.peer,
        }


def queued_table(top: int, rounds: int, calls: int) -> list[QueuedRow]:
    """Rows of tables (a) and (c), one per number of queued tasks."""
    rows = []
    for count in levels(1000, 10, top):
        ours: list[Costs] = []
        peer: list[Costs] = []
        row = QueuedRow(count, {}, {}, [], [])
        for _ in range(rounds):
            gc.collect()
            costs, info_us, listing_us = queued_atasker(count, calls)
            ours.append(costs)
            row.get_info_us += info_us
            row.get_tasks_us += listing_us
            gc.collect()
            peer.append(queued_executor(count))
        row.atasker, row.peer = _medians(ours), _medians(peer)
        rows.append(row)
    return rows


def threads_table(top: int, tasks: int, rounds: int) -> list[ThreadsRow]:
    """Rows of table (b), one per number of threads."""
    rows = []
    for threads in levels(1, 2, top):
        ours: list[Costs] = []
        peer: list[Costs] = []
        for _ in range(rounds):
            for side, done in ((throughput_atasker, ours), (throughput_executor, peer)):
                gc.collect()
                rate, cpu = side(tasks, threads=threads)
                done.append({"wall": 1e6 / rate, "cpu": (cpu or 0.0) * 1e6})
        rows.append(ThreadsRow(threads, _medians(ours), _medians(peer)))
    return rows


def _cells(costs: Costs, keys: tuple[str, ...], width: int = 8) -> str:
    return " ".join(f"{number(costs[key]):>{width}}" for key in keys)


def run(
    rounds: int = ROUNDS,
    max_queued: int = MAX_QUEUED,
    max_threads: int = MAX_THREADS,
    tasks: int = TASKS,
    calls: int = CALLS,
    as_json: bool = False,
    out: Out = print,
) -> None:
    """Measure and print tables (a), (b) and (c) (or one JSON document)."""
    queued = queued_table(max_queued, rounds, calls)
    by_threads = threads_table(max_threads, tasks, rounds)
    host = machine()
    if as_json:
        document = {
            "atasker": __version__,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": host,
            "rounds": rounds,
            "calls": calls,
            "peer": "ThreadPoolExecutor",
            "queued": [row.as_dict() for row in queued],
            "threads": [row.as_dict() for row in by_threads],
        }
        out(json.dumps(document, indent=2))
        return
    out(
        f"atasker {__version__}; {host['platform']}, {host['python']}, "
        f"{host['cpu_count']} CPUs; median of {rounds} rounds, ours and "
        "ThreadPoolExecutor's interleaved\n"
    )
    out("(a) us per task with N no-op tasks queued behind one busy thread")
    out(f"{'':>10} {'atasker':-^35}   {'ThreadPoolExecutor':-^35}")
    heading = f"{'submit':>8} {'CPU':>8} {'drain':>8} {'CPU':>8}"
    out(f"{'queued':>10} {heading}   {heading}")
    queued_keys = ("submit", "submit_cpu", "drain", "drain_cpu")
    for row in queued:
        ours, peer = _cells(row.atasker, queued_keys), _cells(row.peer, queued_keys)
        out(f"{row.queued:>10,} {ours}   {peer}")
    out(f"\n(b) us per task: {tasks:,} no-op tasks, submit all then wait")
    out(f"{'':>10} {'atasker':-^21}   {'ThreadPoolExecutor':-^21}")
    heading = f"{'wall':>10} {'CPU':>10}"
    out(f"{'threads':>10} {heading}   {heading}")
    thread_keys = ("wall", "cpu")
    for line in by_threads:
        ours, peer = (
            _cells(line.atasker, thread_keys, 10),
            _cells(line.peer, thread_keys, 10),
        )
        out(f"{line.threads:>10} {ours}   {peer}")
    out(
        f"\n(c) us per call with N tasks queued (1 running); median of "
        f"{calls} calls x {rounds} rounds"
    )
    out(f"{'queued':>10} {'get_info()':>12} {'get_tasks()':>12}")
    for row in queued:
        info = statistics.median(row.get_info_us)
        listing = statistics.median(row.get_tasks_us)
        out(f"{row.queued:>10,} {number(info):>12} {number(listing):>12}")
