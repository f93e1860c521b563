"""``python -m atasker``: the live demo (atasker/demo/); ``python -m atasker
bench``: the benchmark against concurrent.futures (atasker/benchcompare.py),
``python -m atasker bench scale``: its curves (atasker/benchscale.py)."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Sequence
from typing import Any

from . import benchcompare, benchscale, demo

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


BENCH_DESCRIPTION = """\
Compare atasker with concurrent.futures, or (with "scale") draw its curves.

Each measure runs in rounds that alternate, atasker's then the peer's
(default {ROUNDS} rounds each), and prints each side's median and min-max,
the CPU time of this process per task, then the ratio of medians
(atasker / peer) against the measure's target. Measures (--only):

{MEASURE_LIST}

"scale" prints three tables instead: (a) the cost per task with 10^3 ...
--max-queued tasks queued behind one busy thread, (b) the cost per task of
submit-all-then-wait on 1, 2, 4 ... --max-threads threads, (c) the time of
get_info() and get_tasks() with 10^3 ... --max-queued tasks queued.

Speed is reported, never asserted: the exit status is 0 whatever the
ratios. See docs/performance.md.
"""

# Options of one mode only, by dest: given to the other mode, they are an error.
COMPARE_ONLY = (
    "only",
    "samples",
    "spaced_samples",
    "mp_tasks",
    "mp_samples",
    "items",
    "queued",
)
SCALE_ONLY = ("max_queued", "max_threads", "calls")


def count_type(text: str) -> int:
    """A count option: an integer >= 1 (argparse reports the error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def names_type(text: str) -> tuple[str, ...]:
    """``--only``: measure names, comma-separated."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in benchcompare.NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown measure {', '.join(unknown) or repr(text)}; "
            f"choose from {', '.join(benchcompare.NAMES)}"
        )
    return names


def add_bench_parser(commands: Any) -> argparse.ArgumentParser:
    """The ``bench`` sub-command and its options."""
    measures = "\n".join(
        f"  {measure.name:<19} {measure.title.split(':')[0]} vs {measure.peer}, "
        f"target {measure.op} {measure.target:g}x"
        for measure in benchcompare.MEASURES
    )
    measures += (
        f"\n  {benchcompare.PRIORITY:<19} priority drain (no peer): HIGH first, "
        f"< {benchcompare.PRIORITY_LIMIT_MS:g} ms"
    )
    bench: argparse.ArgumentParser = commands.add_parser(
        "bench",
        help="compare with concurrent.futures (bench scale: the curves)",
        description=BENCH_DESCRIPTION.format(
            ROUNDS=benchcompare.ROUNDS, MEASURE_LIST=measures
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sizes = benchcompare.Sizes()
    bench.add_argument(
        "mode",
        nargs="?",
        choices=("compare", "scale"),
        default="compare",
        help="compare (the default) or scale",
    )
    bench.add_argument(
        "--rounds",
        type=count_type,
        metavar="N",
        help=f"rounds a side (default: {benchcompare.ROUNDS}; "
        f"scale: {benchscale.ROUNDS})",
    )
    bench.add_argument(
        "--json", action="store_true", help="print one JSON document, no table"
    )
    bench.add_argument(
        "--only",
        type=names_type,
        metavar="NAME[,NAME]",
        help="run these measures only (names above)",
    )
    bench.add_argument(
        "--tasks",
        type=count_type,
        metavar="N",
        help=f"thread-throughput tasks (default: {sizes.tasks:,}); scale: tasks "
        f"per row of table (b) (default: {benchscale.TASKS:,})",
    )
    for option, field, what in (
        ("--samples", "samples", "back-to-back tasks"),
        ("--spaced-samples", "spaced_samples", "spaced tasks"),
        ("--mp-tasks", "mp_tasks", "process-throughput tasks"),
        ("--mp-samples", "mp_samples", "process-latency tasks"),
        ("--items", "items", "map items"),
        ("--queued", "queued", "memory: tasks queued"),
    ):
        default = getattr(sizes, field)
        bench.add_argument(
            option,
            type=count_type,
            metavar="N",
            help=f"{what} a round (default: {default:,})",
        )
    bench.add_argument(
        "--max-queued",
        type=count_type,
        metavar="N",
        help="scale: the most tasks queued in tables (a) and (c) "
        f"(default: {benchscale.MAX_QUEUED:,}; 1000000 for 10^6)",
    )
    bench.add_argument(
        "--max-threads",
        type=count_type,
        metavar="N",
        help="scale: the most threads in table (b) "
        f"(default: {benchscale.MAX_THREADS})",
    )
    bench.add_argument(
        "--calls",
        type=count_type,
        metavar="N",
        help="scale: get_info() and get_tasks() calls a round "
        f"(default: {benchscale.CALLS})",
    )
    return bench


def run_bench(bench: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Run ``python -m atasker bench`` with the parsed ``args``."""
    other_mode = SCALE_ONLY if args.mode == "compare" else COMPARE_ONLY
    for dest in other_mode:
        if getattr(args, dest) is not None:
            option = "--" + dest.replace("_", "-")
            bench.error(f"{option} does not apply to bench {args.mode}")
    if args.mode == "scale":
        benchscale.run(
            rounds=args.rounds or benchscale.ROUNDS,
            max_queued=args.max_queued or benchscale.MAX_QUEUED,
            max_threads=args.max_threads or benchscale.MAX_THREADS,
            tasks=args.tasks or benchscale.TASKS,
            calls=args.calls or benchscale.CALLS,
            as_json=args.json,
        )
        return 0
    sizes = benchcompare.Sizes()
    for field in dataclasses.fields(sizes):
        value = getattr(args, field.name)
        if value is not None:
            setattr(sizes, field.name, value)
    benchcompare.run(
        rounds=args.rounds or benchcompare.ROUNDS,
        sizes=sizes,
        names=args.only or benchcompare.NAMES,
        as_json=args.json,
    )
    return 0


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
    bench = add_bench_parser(commands)
    args = parser.parse_args(argv)
    if args.command == "bench":
        return run_bench(bench, args)
    return demo.run(args.seconds, sys.stdout, plain=args.plain)


if __name__ == "__main__":
    sys.exit(main())
