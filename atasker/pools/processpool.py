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

``start()`` only starts the manager, which starts the workers (mproster: a
few at a time, failed starts retried, a pool that cannot start any is
*broken*: every queued and new task fails with ProcessPoolBrokenError).
Tasks go to workers as they say READY.

A worker is sent a task only when it is idle, so no task waits in a pipe: the
queue decides every start and a queued task stays cancellable. Whatever
happens to a worker, its one task gets a final status and its slot is freed.
The manager runs no user code: user callbacks, and results whose classes live
in user modules, go to threads of their own (mpthreads). An error the
manager does not expect breaks the pool, failing every task it held.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import threading
import time

from ..core.errors import ProcessPoolBrokenError, ProcessPoolStartError
from ..core.task import TaskInfo
from .mpcodec import (
    EVENT,
    INIT_FAILED,
    READY,
    STATE,
    NeedsUserCode,
    Outcome,
    RemoteTraceback,
    decode_json,
    decode_outcome,
    decode_state,
    encode_retries,
)
from .mplaunch import (
    Launcher,
    close_connection,
    forget_pool,
    keep_from_children,
    release_fd,
    watch_pool,
)
from .mproster import (
    GONE,
    STARTING,
    Worker,
    WorkerRoster,
    loss_error,
    start_error,
)
from .mpselect import KeptSelector
from .mpthreads import UserCodeThread
from .pool import AdmittingPool, Deadline, remaining

