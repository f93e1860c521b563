"""Scale-out benchmark: the built-in process pool vs a local Dask cluster.

Run from a clone, with Dask installed (``pip install -e '.[dask]'``)::

    python bench/scaleout.py

which is ``--tasks 1000 --ms 10 --rounds 3``.

Each task sleeps ``--ms`` milliseconds (the simulated work) in a worker
process. The same tasks go through:

- the built-in process pool: ``create_mp_pool(processes=2)``, ``tt=TT_MP``;
- a 2-worker Dask ``LocalCluster`` (one thread per worker process) behind
  ``add_pool(size=2)``, then ``add_pool(size=8)``;
- the same cluster on its own (``client.submit``, no atasker), for what
  the cluster costs by itself.

A round submits every task, then waits for all of them. The pools start
(and their workers are up) before the first round: start-up is not
measured. Prints a Markdown table (the median of the rounds, and their
spread) and the machine. Nothing here is a test: pytest does not collect
bench/.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import statistics
import time
from collections.abc import Iterator
from typing import Any, Callable

from atasker import TT_MP, TaskSupervisor, background_task, wait_completed

WORKERS = 2


def work(seconds: float) -> float:
    """The task: ``seconds`` of simulated work."""
    time.sleep(seconds)
    return seconds


def _supervisor(name: str) -> TaskSupervisor:
    supervisor = TaskSupervisor(supervisor_id=name)
    # The whole batch is queued at once: long queue waits are the point.
    supervisor.timeout_warning = supervisor.timeout_critical = None
    return supervisor


def _rounds(run: Callable[[], None], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return times


def _task_rounds(
    supervisor: TaskSupervisor, tasks: int, seconds: float, rounds: int, **options: Any
) -> list[float]:
    """Rounds of ``tasks`` tasks with ``options`` on a started supervisor,
    after a warm-up; the supervisor is stopped at the end."""
    try:
        task = background_task(work, supervisor=supervisor, **options)
        wait_completed([task(0) for _ in range(WORKERS * 2)], timeout=60)

        def run() -> None:
            wait_completed([task(seconds) for _ in range(tasks)], timeout=600)

        return _rounds(run, rounds)
    finally:
        supervisor.stop()


def builtin(tasks: int, seconds: float, rounds: int) -> list[float]:
    """The built-in process pool, ``WORKERS`` processes."""
    supervisor = _supervisor("bench-builtin")
    supervisor.create_mp_pool(processes=WORKERS)
    supervisor.start()
    assert supervisor.mp_pool is not None
    supervisor.mp_pool.wait_workers(WORKERS, timeout=60)
    return _task_rounds(supervisor, tasks, seconds, rounds, tt=TT_MP)


@contextlib.contextmanager
def _cluster() -> Iterator[Any]:
    """A Dask client of a local cluster of ``WORKERS`` processes, up."""
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=WORKERS,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        # The scheduler still serves HTTP: on a free port, not 8787, which
        # another cluster may hold (Dask warns when it moves).
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )
    with cluster, Client(cluster) as client:
        client.wait_for_workers(WORKERS, timeout=60)
        yield client


def dask(tasks: int, seconds: float, rounds: int, size: int) -> list[float]:
    """The Dask cluster, behind ``add_pool(size=size)``."""
    with _cluster() as client:
        supervisor = _supervisor(f"bench-dask-{size}")
        supervisor.add_pool("dask", client.get_executor(), size=size)
        supervisor.start()
        return _task_rounds(supervisor, tasks, seconds, rounds, pool="dask")


def dask_alone(tasks: int, seconds: float, rounds: int) -> list[float]:
    """The Dask cluster on its own: ``client.submit``, no atasker (what the
    cluster costs by itself)."""
    from dask.distributed import wait

    with _cluster() as client:
        wait([client.submit(work, 0, pure=False) for _ in range(WORKERS * 2)])

        def run() -> None:
            futures = [client.submit(work, seconds, pure=False) for _ in range(tasks)]
            wait(futures, timeout=600)
            assert all(future.status == "finished" for future in futures)

        return _rounds(run, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=1000, help="tasks per round")
    parser.add_argument("--ms", type=float, default=10, help="each task's work, ms")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median")
    args = parser.parse_args()
    # Dask logs its workers' comings and goings at INFO; keep the table clean.
    logging.getLogger("distributed").setLevel(logging.WARNING)
    seconds = args.ms / 1000

    rows = [
        ("built-in process pool, 2 processes (`tt=TT_MP`)", builtin, {}),
        ("Dask LocalCluster, 2 workers, `add_pool(size=2)`", dask, {"size": 2}),
        ("Dask LocalCluster, 2 workers, `add_pool(size=8)`", dask, {"size": 8}),
        (
            "Dask LocalCluster, 2 workers, `client.submit` alone (no atasker)",
            dask_alone,
            {},
        ),
    ]
    ideal = args.tasks * seconds / WORKERS
    print(
        f"{args.tasks} tasks of {args.ms:g} ms, {WORKERS} worker processes, "
        f"median of {args.rounds} rounds (ideal: {ideal:.2f} s)\n"
    )
    print("| pool | wall time (s) | tasks/s | rounds: min-max (s) |")
    print("|---|---:|---:|---:|")
    for label, bench, extra in rows:
        times = bench(args.tasks, seconds, args.rounds, **extra)  # type: ignore[operator]
        wall = statistics.median(times)
        spread = f"{min(times):.2f}-{max(times):.2f}"
        print(
            f"| {label} | {wall:.2f} | {args.tasks / wall:.0f} | {spread} |", flush=True
        )
    cpus = (
        len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count()
    )
    print(f"\n{platform.platform()}, Python {platform.python_version()}, {cpus} CPUs")


if __name__ == "__main__":
    main()
