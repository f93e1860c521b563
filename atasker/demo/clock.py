"""The demo's time line: its length, its phase, and the phase a Ctrl-C came in."""

from __future__ import annotations

import time

RUNNING, DRAINING, STOPPING, STOPPED = "running", "draining", "stopping", "stopped"


class Clock:
    """The demo's time line: its length, its phase, when it started."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.monotonic()
        self.phase = RUNNING
        self.stopped_at: float | None = None  # elapsed, when the stop began
        # The phase a Ctrl-C came in: RUNNING or DRAINING; None: none came.
        self.interrupted_in: str | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def header(self) -> str:
        elapsed = self.elapsed()
        if self.phase == RUNNING:
            return f"{elapsed:5.1f} s of {self.seconds:g} s   Ctrl-C ends it early"
        if self.phase == DRAINING:
            return f"{elapsed:5.1f} s   the end: the queued tasks drain, then stop"
        if self.phase == STOPPING:
            return f"{elapsed:5.1f} s   Ctrl-C: the queued tasks are canceled"
        return f"{elapsed:5.1f} s   stopped"
