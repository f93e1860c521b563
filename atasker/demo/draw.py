"""The view drawn as lines of styled segments: the tables, the class task's
bar, the recent events; ``paint`` makes text of a line."""

from __future__ import annotations

import textwrap

from ..core.constants import PRIORITIES, TASK_HIGH, TASK_LOW, TASK_NORMAL
from .catalogue import (
    KINDS,
    POOL_SIZE,
    PRIORITY_NAMES,
    PROCESS,
    RESERVE_HIGH,
    RESERVE_NORMAL,
    THREAD,
    Kind,
)
from .tasks import INDEXER
from .view import LogEntry, View

Line = list[tuple[str, str]]  # (text, style) segments
STYLES = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "magenta": "35",
    "cyan": "36",
}
TAG_STYLES = {
    "crash": "red",
    "time limit": "red",
    "exception": "red",
    "log": "magenta",
    "retry": "yellow",
    "cancel": "yellow",
    "class task": "cyan",
    "pool": "green",
    "stop": "bold",
}


def paint(line: Line, width: int | None = None, colour: bool = False) -> str:
    """The line as text: cut to ``width`` characters, with SGR colours if
    ``colour``."""
    parts = []
    room = width
    for text, style in line:
        if room is not None:
            text = text[: max(room, 0)]
            room -= len(text)
        if colour and style and text:
            parts.append(f"\x1b[{STYLES[style]}m{text}\x1b[0m")
        else:
            parts.append(text)
    return "".join(parts)


def fmt_wait(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 0.001:
        return "<1ms"
    if seconds < 1.0:
        return f"{seconds * 1000:.0f}ms"
    return f"{seconds:.1f}s"


def count(value: int, style: str) -> tuple[str, str]:
    """A right-aligned count, styled only when non-zero."""
    return (f"{value:>9}", style if value else "")


def thread_limit(priority: int) -> str:
    """How many running thread tasks a task of ``priority`` may find and start."""
    limits = {
        TASK_LOW: POOL_SIZE,
        TASK_NORMAL: POOL_SIZE + RESERVE_NORMAL,
        TASK_HIGH: POOL_SIZE + RESERVE_NORMAL + RESERVE_HIGH,
    }
    return str(limits[priority]) if priority in limits else "any"


def kinds_table(view: View, now: float) -> list[Line]:
    """Tasks by kind and state (call under view.lock)."""
    header = "".join(
        f"{title:>9}"
        for title in (
            "queued",
            "running",
            "done",
            "failed",
            "canceled",
            "retries",
            "done/s",
        )
    )
    lines: list[Line] = [[(f"{'kind':<10}{header}", "dim")]]
    for kind in KINDS:
        stats = view.kinds[kind]
        lines.append(
            [
                (f"{kind:<10}", "bold"),
                count(stats.queued, ""),
                count(stats.running, ""),
                count(stats.done, "green"),
                count(stats.failed, "red"),
                count(stats.canceled, "yellow"),
                count(stats.retries, "yellow"),
                (f"{stats.rate(now):>9}", ""),
            ]
        )
    return lines


def queues_table(view: View) -> list[Line]:
    """Queued tasks and their waits by priority (call under view.lock)."""
    lines: list[Line] = [
        [(f"{'':<17}{'thread tasks':^26}    {'process tasks':^26}", "dim")],
        [
            (
                f"{'priority':<9}{'threads':>8}"
                + f"{'queued':>8}{'wait':>9}{'longest':>9}" * 2,
                "dim",
            )
        ],
    ]
    for priority in PRIORITIES:
        line: Line = [(f"{PRIORITY_NAMES[priority]:<9}", "bold")]
        line.append((f"{thread_limit(priority):>8}", ""))
        for kind in (THREAD, PROCESS):
            queue = view.queues[Kind(kind, priority)]
            if not queue.started and not queue.queued:
                line.append((f"{'-':>8}{'-':>9}{'-':>9}", "dim"))
                continue
            line.append((f"{queue.queued:>8}", "yellow" if queue.queued else ""))
            line.append(
                (f"{fmt_wait(queue.median()):>9}{fmt_wait(queue.longest):>9}", "")
            )
        lines.append(line)
    return lines


def indexer_line(view: View) -> Line:
    state = view.indexer
    share = state.done / state.total if state.total else 0.0
    filled = round(share * 20)
    return [
        (f"class task {INDEXER}  ", "bold"),
        ("[" + "#" * filled + "." * (20 - filled) + "]", "cyan"),
        (
            f" {share * 100:3.0f}%  {state.done}/{state.total} batches, {state.status}",
            "",
        ),
    ]


LOG_INDENT = 19  # "   1.2s crash      " before a notable event's text


def log_line(entry: LogEntry) -> Line:
    return [
        (f"{entry.at:6.1f}s ", "dim"),
        (f"{entry.tag:<10} ", TAG_STYLES.get(entry.tag, "")),
        (entry.text, ""),
    ]


def wrapped_log_lines(entry: LogEntry, width: int) -> list[Line]:
    """The entry on as many lines of ``width`` as its text needs."""
    first, *more = textwrap.wrap(entry.text, max(width - LOG_INDENT, 20)) or [""]
    return [
        log_line(entry._replace(text=first)),
        *([(" " * LOG_INDENT + text, "")] for text in more),
    ]
