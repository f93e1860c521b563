"""Worker processes of our own, fed one task at a time from an exact-priority queue.

::

    submit ──> Admission (ready queue + reserve rule)
       │ nothing queued, a worker idle: the submitting thread sends the task
       │ itself (the head: no hop through the manager); else it is queued
       │ and the manager is woken only if it has something to do (an idle
       │ worker, a CRITICAL task to grow for)
       ▼
    manager thread: one kept poll (mpselect) on, at once,
        each worker's connection  READY  ──> the worker is idle
                                  result ──> slot freed; the worker is sent
                                             the next admitted task, then the
                                             record is finished
        each worker's sentinel    died   ──> its task fails (WorkerLostError)
        the wake-up pipe          new work, a cancel, stop
        timeout = nearest time limit, start deadline or start retry
    then it starts missing workers and hands admissible tasks to idle ones
    (mpmanager: its step; mpoutcomes: what a task says back).

``start()`` only starts the manager, which starts the workers (mproster: a
few at a time, failed starts retried, a pool that cannot start any is
*broken*: every queued and new task fails with ProcessPoolBrokenError).
Tasks go to workers as they say READY.

A worker is sent a task only when it is idle, so no task waits in a pipe: the
queue decides every start and a queued task stays cancellable. Whatever
happens to a worker, its one task gets a final status and its slot is freed.
Messages go over each worker's channel (mpchannel: one read takes in all
that has arrived, one write sends a message); a worker's ``sending`` lock
keeps the manager and a submitter from writing to it at once. The manager
runs no user code: user callbacks, and results whose classes live in user
modules, go to threads of their own (mpthreads); a record's waiters are woken
where it is finished, never behind a callback. An error the manager does not
expect breaks the pool, failing every task it held.
"""

from __future__ import annotations

import contextlib
import threading

from ..core.constants import TASK_CRITICAL
from ..core.errors import ProcessPoolBrokenError
from ..core.task import TaskInfo
from .mplaunch import forget_pool, release_fd, watch_pool
from .mpmanager import PoolManager
from .mpoutcomes import Outcomes
from .mproster import Worker
from .mpselect import KeptSelector
from .mpthreads import UserCodeThread
from .pool import Deadline, remaining

# The longest payload a submitting thread writes to an idle worker itself
# (see submit): an idle worker has read all that was sent to it, so this
# fits in its connection's buffer (8 KiB at least, on every platform) and
# the write never waits for the worker. Longer ones, and a retried
# attempt's two messages, are sent by the manager.
DIRECT_SEND_MAX = 4096


