"""The load: the feed of each kind of task and the cycle of incidents,
submitted from a thread of its own."""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable

from ..core.constants import TASK_HIGH, TASK_NORMAL, TT_MP
from ..core.task import TaskInfo
from ..supervisor import TaskSupervisor
from .catalogue import (
    CANCELED,
    COROUTINE,
    CRASH,
    FLAKY,
    KINDS,
    OVERTIME,
    PROCESS,
    PROCESS_MIX,
    THREAD,
    THREAD_MIX,
    TIME_LIMIT,
    feed_name,
)
from .tasks import crash_worker, flaky_fetch, nap, overrun, simulated_work
from .view import View

logger = logging.getLogger("atasker")

# The feed: submissions a second by kind, a little more than the pools drain,
# so that queues form and the priorities show. A kind's feed pauses while
# MAX_QUEUED of its tasks wait: the queues stay short however long it runs.
FEED_RATE = {THREAD: 32.0, PROCESS: 9.0, COROUTINE: 12.0}
MAX_QUEUED = {THREAD: 24, PROCESS: 6, COROUTINE: 50}
THREAD_WORK = (0.05, 0.4)  # seconds a task 'works', drawn uniformly
PROCESS_WORK = (0.05, 0.3)
COROUTINE_NAP = (0.2, 1.0)
FAILING_SHARE = 0.05  # thread tasks that fail on purpose (TaskError)

# The incidents come in a cycle of INCIDENT_PERIOD seconds (the whole demo if
# shorter), the first one early, so that even a one-second run shows them all.
INCIDENT_PERIOD = 5.0
RETRY_DELAY = 0.1
CANCEL_AFTER = 0.1

Action = Callable[[float], None]


class Load:
    """Submits the demo's tasks: each kind's feed at its rate, and a cycle of
    incidents every ``INCIDENT_PERIOD`` seconds. Actions wait in a heap by
    due time; the thread sleeps until the next one or ``stop()``."""

    def __init__(self, supervisor: TaskSupervisor, view: View, seconds: float) -> None:
        self._supervisor = supervisor
        self._view = view
        self._period = min(seconds, INCIDENT_PERIOD)
        self._rng = random.Random(7)
        self._due: list[tuple[float, int, Action]] = []
        self._order = itertools.count()
        self._to_cancel: list[TaskInfo] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo_load")

    def start(self) -> None:
        now = time.monotonic()
        for kind in KINDS:
            self._at(now, functools.partial(self._feed, kind))
        self._at(now, self._incidents)
        self._thread.start()

    def stop(self) -> None:
        """No more tasks; returns once the thread has ended."""
        self._stopping.set()
        self._thread.join()

    def _at(self, when: float, action: Action) -> None:
        heapq.heappush(self._due, (when, next(self._order), action))

    def _run(self) -> None:
        while True:
            when, _, action = self._due[0]  # never empty: the feeds come back
            if self._stopping.wait(max(0.0, when - time.monotonic())):
                break
            heapq.heappop(self._due)
            try:
                action(when)
            except Exception:  # a bug of the demo: shown, and the load goes on
                logger.exception("the demo's load failed")
        self._cancel_pending(0.0)  # or the stop would wait a minute for them

    def _feed(self, kind: str, when: float) -> None:
        # Due times follow the schedule, not the clock: no drift.
        self._at(when + 1.0 / FEED_RATE[kind], functools.partial(self._feed, kind))
        if self._view.queued(kind) >= MAX_QUEUED[kind]:
            return
        rng, submit = self._rng, self._supervisor.submit
        if kind == THREAD:
            priority = pick(rng, THREAD_MIX)
            submit(
                simulated_work,
                (rng.uniform(*THREAD_WORK), rng.random() < FAILING_SHARE),
                priority=priority,
                name=feed_name(THREAD, priority),
            )
        elif kind == PROCESS:
            priority = pick(rng, PROCESS_MIX)
            submit(
                simulated_work,
                (rng.uniform(*PROCESS_WORK), False),
                tt=TT_MP,
                priority=priority,
                name=feed_name(PROCESS, priority),
            )
        else:
            submit(
                nap,
                (rng.uniform(*COROUTINE_NAP),),
                name=feed_name(COROUTINE, TASK_NORMAL),
            )

    def _incidents(self, when: float) -> None:
        period = self._period
        self._at(when + 0.1 * period, self._crash)
        self._at(when + 0.3 * period, self._overrun)
        self._at(when + 0.5 * period, self._retry)
        self._at(when + 0.7 * period, self._cancel)
        self._at(when + period, self._incidents)

    def _crash(self, when: float) -> None:
        self._supervisor.submit(crash_worker, tt=TT_MP, priority=TASK_HIGH, name=CRASH)

    def _overrun(self, when: float) -> None:
        self._supervisor.submit(
            overrun,
            (60.0,),
            tt=TT_MP,
            priority=TASK_HIGH,
            time_limit=TIME_LIMIT,
            name=OVERTIME,
        )

    def _retry(self, when: float) -> None:
        self._supervisor.submit(
            flaky_fetch,
            bind=True,
            retries=1,
            retry_for=(ConnectionError,),
            retry_delay=RETRY_DELAY,
            priority=TASK_HIGH,
            name=FLAKY,
        )

    def _cancel(self, when: float) -> None:
        self._to_cancel.append(self._supervisor.submit(nap, (60.0,), name=CANCELED))
        self._at(when + CANCEL_AFTER, self._cancel_pending)

    def _cancel_pending(self, when: float) -> None:
        for record in self._to_cancel:
            record.cancel()
        self._to_cancel.clear()


def pick(rng: random.Random, mix: tuple[tuple[int, int], ...]) -> int:
    """A priority drawn from ``(priority, weight)`` pairs."""
    return rng.choices([p for p, _ in mix], [w for _, w in mix])[0]
