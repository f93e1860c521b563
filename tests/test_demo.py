"""``python -m atasker``: the live demo, run as a new user runs it (a child
process), and its view fed events by hand."""

from __future__ import annotations

import os
import queue
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from atasker import TASK_LOW, TaskEvent
from atasker.demo.catalogue import CRASH, FLAKY, PROCESS, THREAD, Kind, feed_name
from atasker.demo.view import View

# Seconds a one-second demo (with its stop) may take on a slow machine; also
# the bound on a demo ended by Ctrl-C.
CHILD_TIMEOUT = 60.0
ANSI = "\x1b["
INCIDENT_COUNT = re.compile(
    r"^  (worker crashes|time limits|retries|cancels) +(\d+) ", re.MULTILINE
)


def demo_env(**extra: str) -> dict[str, str]:
    """The environment without what changes the demo's output."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("NO_COLOR", "FORCE_COLOR", "PYTHON_COLORS", "COLUMNS", "LINES")
    }
    env.update(extra)
    return env


def demo_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "atasker", *args]


def run_demo(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        demo_command(*args),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        env=demo_env(**env),
    )


def assert_no_process_left(group: int) -> None:
    """No process of the demo's group (its worker processes) is left."""
    if sys.platform != "win32":
        with pytest.raises(ProcessLookupError):
            os.killpg(group, 0)


