"""``python -m atasker``: the live demo (atasker/demo/); ``python -m atasker
bench``: the benchmark (atasker/benchmark.py)."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import Any

from . import benchmark, demo

DESCRIPTION = """\
A live demo of atasker's task supervisor, drawn from its event bus.

It runs thread, process and coroutine tasks of every priority on a thread
pool of 4 + 2 RN + 1 RH threads (RN, RH: threads in reserve for NORMAL and
HIGH priority tasks, so LOW tasks use at most 4, NORMAL 6, HIGH 7; CRITICAL
tasks always start), 2 worker processes and an asyncio loop, plus a class
task that emits its progress. Early on, then every 5 seconds, a worker
process crashes and a process task is killed at its time limit (each fails
that one task; the pool goes on), a failed attempt is retried, and a running
task is canceled. The view counts tasks by kind, state and priority, with
the queue waits and the tasks done per second.

On a terminal the view is redrawn in place, in colour unless NO_COLOR is
set; otherwise, or with --plain, it prints plain lines: the notable events,
and a status line every second. At the end the queued tasks drain, the
supervisor stops and a summary is printed.

Exit status: 0 at the end; 130 after Ctrl-C, which stops the demo early
(the queued tasks canceled) and prints the summary; 2 for a usage error.
"""


def seconds_type(text: str) -> float:
    """``--seconds``: a finite number > 0 (argparse reports the error)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds, got {text!r}"
        ) from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds > 0, got {text!r}"
        )
    return value


def plain_parser(**kwargs: Any) -> argparse.ArgumentParser:
    """An ArgumentParser whose help is plain text (from Python 3.14 it is in
    colour by default on a terminal)."""
    if sys.version_info >= (3, 14):
        kwargs["color"] = False
    return argparse.ArgumentParser(**kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m atasker``; the exit status."""
    parser = plain_parser(
        prog="python -m atasker",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--seconds",
        type=seconds_type,
        default=10.0,
        help="how long the demo runs (default: 10)",
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        help="print plain lines, even on a terminal",
    )
    commands = parser.add_subparsers(dest="command")
    bench = commands.add_parser("bench", help="compare with ThreadPoolExecutor")
    bench.add_argument("--rounds", type=int, default=5)
    bench.add_argument("--tasks", type=int, default=50_000, help="thread tasks")
    bench.add_argument("--mp-tasks", type=int, default=5_000, help="process tasks")
    args = parser.parse_args(argv)
    if args.command == "bench":
        benchmark.run(rounds=args.rounds, tasks=args.tasks, mp_tasks=args.mp_tasks)
        return 0
    return demo.run(args.seconds, sys.stdout, plain=args.plain)


if __name__ == "__main__":
    sys.exit(main())
