"""``python -m atasker bench``: every measure and the scale tables run, with
tiny sizes, and report what they should. Speed is never asserted."""

from __future__ import annotations

import json
import math
import multiprocessing
import statistics
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import WAIT

import atasker
from atasker import benchcompare, benchscale
from atasker.__main__ import main
from atasker.benchmark import Round

TINY = [
    "--rounds", "1",
    "--tasks", "200",
    "--samples", "20",
    "--spaced-samples", "10",
    "--mp-tasks", "40",
    "--mp-samples", "10",
    "--items", "400",
    "--queued", "200",
]  # fmt: skip
TINY_SCALE = [
    "scale",
    "--rounds", "1",
    "--max-queued", "1000",
    "--max-threads", "2",
    "--tasks", "200",
    "--calls", "2",
]  # fmt: skip


@pytest.fixture(autouse=True)
def nothing_left() -> Iterator[None]:
    """No thread or child process of a round outlives the run."""
    threads, children = set(threading.enumerate()), multiprocessing.active_children()
    yield
    for thread in set(threading.enumerate()) - threads:
        thread.join(WAIT)
    for child in set(multiprocessing.active_children()) - set(children):
        child.join(WAIT)
    assert set(threading.enumerate()) <= threads
    assert set(multiprocessing.active_children()) <= set(children)


def bench_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    assert main(["bench", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_measure_reports_both_sides_and_the_ratio(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = bench_json(capsys, *TINY)
    assert report["atasker"] == atasker.__version__
    assert set(report["machine"]) == {"platform", "machine", "python", "cpu_count"}
    assert report["rounds"] == 1
    assert list(report["measures"]) == list(benchcompare.NAMES)
    for name, measure in report["measures"].items():
        ours = measure["ours"]
        assert len(ours["samples"]) == 1
        assert ours["min"] <= ours["median"] <= ours["max"]
        assert isinstance(measure["met"], bool)
        if name == benchcompare.PRIORITY:
            assert measure["peer"] is None and measure["high_first_rounds"] == 1
            continue
        peer = measure["peer"]
        assert len(peer["samples"]) == 1
        assert measure["ratio"] == ours["median"] / peer["median"]
        assert math.isfinite(measure["ratio"]) and measure["ratio"] > 0
        assert measure["target"]["op"] in (">=", "<=")
        has_cpu = name != "memory"
        assert (ours["cpu_us_per_task"] is not None) is has_cpu
        assert (peer["cpu_us_per_task"] is not None) is has_cpu


def test_rounds_alternate_ours_and_the_peers() -> None:
    order: list[str] = []

    def side(name: str) -> Any:
        def one_round(size: int) -> Round:
            order.append(name)
            return Round(float(size), None)

        return one_round

    measure = benchcompare.Measure(
        name="fake",
        title="fake, {size}",
        peer="Peer",
        unit="tasks/s",
        higher_is_better=True,
        target=1.5,
        size="tasks",
        ours=side("ours"),
        peer_round=side("peer"),
    )
    result = benchcompare.compare(measure, 3, rounds=3)
    assert order == ["ours", "peer"] * 3
    assert result.ratio == 1.0 and not result.met


def test_the_table_of_a_subset(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "--only", "back-to-back,priority", "--rounds", "2"]
    assert main([*argv, "--samples", "20"]) == 0
    out = capsys.readouterr().out
    assert "back-to-back latency" in out and "thread throughput" not in out
    assert "ratio of medians" in out and "target <= 1x" in out
    assert "HIGH first in 2/2 rounds" in out
    assert out.splitlines()[-2].split()[0] == "back-to-back"
    assert out.splitlines()[-1].split()[0] == "priority"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--rounds", "0"], "--rounds"),
        (["--rounds", "x"], "--rounds"),
        (["--tasks", "-5"], "--tasks"),
        (["--only", "thread-throughput,nope"], "nope"),
        (["scale", "--only", "map"], "--only"),
        (["scale", "--queued", "10"], "--queued"),
        (["--max-queued", "1000"], "--max-queued"),
    ],
)
def test_bad_options_are_usage_errors(
    capsys: pytest.CaptureFixture[str], args: list[str], named: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", *args])
    assert exit_info.value.code == 2
    assert named in capsys.readouterr().err


def test_scale_tables_in_json(capsys: pytest.CaptureFixture[str]) -> None:
    report = bench_json(capsys, *TINY_SCALE)
    assert report["rounds"] == 1
    [row] = report["queued"]
    assert row["queued"] == 1000
    for side in ("atasker_us_per_task", "peer_us_per_task"):
        assert set(row[side]) == {"submit", "submit_cpu", "drain", "drain_cpu"}
        assert all(value > 0 for value in row[side].values())
    for lookup in ("get_info_us", "get_tasks_us"):
        assert len(row[lookup]["samples"]) == 2
        assert row[lookup]["median"] == statistics.median(row[lookup]["samples"])
    assert [line["threads"] for line in report["threads"]] == [1, 2]
    for line in report["threads"]:
        assert set(line["atasker_us_per_task"]) == {"wall", "cpu"}


def test_scale_tables_in_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", *TINY_SCALE]) == 0
    out = capsys.readouterr().out
    for heading in ("(a) us per task", "(b) us per task", "(c) us per call"):
        assert heading in out
    assert "get_info()" in out and "get_tasks()" in out


@pytest.mark.parametrize(
    ("first", "factor", "top", "expected"),
    [
        (1000, 10, 100_000, [1000, 10_000, 100_000]),
        (1000, 10, 50_000, [1000, 10_000, 50_000]),
        (1000, 10, 10, [10]),
        (1, 2, 64, [1, 2, 4, 8, 16, 32, 64]),
        (1, 2, 1, [1]),
    ],
)
def test_levels(first: int, factor: int, top: int, expected: list[int]) -> None:
    assert benchscale.levels(first, factor, top) == expected
