"""Where the demo writes: the view redrawn in place on a terminal, in colour
unless NO_COLOR is set; plain lines otherwise."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from typing import TextIO

from .catalogue import ALOOP, POOL_SIZE, PROCESSES, RESERVE_HIGH, RESERVE_NORMAL
from .clock import Clock
from .draw import (
    Line,
    indexer_line,
    kinds_table,
    log_line,
    paint,
    queues_table,
    wrapped_log_lines,
)
from .view import View

FRAME_INTERVAL = 0.25  # the terminal view's refresh
LINE_INTERVAL = 1.0  # the plain output's status line


class Screen:
    """Where the demo writes. A closed pipe (``| head``) ends the output,
    not the demo: the stop still runs."""

    def __init__(self, out: TextIO, colour: bool) -> None:
        self._out = out
        self.colour = colour
        self.broken = False

    def write(self, text: str) -> None:
        if self.broken:
            return
        try:
            self._out.write(text)
            self._out.flush()
        except BrokenPipeError:
            self.broken = True
            # Whatever is still buffered would fail again at exit.
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self._out.fileno())
                os.close(devnull)

    def begin(self, view: View, clock: Clock) -> None:
        raise NotImplementedError

    def update(self, view: View, clock: Clock) -> None:
        raise NotImplementedError

    def wait_interval(self, clock: Clock) -> float:
        raise NotImplementedError

    def finish(self, view: View, clock: Clock) -> None:
        """The last update, once the supervisor has stopped."""
        self.update(view, clock)


class LiveScreen(Screen):
    """Redraws the whole view in place, at FRAME_INTERVAL: each line is
    rewritten and cleared to its end, so nothing flickers. Lines are cut to
    the terminal's width, and recent events to its height: a wrapped or
    scrolled line would throw the cursor's count off."""

    def __init__(self, out: TextIO, colour: bool) -> None:
        super().__init__(out, colour)
        self._shown = 0

    def begin(self, view: View, clock: Clock) -> None:
        self.update(view, clock)

    def wait_interval(self, clock: Clock) -> float:
        return FRAME_INTERVAL

    def update(self, view: View, clock: Clock) -> None:
        width, height = shutil.get_terminal_size()
        with view.lock:
            lines = self._frame(view, clock, width - 1, max(height - 1, 10))
        text = "".join(
            paint(line, width - 1, self.colour) + "\x1b[K\n" for line in lines
        )
        up = f"\x1b[{self._shown}F" if self._shown else ""
        self.write(f"{up}{text}\x1b[J")
        self._shown = len(lines)

    def _frame(self, view: View, clock: Clock, width: int, height: int) -> list[Line]:
        lines: list[Line] = [
            [
                ("atasker demo", "bold"),
                (f"  {clock.header()}", "dim"),
                (f"   {view.events} events", "dim"),
            ],
            [
                (f"thread pool {POOL_SIZE} + {RESERVE_NORMAL} RN", ""),
                (f" + {RESERVE_HIGH} RH", ""),
                (f", {PROCESSES} worker processes, aloop {ALOOP!r} (coroutines)", ""),
            ],
            [("  RN/RH: threads in reserve for NORMAL/HIGH priority tasks", "dim")],
            [],
            *kinds_table(view, time.time()),
            [],
            *queues_table(view),
            [],
            indexer_line(view),
            [("recent events", "dim")],
        ]
        # The latest events that fit, oldest first.
        room = max(height - len(lines), 1)
        recent: list[Line] = []
        for entry in reversed(view.log):
            entry_lines = wrapped_log_lines(entry, width)
            if len(recent) + len(entry_lines) > room:
                break
            recent[:0] = entry_lines
        return lines + recent


class PlainScreen(Screen):
    """Plain lines: the notable events as they come, and a status line
    every LINE_INTERVAL seconds."""

    def __init__(self, out: TextIO) -> None:
        super().__init__(out, colour=False)
        self._seen = 0
        self._next_line = LINE_INTERVAL

    def begin(self, view: View, clock: Clock) -> None:
        self.write(
            f"atasker demo for {clock.seconds:g} s (Ctrl-C ends it early): "
            f'supervisor "demo" with a thread pool of {POOL_SIZE} + '
            f"{RESERVE_NORMAL} RN + {RESERVE_HIGH} RH threads (RN/RH: in reserve "
            f"for NORMAL/HIGH priority tasks), {PROCESSES} worker processes, "
            f"aloop {ALOOP!r} for coroutine tasks\n"
        )

    def wait_interval(self, clock: Clock) -> float:
        return max(0.0, self._next_line - clock.elapsed())

    def update(self, view: View, clock: Clock) -> None:
        lines = self._new_entries(view)
        elapsed = clock.elapsed()
        if elapsed >= self._next_line:
            # The next line a whole interval after this one's due time.
            self._next_line += LINE_INTERVAL * (
                1 + int((elapsed - self._next_line) // LINE_INTERVAL)
            )
            lines.append(self.status(view, elapsed))
        self._write_lines(lines)

    def finish(self, view: View, clock: Clock) -> None:
        lines = self._new_entries(view)
        lines.append(self.status(view, clock.elapsed()))
        self._write_lines(lines)

    def _new_entries(self, view: View) -> list[str]:
        """The notable events not written yet, as lines."""
        entries = view.entries_after(self._seen)
        if entries:
            self._seen = entries[-1].seq
        return [paint(log_line(entry)) for entry in entries]

    def _write_lines(self, lines: list[str]) -> None:
        if lines:
            self.write("".join(line + "\n" for line in lines))

    def status(self, view: View, elapsed: float) -> str:
        now = time.time()
        with view.lock:
            parts = [
                f"{kind}: {stats.queued} queued, {stats.running} running, "
                f"{stats.done} done ({stats.rate(now)}/s), {stats.failed} failed"
                for kind, stats in view.kinds.items()
            ]
            state = view.indexer
            if state.total:
                parts.append(
                    f"class task {state.done * 100 // state.total}% ({state.status})"
                )
        return f"{elapsed:6.1f}s status     " + " | ".join(parts)


def make_screen(out: TextIO, plain: bool) -> Screen:
    """In place on a terminal (not TERM=dumb, not ``plain``), in colour
    unless NO_COLOR is set; plain lines otherwise."""
    live = not plain and out.isatty() and os.environ.get("TERM") != "dumb"
    if not live:
        return PlainScreen(out)
    return LiveScreen(out, colour=not os.environ.get("NO_COLOR"))
