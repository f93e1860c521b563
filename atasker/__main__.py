"""``python -m atasker``: a live demo of the supervisor; ``python -m atasker bench``.

The demo feeds a small pool a mix of priorities and delays faster than it
drains and shows, refreshed in place on a terminal (plain lines otherwise),
what runs, what waits by priority, and what finished; then how long each
priority waited in the queue.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from typing import TextIO

from . import benchmark
from .api import background_task
from .core.constants import (
    TASK_CRITICAL,
    TASK_HIGH,
    TASK_LOW,
    TASK_NORMAL,
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
)
from .core.errors import TaskError
from .core.task import TaskInfo
from .supervisor import TaskSupervisor

PRIORITY_NAMES = {
    TASK_CRITICAL: "CRITICAL",
    TASK_HIGH: "HIGH",
    TASK_NORMAL: "NORMAL",
    TASK_LOW: "LOW",
}
# How the demo's load is mixed: (priority, weight).
PRIORITY_MIX = ((TASK_LOW, 40), (TASK_NORMAL, 35), (TASK_HIGH, 20), (TASK_CRITICAL, 5))
SUBMIT_INTERVAL = 0.02  # 50 tasks a second, about twice what the pool drains
REFRESH_INTERVAL = 0.25


def simulated_work(seconds: float, fail: bool) -> float:
    """A task of the demo: 'work' for a while, sometimes fail."""
    time.sleep(seconds)
    if fail:
        raise TaskError("simulated failure")
    return seconds


def feed(
    supervisor: TaskSupervisor, stop: threading.Event, tasks: list[TaskInfo]
) -> None:
    """Submit tasks until ``stop`` is set."""
    rng = random.Random(7)
    priorities = [p for p, _ in PRIORITY_MIX]
    weights = [w for _, w in PRIORITY_MIX]
    while not stop.is_set():
        priority = rng.choices(priorities, weights)[0]
        delay = rng.uniform(0.2, 1.5) if rng.random() < 0.2 else None
        run = background_task(
            simulated_work,
            priority=priority,
            delay=delay,
            name=f"demo.{PRIORITY_NAMES[priority].lower()}",
            supervisor=supervisor,
        )
        tasks.append(run(rng.uniform(0.05, 0.4), rng.random() < 0.05))
        stop.wait(SUBMIT_INTERVAL)


def render(supervisor: TaskSupervisor, left: float) -> list[str]:
    """The table of the supervisor's state, as lines."""
    info = supervisor.get_info()
    queued = "  ".join(
        f"{PRIORITY_NAMES[p]} {info.queued[p]:>3}" for p, _ in reversed(PRIORITY_MIX)
    )
    return [
        f"atasker demo: pool {info.thread_pool_size} + {info.thread_reserve_normal} RN"
        f" + {info.thread_reserve_high} RH, {max(left, 0):4.1f} s left",
        f"  running {info.thread_tasks_count:>3}"
        f"   threads {info.thread_pool_threads:>3}",
        f"  queued   {queued}",
        f"  delayed {info.delayed:>3}   completed {info.completed:>4}"
        f"   failed {info.failed:>3}   canceled {info.canceled:>3}",
    ]


def summary(tasks: list[TaskInfo]) -> list[str]:
    """How long each priority waited in the queue, and how tasks ended."""
    lines = [f"submitted {len(tasks)} tasks"]
    for priority, _ in PRIORITY_MIX[::-1]:
        waits = [
            t.time_started - t.time_queued
            for t in tasks
            if t.priority == priority and t.time_started is not None
        ]
        if waits:
            lines.append(
                f"  {PRIORITY_NAMES[priority]:<8} started {len(waits):>4}, queue wait "
                f"median {statistics.median(waits) * 1000:7.1f} ms, "
                f"max {max(waits) * 1000:7.1f} ms"
            )
    completed = sum(t.status == TASK_STATUS_COMPLETED for t in tasks)
    canceled = sum(t.status == TASK_STATUS_CANCELED for t in tasks)
    failed = sum(t.exception is not None for t in tasks)
    lines.append(
        f"  completed {completed}, failed {failed} (on purpose),"
        f" canceled at stop {canceled}"
    )
    lines.append(f"  every task ended in a final state: {all(t.done() for t in tasks)}")
    return lines


def demo(seconds: float, out: TextIO) -> None:
    """Run the live demo for ``seconds``."""
    supervisor = TaskSupervisor(supervisor_id="demo")
    supervisor.set_thread_pool(pool_size=4, reserve_normal=2, reserve_high=1)
    supervisor.log_exceptions = False  # failures are counted in the table
    supervisor.timeout_warning = supervisor.timeout_critical = None
    supervisor.start()
    stop = threading.Event()
    tasks: list[TaskInfo] = []
    producer = threading.Thread(target=feed, args=(supervisor, stop, tasks))
    producer.start()
    in_place = out.isatty()
    deadline = time.monotonic() + seconds
    shown = 0
    next_plain = 0.0
    try:
        while True:
            left = deadline - time.monotonic()
            lines = render(supervisor, left)
            if in_place:
                if shown:
                    out.write(f"\x1b[{shown}F\x1b[J")
                out.write("\n".join(lines) + "\n")
                shown = len(lines)
            elif time.monotonic() >= next_plain:
                out.write(" | ".join(line.strip() for line in lines[1:]) + "\n")
                next_plain = time.monotonic() + 1.0
            out.flush()
            if left <= 0:
                break
            stop.wait(min(REFRESH_INTERVAL, left))
    finally:
        stop.set()
        producer.join()
        out.write("stopping: queued tasks get 2 s to run, the rest are canceled\n")
        supervisor.stop(wait=2)
        for task in tasks:  # those still running at the deadline finish soon
            task.wait()
    out.write("\n".join(summary(tasks)) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m atasker``."""
    parser = argparse.ArgumentParser(prog="python -m atasker", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="demo length")
    commands = parser.add_subparsers(dest="command")
    bench = commands.add_parser("bench", help="compare with ThreadPoolExecutor")
    bench.add_argument("--rounds", type=int, default=5)
    bench.add_argument("--tasks", type=int, default=50_000, help="thread tasks")
    bench.add_argument("--mp-tasks", type=int, default=5_000, help="process tasks")
    args = parser.parse_args(argv)
    if args.command == "bench":
        benchmark.run(rounds=args.rounds, tasks=args.tasks, mp_tasks=args.mp_tasks)
    else:
        demo(args.seconds, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