def test_plain_run_shows_every_incident_and_ends_cleanly() -> None:
    with subprocess.Popen(
        demo_command("--seconds", "1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=demo_env(),
        start_new_session=True,  # a process group of its own, with its workers
    ) as child:
        try:
            stdout, stderr = child.communicate(timeout=CHILD_TIMEOUT)
        finally:
            if child.poll() is None:
                child.kill()
    assert child.returncode == 0, stderr
    assert stderr == ""
    assert_no_process_left(child.pid)
    assert ANSI not in stdout  # not a terminal: plain lines
    first = stdout.splitlines()[0]
    assert first.startswith("atasker demo for 1 s") and "RN/RH: in reserve" in first
    log, _, summary = stdout.partition("\natasker demo: ran ")
    assert summary, stdout
    # The notable events, a line each, as they came.
    for tag in ("crash", "time limit", "pool", "retry", "cancel", "class task"):
        assert re.search(rf"^ +\d+\.\ds {tag} ", log, re.MULTILINE), (tag, log)
    assert re.search(
        r"^ +\d+\.\ds status +thread: .*\| process: .*\| coroutine: ", log, re.M
    )
    assert "demo/indexer: emitted progress" in log
    counts = dict(INCIDENT_COUNT.findall(summary))
    assert set(counts) == {"worker crashes", "time limits", "retries", "cancels"}
    assert all(int(n) >= 1 for n in counts.values()), counts
    assert re.search(r"class task demo/indexer: stopped at \d+/\d+ batches", summary)
    assert "every task ended in a final state: True" in summary


@pytest.mark.parametrize(
    "args",
    [
        ["--seconds", "-1"],
        ["--seconds=-1"],
        ["--seconds", "0"],
        ["--seconds", "nan"],
        ["--seconds", "inf"],
        ["--seconds", "ten"],
    ],
)
def test_seconds_must_be_a_positive_number(args: list[str]) -> None:
    out = run_demo(*args)
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.startswith("usage: python -m atasker")
    assert "argument --seconds:" in out.stderr
    assert "Traceback" not in out.stderr


def test_help_is_plain_text() -> None:
    # Even where colour is asked for (Python 3.14's argparse would use it).
    out = run_demo("--help", FORCE_COLOR="1", PYTHON_COLORS="1")
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    assert ANSI not in out.stdout
    assert out.stdout.startswith("usage: python -m atasker")
    assert "RN, RH: threads in reserve for NORMAL and" in out.stdout
    assert "130 after Ctrl-C" in out.stdout


def _lines(stream: IO[str]) -> tuple[queue.Queue[str | None], threading.Thread]:
    """The stream's lines as they come, then None at its end."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read, name="demo_output")
    reader.start()
    return lines, reader


@pytest.mark.parametrize(
    "to_the_group",
    [
        False,
        # As a terminal sends it: to the worker processes too, even those
        # still starting.
        pytest.param(
            True,
            marks=pytest.mark.skipif(sys.platform == "win32", reason="POSIX"),
        ),
    ],
)
def test_ctrl_c_ends_it_with_the_summary(tmp_path: Path, to_the_group: bool) -> None:
    with (tmp_path / "stderr").open("w+") as stderr:
        with subprocess.Popen(
            demo_command("--seconds", "600"),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=demo_env(),
            start_new_session=True,
        ) as child:
            assert child.stdout is not None
            lines, reader = _lines(child.stdout)
            try:
                first = lines.get(timeout=CHILD_TIMEOUT)
                assert first is not None and first.startswith("atasker demo for 600 s")
                if to_the_group:
                    os.killpg(child.pid, signal.SIGINT)
                else:
                    child.send_signal(signal.SIGINT)
                # Far sooner than the 600 s it would run.
                assert child.wait(timeout=CHILD_TIMEOUT) == 130
            finally:
                if child.poll() is None:
                    child.kill()
                reader.join(CHILD_TIMEOUT)
        stderr.seek(0)
        errors = stderr.read()
    assert_no_process_left(child.pid)
    output = "".join(iter(lines.get_nowait, None))
    assert "Traceback" not in errors
    assert errors == ""
    assert "Ctrl-C: stop_task, then stop(cancel_tasks=True)" in output
    assert "atasker demo: stopped by Ctrl-C after" in output
    assert "Exit status 130." in output
    assert "every task ended in a final state: True" in output


def _read_terminal(master: int) -> bytes:
    """All the child wrote to its terminal, until it closed it."""
    data = b""
    deadline = time.monotonic() + CHILD_TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], deadline - time.monotonic())
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # Linux: EIO once the child's side is closed
            break
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
@pytest.mark.parametrize("no_color", [False, True])
def test_on_a_terminal_it_redraws_in_place(tmp_path: Path, no_color: bool) -> None:
    import pty

    master, terminal = pty.openpty()
    env = demo_env(TERM="xterm", COLUMNS="100", LINES="40")
    if no_color:
        env["NO_COLOR"] = "1"
    with (tmp_path / "stderr").open("w+") as stderr:
        child = subprocess.Popen(
            demo_command("--seconds", "1"),
            stdin=terminal,
            stdout=terminal,
            stderr=stderr,
            env=env,
        )
        os.close(terminal)
        try:
            output = _read_terminal(master).decode()
            assert child.wait(timeout=CHILD_TIMEOUT) == 0
        finally:
            os.close(master)
            if child.poll() is None:
                child.kill()
                child.wait()
        stderr.seek(0)
        assert stderr.read() == ""
    assert re.search(r"\x1b\[\d+F", output)  # back to the frame's first line
    assert "RN/RH: threads in reserve for NORMAL/HIGH" in output
    colours = re.findall(r"\x1b\[\d+m", output)
    assert (not colours) if no_color else colours
    assert "every task ended in a final state: True" in output


def _event(
    task_id: str, name: str, event: str, data: object = None, at: float = 0.0
) -> TaskEvent:
    return TaskEvent(task_id, name, event, data, at)


def test_view_counts_what_the_events_say() -> None:
    view = View(started_at=0.0)
    low, flaky, crash = feed_name(THREAD, TASK_LOW), FLAKY, CRASH
    for event in (
        _event("1", low, "queued", at=1.0),
        _event("2", flaky, "queued", at=1.0),
        _event("3", crash, "queued", at=1.0),
        _event("1", low, "started", at=1.5),
        _event("2", flaky, "started", at=1.0),
        _event("2", flaky, "retry", "connection reset by peer", at=1.1),
        _event("2", flaky, "started", at=1.2),
        _event("2", flaky, "success", "fetched", at=1.3),
    ):
        view.on_event(event)
    thread = view.kinds[THREAD]
    assert (thread.submitted, thread.queued, thread.running) == (2, 0, 1)
    assert (thread.done, thread.retries, view.kinds[PROCESS].queued) == (1, 1, 1)
    assert view.queues[Kind(THREAD, TASK_LOW)].waits[0] == pytest.approx(0.5)
    assert view.incidents["retries"] == 1 and view.unfinished == 2
    traceback = "Traceback ...\natasker.core.errors.WorkerLostError: worker died\n"
    view.on_event(_event("3", crash, "exception", traceback, at=2.0))
    view.on_event(_event("1", low, "canceled", "stopped", at=2.0))
    assert view.incidents["worker crashes"] == 1 and view.unfinished == 0
    assert view.kinds[PROCESS].failed == 1 and view.kinds[THREAD].canceled == 1
    tags = [entry.tag for entry in view.log]
    assert tags == ["retry", "retry", "crash"]  # a cancel by the stop is no news
    assert view.log[-1].text == f"{crash}: WorkerLostError: worker died"
