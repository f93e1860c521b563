"""The worker processes of one process pool: starting, states, retiring, ending.

::

    launch ──> STARTING ──READY──> IDLE <──task──> BUSY
                  │                  │              │
                  │ initializer failed, died,       │ died, killed,
                  │ no READY within START_TIMEOUT   │ retired (max tasks)
                  ▼                  ▼              ▼
                 GONE (a start failure)            GONE

Workers start a few at a time (MAX_STARTING). A failed start is retried after
a growing pause; after MAX_START_FAILURES in a row with no worker started,
the pool is broken (the pool decides what that means for its tasks).

The roster keeps processes; what a worker's end means for its task is the
pool's business. Methods named ``*_locked`` run under the pool's lock (the
roster shares it); the others take it themselves. Only the pool's manager
thread adds or removes workers; a submitter may take an idle one (see
processpool). ``version`` changes whenever the workers or their states do:
the manager rebuilds what it waits on only then.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from multiprocessing.connection import wait
from typing import Any

from ..core.errors import ProcessPoolStartError, WorkerLostError, time_limit_error
from ..core.task import TaskInfo
from .mpchannel import Channel
from .mplaunch import Launcher, WorkerProcess, close_connection
from .pool import IdleStack, remaining

logger = logging.getLogger("atasker")

# Seconds a new worker may take to start and run its initializer.
START_TIMEOUT = 60.0
# Workers starting at the same time: half the CPUs. A starting interpreter
# takes a CPU for ~150 ms; thirty at once on two CPUs starve the parent's own
# threads (timers, loops) for seconds, and the first workers become ready
# later than when they start a few at a time.
MAX_STARTING = max(1, (os.cpu_count() or 1) // 2)
# Start failures in a row, with no worker started, that break the pool.
MAX_START_FAILURES = 3
# Pause before retrying a failed start: RETRY_BASE * 2**(failures - 1), at
# most RETRY_MAX. Short enough that a transient refusal (EAGAIN) heals fast,
# growing so that a worker that always fails does not spin.
RETRY_BASE = 0.05
RETRY_MAX = 5.0
# Seconds idle workers get to exit after EOF at shutdown before they are
# killed (a busy worker whose task will not finish is killed at once).
STOP_GRACE = 1.0

STARTING, IDLE, BUSY, GONE = "starting", "idle", "busy", "gone"

# Tags of what the manager waits on (mpselect): a worker's connection has
# something to read, a worker or a retiring process ended.
ANSWER, DIED, EXITED = "answer", "died", "exited"


class Worker:
    """One worker process and the task it runs."""

    __slots__ = (
        "channel",
        "deadline",
        "decoding",
        "process",
        "sending",
        "state",
        "task",
        "tasks_done",
        "temporary",
    )

    def __init__(self, process: WorkerProcess, temporary: bool) -> None:
        self.process = process
        self.channel = Channel(process.conn)
        # Held while a message is written to the worker, and while its
        # connection closes: the manager and a submitter both write (see
        # processpool), and a write must never meet a closed (or reused)
        # descriptor. Re-entrant: a signal handler that submits a task
        # may run in a thread that has just sent this worker its previous
        # task and not yet let go of the lock.
        self.sending = threading.RLock()
        self.temporary = temporary  # started for a CRITICAL task, leaves after it
        self.state = STARTING
        self.task: TaskInfo | None = None
        # STARTING: the start deadline; BUSY: the task's time limit.
        self.deadline: float | None = time.monotonic() + START_TIMEOUT
        self.tasks_done = 0
        # Its task's messages go to the pool's decoder thread, in order.
        self.decoding = False


class WorkerRoster:
    """The workers of one pool (see the module docstring).

    Args:
        name_prefix: process names are ``<name_prefix><n>``.
        launcher: starts the processes.
        processes: workers kept running.
        max_tasks_per_child: retire a worker after this many tasks.
        lock: the pool's lock; ``changed`` (a Condition on it) is notified
            when a worker starts or leaves.
    """

    def __init__(
        self,
        name_prefix: str,
        launcher: Launcher,
        processes: int,
        max_tasks_per_child: int | None,
        lock: threading.Lock,
        changed: threading.Condition,
    ) -> None:
        self._name_prefix = name_prefix
        self._launcher = launcher
        self.processes = processes
        self._max_tasks = max_tasks_per_child
        self._lock = lock
        self._changed = changed
        self._numbers = itertools.count(1)
        self.workers: list[Worker] = []
        self.idle: IdleStack[Worker] = IdleStack()
        self.retiring: list[WorkerProcess] = []  # told to exit, not yet joined
        self.failures = 0
        self.retry_at = 0.0  # no start before this time.monotonic()
        self.starting_extra = False
        self.ending = False  # no new worker from now on
        # Changes whenever a worker is added or removed or changes state
        # (but for IDLE <-> BUSY): what is waited on, and the counts below.
        self.version = 0
        self._counted = -1  # the version _kept and _starting were counted at
        self._kept = self._starting = 0

    # ------------------------------------------------------------------
    # Starting
    # ------------------------------------------------------------------

    def launches_locked(self, grow_for_critical: bool) -> list[bool]:
        """Workers to start now (True: temporary): the missing ones, at most
        MAX_STARTING starting at a time, and a temporary one when the pool
        grows for a CRITICAL task that finds no idle worker (one at a time;
        the pool decides by the rule both pools share)."""
        if self.ending or self.retry_at:
            return []
        if self._counted != self.version:  # (most steps: nothing changed)
            self._kept = sum(1 for w in self.workers if not w.temporary)
            self._starting = sum(1 for w in self.workers if w.state == STARTING)
            self._counted = self.version
        launches = [False] * min(
            self.processes - self._kept, MAX_STARTING - self._starting
        )
        if grow_for_critical and not self.idle and not self.starting_extra:
            self.starting_extra = True
            launches.append(True)
        return launches

    def launch(self, temporary: bool) -> ProcessPoolStartError | None:
        """Start a worker; the error if the system refused it."""
        try:
            process = self._launcher.launch(f"{self._name_prefix}{next(self._numbers)}")
        except Exception as exc:  # e.g. EAGAIN: the caller retries
            with self._lock:
                if temporary:
                    self.starting_extra = False
            error = ProcessPoolStartError(f"cannot start a worker process: {exc!r}")
            error.__cause__ = exc
            return error
        with self._lock:
            self.workers.append(Worker(process, temporary))
            self.version += 1
        return None

    def started_locked(self, worker: Worker) -> None:
        """The worker said READY: it is idle."""
        worker.state = IDLE
        worker.deadline = None
        self.version += 1
        self.failures = 0
        if worker.temporary:
            self.starting_extra = False
        self.idle.push(worker)
        self._changed.notify_all()

    def start_failed(self, error: ProcessPoolStartError) -> bool:
        """Count a failed start and schedule the retry.

        Returns:
            True if the pool is now broken: MAX_START_FAILURES in a row and
            no worker started.
        """
        with self._lock:
            self.failures += 1
            alive = any(w.state in (IDLE, BUSY) for w in self.workers)
            broken = not alive and self.failures >= MAX_START_FAILURES
            if not broken:
                pause = min(RETRY_MAX, RETRY_BASE * 2 ** (self.failures - 1))
                self.retry_at = time.monotonic() + pause
        logger.error("%s (failure %s in a row)", error, self.failures)
        return broken

    def wait_workers(self, count: int, timeout: float | None, broken: Any) -> bool:
        """Wait until ``count`` workers have started; False on timeout or
        if ``broken()`` says the pool broke."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while sum(1 for w in self.workers if w.state in (IDLE, BUSY)) < count:
                left = remaining(deadline)
                if broken() or (left is not None and left <= 0):
                    return False
                self._changed.wait(left)
            return True

    def pids(self) -> list[int]:
        """Process ids of the workers (starting ones included)."""
        with self._lock:
            return [w.process.pid for w in self.workers]

    # ------------------------------------------------------------------
    # Running
    # ------------------------------------------------------------------

    def wait_entries(self) -> list[tuple[Any, tuple[str, Any]]]:
        """What the manager waits on, each with its tag: every worker's
        connection (ANSWER) and sentinels (DIED), and the sentinels of the
        retiring processes (EXITED). Only the manager thread changes the
        lists (it calls this)."""
        entries: list[tuple[Any, tuple[str, Any]]] = []
        for worker in self.workers:
            entries.append((worker.process.conn, (ANSWER, worker)))
            entries += [(s, (DIED, worker)) for s in worker.process.sentinels]
        for process in self.retiring:
            entries += [(s, (EXITED, process)) for s in process.sentinels]
        return entries

    def due(self) -> float | None:
        """The nearest deadline (a start, a time limit, the end of a retry
        pause), or None."""
        times = [w.deadline for w in self.workers if w.deadline is not None]
        if self.retry_at:
            times.append(self.retry_at)
        return min(times) if times else None

    def reap(self, retiring: list[WorkerProcess], exited: list[Any]) -> None:
        """Join the processes of ``retiring`` that have exited (``exited``:
        those whose sentinel fired); end a retry pause that is over."""
        if not retiring and not self.retry_at:
            return  # (most steps)
        for process in list(retiring):
            if process in exited or process.exitcode() is not None:
                process.join()
                process.close()
                with self._lock:
                    self.retiring.remove(process)
                self.version += 1
        if self.retry_at and self.retry_at <= time.monotonic():
            self.retry_at = 0.0

    def take_idle_locked(self, task: TaskInfo) -> Worker:
        """Give ``task`` to an idle worker (there is one)."""
        worker = self.idle.pop()
        worker.state = BUSY
        worker.task = task
        worker.decoding = False
        if task.time_limit is not None:
            worker.deadline = time.monotonic() + task.time_limit
        return worker

    def task_done_locked(self, worker: Worker, surplus: bool) -> bool:
        """The worker's task is over: make it idle, or (True) retire it: it
        ran its maximum, it was a temporary extra and the pool has more
        workers than it keeps (``surplus``, the pool's shared rule), or the
        pool ends."""
        worker.task = None
        worker.deadline = None
        used_up = self._max_tasks is not None and worker.tasks_done >= self._max_tasks
        surplus = worker.temporary and surplus
        if used_up or surplus or self.ending:
            worker.state = GONE
            self.workers.remove(worker)
            self.retiring.append(worker.process)
            self.version += 1
            return True
        worker.state = IDLE
        self.idle.push(worker)
        return False

    def remove_locked(self, worker: Worker) -> bool:
        """Forget a worker that is to be killed (GONE: nobody takes it now);
        True if it was still starting."""
        starting = worker.state == STARTING
        worker.state = GONE
        if worker in self.workers:
            self.workers.remove(worker)
        if worker in self.idle:
            self.idle.remove(worker)
        if worker.temporary and starting:
            self.starting_extra = False
        self.version += 1
        self._changed.notify_all()
        return starting

    @staticmethod
    def kill(worker: Worker) -> None:
        """Kill a removed worker, wait for it, close its connection."""
        worker.process.kill()
        worker.process.join()
        with worker.sending:  # a submitter's write to it has ended
            close_connection(worker.process.conn)

    # ------------------------------------------------------------------
    # Ending
    # ------------------------------------------------------------------

    def end(self) -> None:
        """Shutdown: kill busy workers at once; close idle ones' connections
        (they exit on EOF) and kill those still there after STOP_GRACE; join
        all; close the launcher."""
        with self._lock:
            self.ending = True
            workers, self.workers = self.workers, []
            self.idle.take_all()
            processes = [w.process for w in workers] + self.retiring
            self.retiring = []
            self.version += 1
        for worker in workers:
            if worker.task is not None:
                worker.process.kill()
        for worker in workers:
            with worker.sending:  # a submitter's write to it has ended
                close_connection(worker.process.conn)
        for process in processes:
            close_connection(process.conn)  # (closed already: nothing)
        deadline = time.monotonic() + STOP_GRACE
        pending = {s: p for p in processes for s in p.sentinels}
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for sentinel in wait(list(pending), remaining):
                pending.pop(sentinel, None)
        for process in processes:
            if not process.sentinels:  # no pidfd: wait on the process itself
                process.join(max(0.0, deadline - time.monotonic()))
            if not process.join(0):
                process.kill()
            process.join()
            process.close()
        self._launcher.close()

    def forked(self, lock: threading.Lock, changed: threading.Condition) -> None:
        """In a child of ``os.fork()``: take the pool's new lock; forget the
        parent's workers without closing anything (mplaunch's hook closed the
        descriptors; closing again could hit a number the child reuses)."""
        self._lock, self._changed = lock, changed
        self.ending = True
        for worker in self.workers:
            worker.process.conn._handle = None  # type: ignore[attr-defined]
            worker.process.sentinels = []
        for process in self.retiring:
            process.sentinels = []


def loss_error(task: TaskInfo, process: WorkerProcess, reason: str) -> BaseException:
    """The error of a task whose worker ended (``reason``: "time limit" or
    "died")."""
    if reason == "time limit":
        return time_limit_error(
            task, task.time_limit, f"; its worker process {process.pid} was killed"
        )
    return WorkerLostError(
        f"worker process {process.pid} running task {task.id} ({task.name}) "
        f"died with exit code {process.exitcode()}",
        exitcode=process.exitcode(),
        pid=process.pid,
    )


def start_error(process: WorkerProcess, reason: str) -> ProcessPoolStartError:
    """The error of a worker that did not start (``reason``: "died", "start
    timeout", or the initializer's failure as text)."""
    if reason == "died":
        reason = (
            f"worker process {process.pid} exited while starting "
            f"(exit code {process.exitcode()})"
        )
    elif reason == "start timeout":
        reason = (
            f"worker process {process.pid} did not start within "
            f"{START_TIMEOUT} s (its initializer hangs?)"
        )
    return ProcessPoolStartError(reason)
