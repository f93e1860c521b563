"""``python -m atasker bench``: atasker against concurrent.futures, in rounds.

For each measure the rounds alternate, ours then the peer's (A B A B ...), so
that whatever else the machine does meanwhile (another job, a change of clock
speed) falls on both sides alike; each side's median of its rounds is
compared, the ratio of medians checked against the measure's bar. A round
records wall time and this process's CPU time (``time.process_time``), which
other jobs on a shared machine disturb much less. The code each side runs is
in :mod:`atasker.benchmark`.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import json
import statistics
import time
from typing import Callable

from . import __version__
from .benchmark import (
    MAP_CHUNK,
    PROCESSES,
    SPACING,
    THREADS,
    Out,
    Round,
    latency_atasker,
    latency_executor,
    machine,
    map_atasker,
    map_executor,
    memory_atasker,
    memory_executor,
    number,
    priority_drain,
    spread,
    throughput_atasker,
    throughput_executor,
)
from .core.constants import TT_MP


@dataclasses.dataclass(frozen=True)
class Measure:
    """A measure compared with concurrent.futures.

    Attributes:
        name: its name for ``--only``.
        title: what runs, with ``{size}`` for the size.
        peer: the class it is compared with.
        unit: of the rounds' values.
        higher_is_better: True for rates, False for times and bytes.
        target: the bar on the ratio of medians, ours / peer's: at least it
            for a rate, at most it otherwise.
        size: the :class:`Sizes` field that is its size.
        ours, peer_round: one round of each side, given the size.
        cpu_note: what its CPU column counts, if not all of the work.
        counted: what its CPU time is per (a task; a map's item).
    """

    name: str
    title: str
    peer: str
    unit: str
    higher_is_better: bool
    target: float
    size: str
    ours: Callable[[int], Round]
    peer_round: Callable[[int], Round]
    cpu_note: str = ""
    counted: str = "task"

    @property
    def op(self) -> str:
        return ">=" if self.higher_is_better else "<="


@dataclasses.dataclass
class Sizes:
    """How much each measure does in a round (the CLI's options)."""

    tasks: int = 50_000
    samples: int = 2_000
    spaced_samples: int = 1_000
    mp_tasks: int = 5_000
    mp_samples: int = 500
    items: int = 100_000
    queued: int = 100_000


TPE = "ThreadPoolExecutor"
PPE = "ProcessPoolExecutor"
PARENT_CPU = (
    "CPU: this process only, i.e. the supervisor's (or executor's) side; "
    "the worker processes' time is not in it"
)
MEASURES = (
    Measure(
        name="thread-throughput",
        title=(
            f"thread throughput: {{size:,}} no-op tasks on {THREADS} threads, "
            "submit all then wait"
        ),
        peer=TPE,
        unit="tasks/s",
        higher_is_better=True,
        target=1.5,
        size="tasks",
        ours=throughput_atasker,
        peer_round=throughput_executor,
    ),
    Measure(
        name="back-to-back",
        title="back-to-back latency: f().get() vs submit(f).result(), {size:,} times",
        peer=TPE,
        unit="us",
        higher_is_better=False,
        target=1.0,
        size="samples",
        ours=latency_atasker,
        peer_round=latency_executor,
    ),
    Measure(
        name="spaced",
        title=(
            f"spaced latency: as back-to-back, one task every {SPACING * 1000:g} ms, "
            "{size:,} of them"
        ),
        peer=TPE,
        unit="us",
        higher_is_better=False,
        target=1.0,
        size="spaced_samples",
        ours=functools.partial(latency_atasker, period=SPACING),
        peer_round=functools.partial(latency_executor, period=SPACING),
    ),
    Measure(
        name="memory",
        title="memory: bytes per queued task, {size:,} queued behind one busy thread",
        peer=TPE,
        unit="B/task",
        higher_is_better=False,
        target=0.35,
        size="queued",
        ours=memory_atasker,
        peer_round=memory_executor,
    ),
    Measure(
        name="process-throughput",
        title=(
            f"process throughput: {{size:,}} no-op tasks on {PROCESSES} processes, "
            "submit all then wait"
        ),
        peer=PPE,
        unit="tasks/s",
        higher_is_better=True,
        target=2.0,
        size="mp_tasks",
        ours=functools.partial(throughput_atasker, tt=TT_MP),
        peer_round=functools.partial(throughput_executor, tt=TT_MP),
        cpu_note=PARENT_CPU,
    ),
    Measure(
        name="process-latency",
        title=(
            f"process idle latency: f().get() vs submit(f).result() on {PROCESSES} "
            "idle processes, {size:,} in a row"
        ),
        peer=PPE,
        unit="us",
        higher_is_better=False,
        target=0.6,
        size="mp_samples",
        ours=functools.partial(latency_atasker, tt=TT_MP),
        peer_round=functools.partial(latency_executor, tt=TT_MP),
        cpu_note=PARENT_CPU,
    ),
    Measure(
        name="map",
        title=f"map: {{size:,}} items, chunksize={MAP_CHUNK}, on {PROCESSES} processes",
        peer=PPE,
        unit="items/s",
        higher_is_better=True,
        target=1.0,
        size="items",
        ours=map_atasker,
        peer_round=map_executor,
        cpu_note=PARENT_CPU,
        counted="item",
    ),
)
ROUNDS = 7
PRIORITY = "priority"
PRIORITY_LOW, PRIORITY_HIGH = 1000, 10
PRIORITY_LIMIT_MS = 50.0
NAMES = (*(measure.name for measure in MEASURES), PRIORITY)


@dataclasses.dataclass
class Comparison:
    """The rounds of both sides of one measure."""

    measure: Measure
    size: int
    ours: list[Round] = dataclasses.field(default_factory=list)
    peer: list[Round] = dataclasses.field(default_factory=list)

    @property
    def ratio(self) -> float:
        """Ours / peer's, of the medians of the rounds' values."""
        return statistics.median(r.value for r in self.ours) / statistics.median(
            r.value for r in self.peer
        )

    @property
    def met(self) -> bool:
        if self.measure.higher_is_better:
            return self.ratio >= self.measure.target
        return self.ratio <= self.measure.target

    def as_dict(self) -> dict[str, object]:
        measure = self.measure
        return {
            "title": measure.title.format(size=self.size),
            "unit": measure.unit,
            "size": self.size,
            "higher_is_better": measure.higher_is_better,
            "ours": _side("atasker", self.ours),
            "peer": _side(measure.peer, self.peer),
            "ratio": self.ratio,
            "target": {"of": "ratio", "op": measure.op, "value": measure.target},
            "met": self.met,
            "cpu_note": measure.cpu_note or None,
            "cpu_per": measure.counted,
        }


def _side(name: str, rounds: list[Round]) -> dict[str, object]:
    cpu = [r.cpu_per_task * 1e6 for r in rounds if r.cpu_per_task is not None]
    return {
        "name": name,
        **spread([r.value for r in rounds]),
        "cpu_us_per_task": spread(cpu) if cpu else None,
    }


def compare(measure: Measure, size: int, rounds: int) -> Comparison:
    """``rounds`` rounds of each side of ``measure``, interleaved."""
    result = Comparison(measure, size)
    for _ in range(rounds):
        for side, done in (
            (measure.ours, result.ours),
            (measure.peer_round, result.peer),
        ):
            # Neither side pays for collecting the other's garbage.
            gc.collect()
            done.append(side(size))
    return result


@dataclasses.dataclass
class PriorityCheck:
    """The rounds of :func:`~atasker.benchmark.priority_drain` (no peer: the
    executors have no priorities)."""

    high_first: list[bool] = dataclasses.field(default_factory=list)
    drain_ms: list[float] = dataclasses.field(default_factory=list)

    @property
    def met(self) -> bool:
        return (
            all(self.high_first)
            and statistics.median(self.drain_ms) < PRIORITY_LIMIT_MS
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "title": TITLE_PRIORITY,
            "unit": "ms",
            "size": PRIORITY_LOW + PRIORITY_HIGH,
            "higher_is_better": False,
            "ours": {"name": "atasker", **spread(self.drain_ms)},
            "peer": None,
            "high_first_rounds": sum(self.high_first),
            "ratio": None,
            "target": {
                "of": "median ms, and HIGH first in every round",
                "op": "<",
                "value": PRIORITY_LIMIT_MS,
            },
            "met": self.met,
        }


TITLE_PRIORITY = (
    f"priority: {THREADS} busy threads, {PRIORITY_LOW:,} LOW then "
    f"{PRIORITY_HIGH} HIGH queued, then released (no peer)"
)


def check_priority(rounds: int) -> PriorityCheck:
    """``rounds`` rounds of the priority drain."""
    result = PriorityCheck()
    for _ in range(rounds):
        gc.collect()
        high_first, seconds = priority_drain(PRIORITY_LOW, PRIORITY_HIGH)
        result.high_first.append(high_first)
        result.drain_ms.append(seconds * 1000)
    return result


def _range(values: list[float]) -> str:
    return f"{number(min(values))}–{number(max(values))}"


def _text(result: Comparison) -> list[str]:
    measure = result.measure
    lines = [measure.title.format(size=result.size)]
    for name, rounds in (("atasker", result.ours), (measure.peer, result.peer)):
        values = [r.value for r in rounds]
        line = (
            f"  {name:<19} {number(statistics.median(values)):>9} "
            f"{measure.unit:<7} ({_range(values)})"
        )
        cpu = [r.cpu_per_task * 1e6 for r in rounds if r.cpu_per_task is not None]
        if cpu:
            line = (
                f"{line:<62} CPU {number(statistics.median(cpu)):>6} "
                f"us/{measure.counted} ({_range(cpu)})"
            )
        lines.append(line.rstrip())
    if measure.cpu_note:
        lines.append(f"  ({measure.cpu_note})")
    lines.append(
        f"  ratio of medians {result.ratio:.2f}x, target {measure.op} "
        f"{measure.target:g}x: {'met' if result.met else 'NOT MET'}"
    )
    return lines


def _priority_text(result: PriorityCheck) -> list[str]:
    return [
        TITLE_PRIORITY,
        f"  atasker drained all in {number(statistics.median(result.drain_ms))} ms"
        f" (min–max {_range(result.drain_ms)}); HIGH first in "
        f"{sum(result.high_first)}/{len(result.high_first)} rounds",
        f"  target: HIGH first in every round, drained in < "
        f"{PRIORITY_LIMIT_MS:g} ms: {'met' if result.met else 'NOT MET'}",
    ]


def run(
    rounds: int = ROUNDS,
    sizes: Sizes | None = None,
    names: tuple[str, ...] = NAMES,
    as_json: bool = False,
    out: Out = print,
) -> None:
    """Compare each measure of ``names`` in ``rounds`` interleaved rounds a
    side; print a report as each finishes (or one JSON document at the end)."""
    sizes = sizes or Sizes()
    host = machine()
    if not as_json:
        out(
            f"atasker {__version__} vs concurrent.futures: {rounds} rounds a side, "
            "interleaved (ours, peer's, ours, ...); median and min–max of the rounds"
        )
        out(
            f"machine: {host['platform']}, {host['python']}, {host['cpu_count']} CPUs\n"
        )
    results: dict[str, Comparison | PriorityCheck] = {}
    for measure in MEASURES:
        if measure.name in names:
            compared = compare(measure, getattr(sizes, measure.size), rounds)
            results[measure.name] = compared
            if not as_json:
                out("\n".join(_text(compared)) + "\n")
    if PRIORITY in names:
        check = results[PRIORITY] = check_priority(rounds)
        if not as_json:
            out("\n".join(_priority_text(check)) + "\n")
    if as_json:
        out(
            json.dumps(
                {
                    "atasker": __version__,
                    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "machine": host,
                    "rounds": rounds,
                    "measures": {
                        name: result.as_dict() for name, result in results.items()
                    },
                },
                indent=2,
            )
        )
        return
    out("summary: ratio of medians, atasker / concurrent.futures")
    for name, result in results.items():
        if isinstance(result, Comparison):
            figure = f"{result.ratio:.2f}x"
            target = f"{result.measure.op} {result.measure.target:g}x"
        else:
            figure = f"{number(statistics.median(result.drain_ms))} ms"
            target = f"< {PRIORITY_LIMIT_MS:g} ms, HIGH first"
        out(
            f"  {name:<19} {figure:>9}  target {target:<20} "
            f"{'met' if result.met else 'NOT MET'}"
        )
