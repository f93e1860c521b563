"""What the demo runs: the supervisor's sizes, the kinds of task and their
priorities, what each task name stands for, and the incidents."""

from __future__ import annotations

from typing import NamedTuple

from ..core.constants import TASK_CRITICAL, TASK_HIGH, TASK_LOW, TASK_NORMAL
from .tasks import CRASH_EXIT_CODE, INDEXER

# The supervisor. LOW tasks start while fewer than POOL_SIZE thread tasks run,
# NORMAL ones may also use the RESERVE_NORMAL threads, HIGH ones the
# RESERVE_HIGH ones too; CRITICAL ones always start.
POOL_SIZE, RESERVE_NORMAL, RESERVE_HIGH = 4, 2, 1
PROCESSES = 2
ALOOP = "demo"

THREAD, PROCESS, COROUTINE = "thread", "process", "coroutine"
KINDS = (THREAD, PROCESS, COROUTINE)
PRIORITY_NAMES = {
    TASK_CRITICAL: "CRITICAL",
    TASK_HIGH: "HIGH",
    TASK_NORMAL: "NORMAL",
    TASK_LOW: "LOW",
}

# The feed's priorities: (priority, weight). No CRITICAL process task: one
# that finds no idle worker gets a temporary extra one, and the demo keeps to
# its two.
THREAD_MIX = ((TASK_LOW, 40), (TASK_NORMAL, 35), (TASK_HIGH, 20), (TASK_CRITICAL, 5))
PROCESS_MIX = ((TASK_LOW, 45), (TASK_NORMAL, 35), (TASK_HIGH, 20))

TIME_LIMIT = 0.2  # seconds: the process task past it has its worker killed


class Kind(NamedTuple):
    """Where a task runs, and its priority."""

    kind: str
    priority: int


def feed_name(kind: str, priority: int) -> str:
    return f"demo.{kind}.{PRIORITY_NAMES[priority].lower()}"


CRASH = "demo.process.crash"
OVERTIME = "demo.process.overtime"
FLAKY = "demo.thread.flaky"
CANCELED = "demo.coroutine.canceled"

CATALOGUE: dict[str, Kind] = {
    **{feed_name(THREAD, p): Kind(THREAD, p) for p, _ in THREAD_MIX},
    **{feed_name(PROCESS, p): Kind(PROCESS, p) for p, _ in PROCESS_MIX},
    feed_name(COROUTINE, TASK_NORMAL): Kind(COROUTINE, TASK_NORMAL),
    CRASH: Kind(PROCESS, TASK_HIGH),
    OVERTIME: Kind(PROCESS, TASK_HIGH),
    FLAKY: Kind(THREAD, TASK_HIGH),
    CANCELED: Kind(COROUTINE, TASK_NORMAL),
    INDEXER: Kind(THREAD, TASK_HIGH),
}

# The incidents, as the summary counts them.
CRASHES, TIME_LIMITS, RETRIES, CANCELS = (
    "worker crashes",
    "time limits",
    "retries",
    "cancels",
)
INCIDENTS = {
    CRASHES: f"os._exit({CRASH_EXIT_CODE}) in a process task: WorkerLostError",
    TIME_LIMITS: f"a process task past time_limit={TIME_LIMIT} s: its worker killed",
    RETRIES: "a thread task fails once (ConnectionError); retries=1 runs it again",
    CANCELS: "cancel() of a running coroutine task",
}
