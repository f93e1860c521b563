"""The summary printed at the end: how the demo ended, the tasks by kind,
the queue waits, the incidents, the class task and the events."""

from __future__ import annotations

from ..core.constants import PRIORITIES
from .catalogue import INCIDENTS, PRIORITY_NAMES, PROCESS, THREAD, Kind
from .clock import DRAINING, RUNNING, Clock
from .draw import fmt_wait
from .interrupts import EXIT_INTERRUPTED
from .tasks import INDEXER
from .view import RECENT_WAITS, View


def summary(view: View, clock: Clock, dropped: int) -> list[str]:
    elapsed = clock.elapsed()
    ran = clock.stopped_at if clock.stopped_at is not None else elapsed
    took = f"the stop took {elapsed - ran:.1f} s"
    if clock.interrupted_in == RUNNING:
        how = (
            f"stopped by Ctrl-C after {ran:.1f} s; {took} (the queued tasks "
            f"canceled). Exit status {EXIT_INTERRUPTED}."
        )
    elif clock.interrupted_in == DRAINING:
        how = (
            f"ran {ran:.1f} s; a Ctrl-C cut the drain short: {took} (the queued "
            f"tasks canceled). Exit status {EXIT_INTERRUPTED}."
        )
    else:
        how = f"ran {ran:.1f} s; {took} (the queued tasks drained)."
    unfinished = view.unfinished
    with view.lock:
        lines = [
            "",
            f"atasker demo: {how}",
            f"{'kind':<10}"
            + "".join(
                f"{title:>10}"
                for title in ("submitted", "done", "failed", "canceled", "retries")
            ),
        ]
        for kind, stats in view.kinds.items():
            lines.append(
                f"{kind:<10}{stats.submitted:>10}{stats.done:>10}{stats.failed:>10}"
                f"{stats.canceled:>10}{stats.retries:>10}"
            )
        lines.append(
            "queue wait by priority "
            f"(median of the last {RECENT_WAITS} starts / longest):"
        )
        for kind in (THREAD, PROCESS):
            waits = [
                f"{PRIORITY_NAMES[p]} {fmt_wait(q.median())} / {fmt_wait(q.longest)}"
                for p in PRIORITIES
                if (q := view.queues[Kind(kind, p)]).started
            ]
            lines.append(
                f"  {kind + ' tasks:':<15} " + ", ".join(waits or ["none started"])
            )
        lines.append("incidents (a crash or a time limit fails its task only):")
        for incident, what in INCIDENTS.items():
            lines.append(f"  {incident:<15}{view.incidents[incident]:>3}   {what}")
        lines.append(
            "  the process pool went on: process tasks that succeeded after the "
            f"first crash or time limit: {view.process_done_after_incident}"
        )
        state = view.indexer
        lines.append(
            f"class task {INDEXER}: {state.status} at {state.done}/{state.total} "
            "batches (stop_task stops it at the end)"
        )
        lines.append(f"events: {view.events} received, {dropped} dropped")
    lines.append(
        f"every task ended in a final state: {unfinished == 0}"
        + (f" ({unfinished} did not)" if unfinished else "")
    )
    return lines