class ProcessPool(PoolManager):
    """See the module docstring.

    Args:
        name_prefix: names of the worker processes and of the pool's threads.
        launcher: starts the worker processes (mplaunch).
        processes: worker processes kept running.
        max_tasks_per_child: replace a worker after this many tasks.
        pool_size, reserve_normal, reserve_high: the reserve rule.
    """

    def start(self) -> None:
        """Start the manager thread, which starts the workers; never waits."""
        self._manager = threading.Thread(
            target=self._manage, name=f"{self._name_prefix}manager", daemon=True
        )
        self._manager.start()
        watch_pool(self)

    def configure(self, pool_size: int, reserve_normal: int, reserve_high: int) -> None:
        """Change the reserve rule while running."""
        with self._lock:
            self._admission.configure(pool_size, reserve_normal, reserve_high)
        self._wake()

    @property
    def processes(self) -> int:
        """Worker processes kept running."""
        return self._roster.processes

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
        return self._roster.wait_workers(count, timeout, lambda: self._broken)

    def pids(self) -> list[int]:
        """Process ids of the workers (starting ones included)."""
        return self._roster.pids()

    def running_tasks(self) -> list[TaskInfo]:
        """The records its workers hold now, O(workers): nothing queued is
        read. A caller filters by status: a record just handed to a worker
        may not have started yet (or was canceled meanwhile)."""
        with self._lock:
            return [w.task for w in self._roster.workers if w.task is not None]

    # ------------------------------------------------------------------
    # Submit and cancel (any thread)
    # ------------------------------------------------------------------

    def submit(self, task: TaskInfo) -> bool:
        """Queue ``task`` (its payload already pickled); False if closed.

        If nothing is queued and a worker is idle, the task is the head and
        this thread sends it to that worker (as the thread pool hands a task
        to a parked thread). Otherwise it is queued, and the manager is woken
        only if it has something to do now: a worker is idle (it hands the
        head out), or a CRITICAL task may need a worker started for it.
        With every worker busy, the next answer wakes the manager, which
        then admits the head. A broken pool accepts the task and fails it
        at once.
        """
        worker = None
        wake = False
        with self._lock:
            if not self._accepting:
                return False
            if self._broken is None:
                roster = self._roster
                if (
                    roster.idle
                    and len(task.payload or b"") <= DIRECT_SEND_MAX
                    and not task.retries
                    and self._admission.admit_now(task)
                ):
                    worker = roster.take_idle_locked(task)
                    # Taken now, so that a control for the task (the manager
                    # sends it) follows the payload. Nobody writes to an idle
                    # worker; one that started its previous task may still
                    # be about to let go of it.
                    worker.sending.acquire()
                    # Its deadline is new to the manager's wait.
                    wake = task.time_limit is not None
                elif self._admission.push(task):
                    wake = bool(roster.idle) or task.priority == TASK_CRITICAL
                if wake:
                    wake = not self._wakeup_pending
                    self._wakeup_pending = True
        if self._broken is not None:
            task.set_exception(self._broken_error(), defer=self._callbacks.put)
            return True
        if worker is not None:
            try:
                self._start(worker, task, on_manager=False)
            except BaseException:  # an interrupt (Ctrl-C) in this thread
                self._send_interrupted(worker, task)
                raise
        if wake:
            self._wake()
        return True

    def _send_interrupted(self, worker: Worker, task: TaskInfo) -> None:
        """An exception (KeyboardInterrupt) came into a direct send: the
        worker may hold part of a message, so the manager kills it (and
        frees its slot); the task ends CANCELED, whether it started or not
        (submit raises: it was never accepted)."""
        # Ours if the interrupt came before _start's own release; an RLock
        # refuses a release by a thread that does not hold it.
        with contextlib.suppress(RuntimeError):
            worker.sending.release()
        task.set_canceled(defer=self._callbacks.put, reason="interrupted")
        with self._lock:
            self._kill.append((worker, task))
        self._wake()

    def cancel_running(self, task: TaskInfo, reason: str | None = None) -> bool:
        """Cancel a running task: its worker is killed and replaced.

        Returns:
            True if the task is now canceled.
        """
        with self._lock:
            workers = [w for w in self._roster.workers if w.task is task]
        if not workers or not task.set_canceled(
            defer=self._callbacks.put, reason=reason
        ):
            return task.cancelled()
        with self._lock:
            self._kill += [(worker, task) for worker in workers]
        self._wake()
        return True

    def send_control(self, task: TaskInfo, message: bytes) -> bool:
        """Send ``message`` (mpcodec's CONTROL) to the worker running
        ``task``, from the manager thread (after the task's payload: see
        the worker's ``sending`` lock). False if no worker runs it now."""
        with self._lock:
            if not any(w.task is task for w in self._roster.workers):
                return False
            self._controls.append((task, message))
        self._wake()
        return True

    # ------------------------------------------------------------------
    # Shutdown, interpreter exit, fork
    # ------------------------------------------------------------------

    def shutdown(self, deadline: Deadline) -> list[TaskInfo]:
        """Let queued and running tasks finish until ``deadline``, then end
        every worker process and the pool's threads.

        Returns:
            The tasks that will not finish (queued, or running at the
            deadline); the caller cancels them.
        """
        with self._lock:
            self._wait_drained_locked(deadline)
            dropped = self._admission.drain()
            self._roster.ending = self._ended = True
            running = [w.task for w in self._roster.workers if w.task is not None]
        # Queued tasks end now, not once the workers have ended: whoever
        # stopped without waiting sees them canceled at once.
        for task in dropped:
            task.set_canceled(reason="stopped")
        if self._forked:  # the workers are our parent's: leave them alone
            return dropped + running
        self._wake()
        manager = self._manager
        if manager is not None and manager is not threading.current_thread():
            manager.join()
        with self._lock:
            dropped += [w.task for w in self._roster.workers if w.task is not None]
        self._roster.end()
        left = remaining(deadline)
        left = None if left is None else max(0.0, left)
        self._decoder.close(left)
        self._callbacks.close(left)
        self._selector.close()
        release_fd(self._wakeup_r)
        release_fd(self._wakeup_w)
        forget_pool(self)
        return dropped

    def end_at_exit(self) -> None:
        """The interpreter exits: replace no worker and report none lost
        (multiprocessing's own exit hook may terminate them now)."""
        with self._lock:
            self._roster.ending = True

    def forked(self) -> None:
        """In a child of ``os.fork()``: this pool is a copy; never touch the
        parent's workers. mplaunch's hook closes the descriptors; here their
        Python owners forget them, so nothing closes a reused number."""
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._roster.forked(self._lock, self._drained)
        self._accepting = False
        self._ended = self._forked = True
        self._callbacks = UserCodeThread(f"{self._name_prefix}callbacks")
        self._decoder = UserCodeThread(f"{self._name_prefix}decoder")
        self._outcomes = Outcomes(self._callbacks, self._decoder)
        self._selector = KeptSelector()  # the parent's, forgotten
        self._wakeup_r = self._wakeup_w = -1