logger = logging.getLogger("atasker")


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
        self._roster = WorkerRoster(
            name_prefix,
            launcher,
            processes,
            max_tasks_per_child,
            self._lock,
            self._drained,
        )
        self._kill: list[tuple[Worker, TaskInfo]] = []
        self._controls: list[tuple[TaskInfo, bytes]] = []
        self._ended = False  # the manager must return
        self._forked = False  # this is a copy made by os.fork()
        self._wakeup_pending = False
        self._broken: ProcessPoolBrokenError | None = None
        self._break_cause: BaseException | None = None
        self._selector = KeptSelector()
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
        ``task``, from the manager thread (the one writer of a worker's
        connection). False if no worker runs it now."""
        with self._lock:
            if not any(w.task is task for w in self._roster.workers):
                return False
            self._controls.append((task, message))
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
        except BaseException as exc:  # a bug of ours: fail every task we hold
            logger.exception("the process pool's manager failed; the pool is broken")
            try:
                self._break(exc)
            except BaseException:  # nothing is left to do but say so
                logger.exception("the broken process pool could not fail its tasks")

    def _step(self) -> bool:
        """One round: start workers and tasks, wait for an event, handle it."""
        roster = self._roster
        with self._lock:
            if self._ended:
                return False
            self._wakeup_pending = False
            starts = []
            while roster.idle:
                task = self._admission.admit_next()
                if task is None:
                    break
                starts.append((roster.take_idle_locked(task), task))
            kills, self._kill = self._kill, []
            controls, self._controls = self._controls, []
            # CRITICAL growth, the rule both pools share: at its size, the
            # pool grows only for an admissible CRITICAL head.
            size = max(len(roster.workers), roster.processes)
            grow = self._may_grow_locked(size, roster.processes)
            launches = [] if self._broken else roster.launches_locked(grow)
        for temporary in launches:
            error = roster.launch(temporary)
            if error is not None:
                self._start_failed(error)
        # A worker lost below wakes us (_lose): the next step replaces it.
        for worker, task in starts:
            self._send(worker, task)
        for worker, task in kills:
            if worker.task is task and worker.state != GONE:
                self._lose(worker, None)
        for task, message in controls:
            self._send_control(task, message)
        workers, retiring, objects, due = roster.wait_set()
        timeout = None if due is None else max(0.0, due - time.monotonic())
        ready = set(self._selector.wait((self._wakeup_r, *objects), timeout))
        if self._wakeup_r in ready:
            os.read(self._wakeup_r, 4096)
        roster.reap(retiring, ready)
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
        return True

    def _start_failed(self, error: ProcessPoolStartError) -> None:
        if self._roster.start_failed(error):
            self._break(error)

    def _break(self, cause: BaseException) -> None:
        """No worker can start: fail every task held, and every later one."""
        with self._lock:
            self._break_cause = cause
            self._broken = self._broken_error()
            dropped = self._admission.drain()
            workers = list(self._roster.workers)
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

    def _send(self, worker: Worker, task: TaskInfo) -> None:
        # The handle first: a cancel that sees the task STARTED finds its pool.
        task.handle = self
        # Its on_start hook is user code: the callbacks thread runs it.
        if not task.set_started(defer=self._callbacks.put):
            task.handle = None  # canceled since it was admitted
            self._return_worker(worker)
            return
        retries = task.retries
        try:
            if retries:
                worker.process.conn.send_bytes(encode_retries(retries, task.eta))
            worker.process.conn.send_bytes(task.payload or b"")
        except (OSError, EOFError):
            self._lose(worker, "died")

    def _receive(self, worker: Worker) -> None:
        try:
            data = worker.process.conn.recv_bytes()
        except (EOFError, OSError):
            self._lose(worker, "died")
            return
        if worker.state == STARTING:
            self._worker_started(worker, data)
            return
        if data[:1] == STATE:
            self._state_update(worker, data)
            return
        if data[:1] == EVENT:
            self._emitted(worker, data)
            return
        task, in_order = worker.task, worker.decoding
        worker.tasks_done += 1
        self._return_worker(worker)
        if task is None:
            return
        if in_order:  # its state updates went to the decoder: so does this
            self._decoder.put(lambda: self._finish(task, decode_outcome(data, True)))
            return
        try:
            outcome = decode_outcome(data, user_code=False)
        except NeedsUserCode:
            # Its classes live in user modules: decode where user code may run.
            self._decoder.put(lambda: self._finish(task, decode_outcome(data, True)))
            return
        self._finish(task, outcome)

    def _finish(self, task: TaskInfo, outcome: Outcome) -> None:
        ok, value, text, retryable = outcome
        if ok:
            task.set_result(value, defer=self._callbacks.put)
            return
        if text:
            value.__cause__ = RemoteTraceback(text)
        task.set_exception(value, defer=self._callbacks.put, retryable=retryable)

    def _send_control(self, task: TaskInfo, message: bytes) -> None:
        for worker in self._roster.workers:
            if worker.task is task and worker.state != GONE:
                try:
                    worker.process.conn.send_bytes(message)
                except (OSError, EOFError):
                    self._lose(worker, "died")
                return

    def _emitted(self, worker: Worker, data: bytes) -> None:
        """The running task emitted an event (JSON: no user code to decode)."""
        task = worker.task
        if task is None:
            return
        try:
            event, value = decode_json(data)
        except (ValueError, TypeError):
            logger.exception("task %s: an event it emitted could not be read", task.id)
            return
        task._emit(event, value)

    def _state_update(self, worker: Worker, data: bytes) -> None:
        """The running task called update_state(): its record shows it.

        What needs user code to decode goes to the decoder thread, and from
        then on all that comes from this task (its outcome too), in order.
        """
        task = worker.task
        if task is None:
            return

        def apply(user_code: bool) -> None:
            try:
                state, meta = decode_state(data, user_code)
            except NeedsUserCode:
                raise
            except BaseException:  # unpickling is user code
                logger.exception(
                    "task %s: its update_state() could not be read", task.id
                )
                return
            task._update_state(state, meta)

        if worker.decoding:
            self._decoder.put(lambda: apply(True))
            return
        try:
            apply(False)
        except NeedsUserCode:  # classes of user modules: decode where user code may
            worker.decoding = True
            self._decoder.put(lambda: apply(True))

    def _worker_started(self, worker: Worker, message: bytes) -> None:
        if message == READY:
            with self._lock:
                self._roster.started_locked(worker)
            return
        try:
            tag, text = pickle.loads(message)  # our own (str, str)
            assert tag == INIT_FAILED
        except Exception:  # not our message: say so
            text = f"unexpected start-up message {message[:100]!r}"
        self._lose(
            worker,
            f"initializer failed in worker process {worker.process.pid}:\n{text}",
        )

    def _return_worker(self, worker: Worker) -> None:
        """The worker's task is over: free its slot; make it idle, or retire it."""
        with self._lock:
            if worker.task is not None:
                self._slot_freed_locked()
            roster = self._roster
            surplus = self._surplus_locked(len(roster.workers), roster.processes)
            retire = roster.task_done_locked(worker, surplus)
        if retire:
            # It sees EOF and exits (the roster joins it when its sentinel
            # fires); its replacement starts in the next step.
            close_connection(worker.process.conn)

    def _lose(self, worker: Worker, reason: str | None) -> None:
        """End a worker that died, overran a deadline, failed to start, or
        runs a canceled task: kill it, fail its task (unless canceled).
        The next step starts a replacement."""
        starting = self._roster.kill(worker)
        self._wake()  # the next step starts its replacement
        process = worker.process
        with self._lock:
            task = worker.task
            if task is not None:
                self._slot_freed_locked()
            worker.task = None
            self._roster.remove_locked(worker, starting)
            ending = self._roster.ending
        close_connection(process.conn)
        process.close()
        if ending or reason is None:
            return  # canceled, or shutdown cancels its task: nothing to report
        if reason == "broken":
            if task is not None:
                task.set_exception(self._broken_error(), defer=self._callbacks.put)
            return
        if task is not None:
            task.set_exception(
                loss_error(task, process, reason), defer=self._callbacks.put
            )
        elif starting:
            self._start_failed(start_error(process, reason))

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
        self._selector = KeptSelector()  # the parent's, forgotten
        self._wakeup_r = self._wakeup_w = -1
