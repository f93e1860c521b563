"""Worker processes of our own, fed one task at a time from an exact-priority queue.

::

    submit ──> Admission (ready queue + reserve rule) ──> wake-up pipe
                                                            │
    manager thread: multiprocessing.connection.wait() on, at once,
        each worker's connection  READY  ──> the worker is idle
                                  result ──> record final, worker idle, slot freed
        each worker's sentinel    died   ──> its task fails (WorkerLostError)
        the wake-up pipe          new work, a cancel, stop
        timeout = nearest time limit, start deadline or start retry
    then it starts missing workers and hands admissible tasks to idle ones.

Nothing here waits for a worker to be ready: ``start()`` only starts the
manager, which launches the workers; tasks go to workers as they say READY.
A worker that fails to start (launch refused, initializer raised, died or
hung while starting) is retried after a growing pause; after
``MAX_START_FAILURES`` failures in a row with no worker alive the pool is
*broken*: every queued and every new task fails with ProcessPoolBrokenError
(``__cause__``: the last start error).

A worker is sent a task only when it is idle, so no task waits in a pipe: the
queue decides every start and a queued task stays cancellable. Whatever
happens to a worker, its one task gets a final status and its slot is freed.
The manager runs no user code: user callbacks, and results whose classes live
in user modules, go to threads of their own (mpthreads). An error the
manager does not expect breaks the pool, failing every task it held.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import os
import pickle
import threading
import time
import weakref
from multiprocessing.connection import wait
from typing import Any

from .admission import AdmittingPool
from .constants import TASK_CRITICAL
from .errors import (
    ProcessPoolBrokenError,
    ProcessPoolStartError,
    TaskTimeoutError,
    WorkerLostError,
)
from .mpcodec import INIT_FAILED, READY, NeedsUserCode, RemoteTraceback, decode_outcome
from .mpcodec import accepts_task_id as accepts_task_id  # the supervisor's import
from .mpcodec import pickle_payload as pickle_payload  # the supervisor's import
from .mplaunch import (
    Launcher,
    WorkerProcess,
    close_connection,
    keep_from_children,
    on_fork_in_child,
    release_fd,
)
from .mplaunch import default_context as default_context  # the benchmark's import
from .mplaunch import resolve_context as resolve_context  # the supervisor's import
from .mpthreads import UserCodeThread
from .task import TaskInfo

logger = logging.getLogger("atasker")

# Seconds a new worker may take to start and run its initializer.
START_TIMEOUT = 60.0
# Workers starting at the same time: half the CPUs. A starting interpreter
# takes a CPU for ~150 ms; thirty at once on two CPUs starve the parent's own
# threads (timers, loops) for seconds, and the first workers become ready
# later than when they start a few at a time.
MAX_STARTING = max(1, (os.cpu_count() or 1) // 2)
# Start failures in a row, with no worker alive, that break the pool.
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

_live_pools: weakref.WeakSet[ProcessPool] = weakref.WeakSet()


class _Worker:
    __slots__ = ("deadline", "process", "state", "task", "tasks_done", "temporary")

    def __init__(self, process: WorkerProcess, temporary: bool) -> None:
        self.process = process
        self.temporary = temporary  # started for a CRITICAL task, leaves after it
        self.state = STARTING
        self.task: TaskInfo | None = None
        self.deadline: float | None = time.monotonic() + START_TIMEOUT
        self.tasks_done = 0


class ProcessPool(AdmittingPool):
    """See the module docstring.

    Args:
        name_prefix: names of the worker processes and of the pool's threads.
        launcher: starts the worker processes (mplaunch).
        processes: worker processes kept running.
        max_tasks_per_child: replace a worker after this many tasks.
        pool_size, reserve_normal, reserve_high: the reserve rule.
    """

    def __init__(
        self,
        name_prefix: str,
        launcher: Launcher,
        processes: int,
        max_tasks_per_child: int | None,
        pool_size: int,
        reserve_normal: int,
        reserve_high: int,
    ) -> None:
        super().__init__(pool_size, reserve_normal, reserve_high)
        self._name_prefix = name_prefix
        self._launcher = launcher
        self.processes = processes
        self._max_tasks = max_tasks_per_child
        self._workers: list[_Worker] = []
        self._idle: list[_Worker] = []
        self._retiring: list[WorkerProcess] = []  # told to exit, not yet joined
        self._kill: list[tuple[_Worker, TaskInfo]] = []
        self._numbers = itertools.count(1)
        self._ending = False  # shutdown began: no new worker, no loss reported
        self._ended = False  # the manager must return
        self._forked = False  # this is a copy made by os.fork()
        self._starting_extra = False
        self._wakeup_pending = False
        self._failures = 0
        self._retry_at = 0.0
        self._broken: ProcessPoolBrokenError | None = None
        self._break_cause: BaseException | None = None
        self._wakeup_r, self._wakeup_w = os.pipe()
        keep_from_children(self._wakeup_r, self._wakeup_w)
        self._callbacks = UserCodeThread(f"{name_prefix}callbacks")
        self._decoder = UserCodeThread(f"{name_prefix}decoder")
        self._manager: threading.Thread | None = None

    def start(self) -> None:
        """Start the manager thread, which starts the workers; never waits."""
        self._manager = threading.Thread(
            target=self._manage, name=f"{self._name_prefix}manager", daemon=True
        )
        self._manager.start()
        _live_pools.add(self)
        on_fork_in_child(self)

    def configure(self, pool_size: int, reserve_normal: int, reserve_high: int) -> None:
        """Change the reserve rule while running."""
        with self._lock:
            self._admission.configure(pool_size, reserve_normal, reserve_high)
        self._wake()

    @property
    def broken(self) -> ProcessPoolBrokenError | None:
        """The error every task gets if the pool is broken, else None."""
        return self._broken

    def wait_workers(self, count: int, timeout: float | None = None) -> bool:
        """Wait until ``count`` workers have started (are idle or busy).

        Returns:
            True if they have, False if ``timeout`` seconds passed first or
            the pool broke.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while sum(1 for w in self._workers if w.state in (IDLE, BUSY)) < count:
                remaining = None if deadline is None else deadline - time.monotonic()
                timed_out = remaining is not None and remaining <= 0
                if self._broken is not None or timed_out:
                    return False
                self._drained.wait(remaining)
            return True

    def pids(self) -> list[int]:
        """Process ids of the workers (starting ones included)."""
        with self._lock:
            return [w.process.pid for w in self._workers]

    # ------------------------------------------------------------------
    # Submit and cancel (any thread)
    # ------------------------------------------------------------------

    def submit(self, task: TaskInfo) -> bool:
        """Queue ``task`` (its payload already pickled); False if closed.

        A broken pool accepts the task and fails it at once.
        """
        with self._lock:
            if not self._accepting:
                return False
            if self._broken is None:
                self._admission.push(task)
                wake = not self._wakeup_pending
                self._wakeup_pending = True
        if self._broken is not None:
            task.set_exception(self._broken_error(), defer=self._callbacks.put)
            return True
        if wake:
            self._wake()
        return True

    def cancel_running(self, task: TaskInfo) -> bool:
        """Cancel a running task: its worker is killed and replaced.

        Returns:
            True if the task is now canceled.
        """
        with self._lock:
            workers = [w for w in self._workers if w.task is task]
        if not workers or not task.set_canceled(defer=self._callbacks.put):
            return task.cancelled()
        with self._lock:
            self._kill += [(worker, task) for worker in workers]
        self._wake()
        return True

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # closed: the pool has ended
            os.write(self._wakeup_w, b"\0")

    # ------------------------------------------------------------------
    # The manager thread
    # ------------------------------------------------------------------

    def _manage(self) -> None:
        try:
            while self._step():
                pass
        except BaseException as exc:
            logger.exception("the process pool's manager failed; the pool is broken")
            self._break(exc)

    def _step(self) -> bool:
        """One round: start workers and tasks, wait for an event, handle it."""
        with self._lock:
            if self._ended:
                return False
            self._wakeup_pending = False
            starts = self._assign_locked()
            kills, self._kill = self._kill, []
        for worker, task in starts:
            self._send(worker, task)
        for worker, task in kills:
            if worker.task is task and worker.state != GONE:
                self._lose(worker, None)
        # After the sends and kills above: a worker they lost is replaced now.
        with self._lock:
            launches = self._launches_locked()
        for temporary in launches:
            self._launch(temporary)
        with self._lock:
            workers = list(self._workers)
            retiring = list(self._retiring)
        objects: list[Any] = [self._wakeup_r]
        for process in retiring:
            objects += process.sentinels
        times = [self._retry_at] if self._retry_at else []
        for worker in workers:
            objects.append(worker.process.conn)
            objects += worker.process.sentinels
            if worker.deadline is not None:
                times.append(worker.deadline)
        timeout = max(0.0, min(times) - time.monotonic()) if times else None
        ready = set(wait(objects, timeout))
        if self._wakeup_r in ready:
            os.read(self._wakeup_r, 4096)
        for process in retiring:
            if process.exitcode() is not None or any(
                s in ready for s in process.sentinels
            ):
                process.join()
                process.close()
                with self._lock:
                    self._retiring.remove(process)
        # Answers before deaths: a worker may answer and then exit.
        for worker in workers:
            if worker.process.conn in ready and worker.state != GONE:
                self._receive(worker)
        now = time.monotonic()
        for worker in workers:
            if worker.state == GONE:
                continue
            if any(s in ready for s in worker.process.sentinels):
                self._lose(worker, "died")
            elif worker.deadline is not None and worker.deadline <= now:
                self._lose(worker, "time limit" if worker.task else "start timeout")
        if self._retry_at and self._retry_at <= now:
            self._retry_at = 0.0
        return True

    def _assign_locked(self) -> list[tuple[_Worker, TaskInfo]]:
        starts = []
        while self._idle:
            task = self._admission.admit_next()
            if task is None:
                break
            worker = self._idle.pop()
            worker.state = BUSY
            worker.task = task
            if task.time_limit is not None:
                worker.deadline = time.monotonic() + task.time_limit
            starts.append((worker, task))
        return starts

    def _launches_locked(self) -> list[bool]:
        """Workers to start now: missing ones, and a temporary one for a
        CRITICAL task that finds no idle worker (one at a time)."""
        if self._ending or self._broken is not None or self._retry_at:
            return []
        kept = sum(1 for w in self._workers if not w.temporary)
        starting = sum(1 for w in self._workers if w.state == STARTING)
        # At most MAX_STARTING at a time (see there); tasks go to the first
        # ready ones.
        launches = [False] * min(self.processes - kept, MAX_STARTING - starting)
        head = self._admission.admissible()
        if (
            not self._idle
            and not self._starting_extra
            and head is not None
            and head.priority == TASK_CRITICAL
        ):
            self._starting_extra = True
            launches.append(True)
        return launches

    def _launch(self, temporary: bool) -> None:
        try:
            process = self._launcher.launch(f"{self._name_prefix}{next(self._numbers)}")
        except Exception as exc:
            if temporary:
                self._starting_extra = False
            error = ProcessPoolStartError(f"cannot start a worker process: {exc!r}")
            error.__cause__ = exc
            self._start_failed(error)
            return
        with self._lock:
            self._workers.append(_Worker(process, temporary))

    def _start_failed(self, error: ProcessPoolStartError) -> None:
        with self._lock:
            self._failures += 1
            alive = any(w.state in (IDLE, BUSY) for w in self._workers)
            broken = not alive and self._failures >= MAX_START_FAILURES
            if not broken:
                pause = min(RETRY_MAX, RETRY_BASE * 2 ** (self._failures - 1))
                self._retry_at = time.monotonic() + pause
        logger.error("%s (failure %s in a row)", error, self._failures)
        if broken:
            self._break(error)

    def _break(self, cause: BaseException) -> None:
        """No worker can start: fail every task held, and every later one."""
        with self._lock:
            self._break_cause = cause
            self._broken = self._broken_error()
            dropped = self._admission.drain()
            workers = list(self._workers)
            self._drained.notify_all()
        for worker in workers:
            self._lose(worker, "broken")
        for task in dropped:
            task.set_exception(self._broken_error(), defer=self._callbacks.put)

    def _broken_error(self) -> ProcessPoolBrokenError:
        error = ProcessPoolBrokenError(
            f"the process pool is broken: {self._break_cause}; "
            "create_mp_pool() makes a new one"
        )
        error.__cause__ = self._break_cause
        return error

    def _send(self, worker: _Worker, task: TaskInfo) -> None:
        # The handle first: a cancel that sees the task STARTED finds its pool.
        task.handle = self
        if not task.set_started():  # canceled since it was admitted
            task.handle = None
            self._return_worker(worker)
            return
        try:
            worker.process.conn.send_bytes(task.payload or b"")
        except (OSError, EOFError):
            self._lose(worker, "died")

    def _receive(self, worker: _Worker) -> None:
        try:
            data = worker.process.conn.recv_bytes()
        except (EOFError, OSError):
            self._lose(worker, "died")
            return
        if worker.state == STARTING:
            self._worker_started(worker, data)
            return
        task = worker.task
        worker.tasks_done += 1
        self._return_worker(worker)
        if task is None:
            return
        try:
            outcome = decode_outcome(data, user_code=False)
        except NeedsUserCode:
            # Its classes live in user modules: decode where user code may run.
            self._decoder.put(lambda: self._finish(task, decode_outcome(data, True)))
            return
        self._finish(task, outcome)

    def _finish(self, task: TaskInfo, outcome: tuple[bool, Any, str | None]) -> None:
        ok, value, text = outcome
        if ok:
            task.set_result(value, defer=self._callbacks.put)
            return
        if text:
            value.__cause__ = RemoteTraceback(text)
        task.set_exception(value, defer=self._callbacks.put)

    def _worker_started(self, worker: _Worker, message: bytes) -> None:
        if message == READY:
            with self._lock:
                worker.state = IDLE
                worker.deadline = None
                self._failures = 0
                if worker.temporary:
                    self._starting_extra = False
                self._idle.append(worker)
                self._drained.notify_all()  # wait_workers()
            return
        try:
            tag, text = pickle.loads(message)
            assert tag == INIT_FAILED
        except Exception:
            text = f"unexpected start-up message {message[:100]!r}"
        self._lose(
            worker,
            f"initializer failed in worker process {worker.process.pid}:\n{text}",
        )

    def _return_worker(self, worker: _Worker) -> None:
        """The worker's task is over: free its slot; make it idle, or retire it."""
        with self._lock:
            if worker.task is not None:
                self._admission.release()
            worker.task = None
            worker.deadline = None
            used_up = (
                self._max_tasks is not None and worker.tasks_done >= self._max_tasks
            )
            surplus = worker.temporary and len(self._workers) > self.processes
            retire = used_up or surplus or self._ending
            if retire:
                worker.state = GONE
                self._workers.remove(worker)
            else:
                worker.state = IDLE
                self._idle.append(worker)
            if not self._accepting:
                self._drained.notify_all()
        if retire:
            # It sees EOF and exits (joined when its sentinel fires); its
            # replacement starts in the next step.
            close_connection(worker.process.conn)
            with self._lock:
                self._retiring.append(worker.process)

    def _lose(self, worker: _Worker, reason: str | None) -> None:
        """End a worker that died, overran a deadline, failed to start, or
        runs a canceled task: kill it, fail its task (unless canceled).
        The next step starts a replacement."""
        starting = worker.state == STARTING
        worker.state = GONE
        process = worker.process
        process.kill()
        process.join()
        with self._lock:
            task = worker.task
            if task is not None:
                self._admission.release()
            worker.task = None
            if worker in self._workers:
                self._workers.remove(worker)
            if worker in self._idle:
                self._idle.remove(worker)
            if worker.temporary and starting:
                self._starting_extra = False
            if not self._accepting:
                self._drained.notify_all()
            ending = self._ending
        close_connection(process.conn)
        process.close()
        if ending or reason == "broken":
            return  # shutdown cancels its task; no loss to report
        if task is not None and reason is not None:
            task.set_exception(
                self._loss_error(task, process, reason), defer=self._callbacks.put
            )
        elif starting and reason is not None:
            if reason in ("died", "start timeout"):
                reason = (
                    f"worker process {process.pid} exited while starting "
                    f"(exit code {process.exitcode()})"
                    if reason == "died"
                    else f"worker process {process.pid} did not start within "
                    f"{START_TIMEOUT} s (its initializer hangs?)"
                )
            self._start_failed(ProcessPoolStartError(reason))

    @staticmethod
    def _loss_error(
        task: TaskInfo, process: WorkerProcess, reason: str
    ) -> BaseException:
        if reason == "time limit":
            return TaskTimeoutError(
                f"task {task.id} ({task.name}) ran past its time limit of "
                f"{task.time_limit} s; its worker process {process.pid} was killed"
            )
        return WorkerLostError(
            f"worker process {process.pid} running task {task.id} ({task.name}) "
            f"died with exit code {process.exitcode()}",
            exitcode=process.exitcode(),
            pid=process.pid,
        )

    # ------------------------------------------------------------------
    # Shutdown, interpreter exit, fork
    # ------------------------------------------------------------------

    def shutdown(self, deadline: float | None) -> list[TaskInfo]:
        """Let queued and running tasks finish until ``deadline``, then end
        every worker process and the pool's threads.

        Returns:
            The tasks that will not finish (queued, or running at the
            deadline); the caller cancels them.
        """
        with self._lock:
            self._wait_drained_locked(deadline)
            dropped = self._admission.drain()
            self._ending = self._ended = True
        if self._forked:  # the workers are our parent's: leave them alone
            return dropped + [w.task for w in self._workers if w.task is not None]
        self._wake()
        manager = self._manager
        if manager is not None and manager is not threading.current_thread():
            manager.join()
        with self._lock:
            workers, self._workers, self._idle = self._workers, [], []
            retiring, self._retiring = self._retiring, []
        busy = [w.process for w in workers if w.task is not None]
        dropped += [w.task for w in workers if w.task is not None]
        _end_processes([w.process for w in workers] + retiring, busy)
        self._launcher.close()
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        self._decoder.close(remaining)
        self._callbacks.close(remaining)
        release_fd(self._wakeup_r)
        release_fd(self._wakeup_w)
        _live_pools.discard(self)
        return dropped

    def end_at_exit(self) -> None:
        """The interpreter exits: replace no worker and report none lost
        (multiprocessing's own exit hook may terminate them now)."""
        with self._lock:
            self._ending = True

    def forked(self) -> None:
        """In a child of ``os.fork()``: this pool is a copy; never touch the
        parent's workers. Descriptors are closed by mplaunch's hook; here
        their Python owners forget them, so nothing closes a reused number."""
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._accepting = False
        self._ending = self._ended = self._forked = True
        self._callbacks = UserCodeThread(f"{self._name_prefix}callbacks")
        self._decoder = UserCodeThread(f"{self._name_prefix}decoder")
        for worker in self._workers:
            worker.process.conn._handle = None  # type: ignore[attr-defined]
            worker.process.sentinels = []
        self._wakeup_r = self._wakeup_w = -1


def _end_processes(processes: list[WorkerProcess], busy: list[WorkerProcess]) -> None:
    """Kill busy workers at once; close idle ones' connections (they exit on
    EOF), kill those still there after STOP_GRACE; join all."""
    for process in busy:
        process.kill()
    for process in processes:
        close_connection(process.conn)
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


@atexit.register
def _at_exit() -> None:
    # Registered after multiprocessing's own hook, so it runs before it.
    for pool in list(_live_pools):
        pool.end_at_exit()
