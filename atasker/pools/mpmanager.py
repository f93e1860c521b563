"""The process pool's manager thread, and the state it shares with submitters.

One step of the manager::

    under the pool's lock: admit the heads, one per idle worker; take the
        kills, controls and workers handed back; count missing workers
    send the admitted tasks; start missing workers; kill, send controls
    wait (one kept poll, mpselect) on the wake-up pipe and, per worker, its
        connection and its sentinel; timeout: the nearest deadline
    read every connection that is ready (mpchannel: one read each), then
        free the workers whose task ended and, under one lock, admit the
        next heads for them; send those (the workers run on), then finish
        the ended records (mpoutcomes); then deaths, then deadlines

The manager is the only thread that adds, retires or removes workers
(mproster). A submitter may take an idle worker and send it a task itself
(see ProcessPool.submit); a worker's ``sending`` lock keeps two writers
apart and keeps its connection open while one writes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import threading
import time
from typing import Any

from ..core.errors import ProcessPoolBrokenError, ProcessPoolStartError
from ..core.task import TaskInfo
from .mpchannel import Message
from .mpcodec import EVENT, INIT_FAILED, READY, STATE, encode_retries
from .mplaunch import Launcher, close_connection, keep_from_children
from .mpoutcomes import Outcomes
from .mproster import (
    ANSWER,
    DIED,
    EXITED,
    GONE,
    STARTING,
    Worker,
    WorkerRoster,
    loss_error,
    start_error,
)
from .mpselect import KeptSelector
from .mpthreads import UserCodeThread
from .pool import AdmittingPool

logger = logging.getLogger("atasker")

WAKE = "wake"  # the tag of the wake-up pipe (mproster's tags: the others)

# A task ended: its worker, its record (None if it had none), whether its
# messages are decoded in order on the decoder thread, and the outcome.
Ended = tuple[Worker, "TaskInfo | None", bool, Message]


class PoolManager(AdmittingPool):
    """The state of a process pool and its manager thread (see the module
    docstring); ProcessPool adds what other threads call.

    Args: see ProcessPool.
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
        # For the next step, under the lock: workers to kill with the task
        # they run, CONTROL messages to send, and workers taken for a task
        # that was canceled before it was sent (made idle again).
        self._kill: list[tuple[Worker, TaskInfo]] = []
        self._controls: list[tuple[TaskInfo, bytes]] = []
        self._unstarted: list[Worker] = []
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
        self._outcomes = Outcomes(self._callbacks, self._decoder)
        self._manager: threading.Thread | None = None

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # closed: the pool has ended
            os.write(self._wakeup_w, b"\0")

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
        retired: list[Worker] = []
        kills: list[tuple[Worker, TaskInfo]] = []
        controls: list[tuple[TaskInfo, bytes]] = []
        with self._lock:
            if self._ended:
                return False
            self._wakeup_pending = False
            if self._unstarted:  # taken for tasks canceled since: free again
                retired = [w for w in self._unstarted if self._task_done_locked(w)]
                self._unstarted = []
            starts = self._admit_locked()
            if self._kill:
                kills, self._kill = self._kill, kills
            if self._controls:
                controls, self._controls = self._controls, controls
            # CRITICAL growth, the rule both pools share: at its size, the
            # pool grows only for an admissible CRITICAL head.
            grow = not roster.idle and self._may_grow_locked(
                max(len(roster.workers), roster.processes), roster.processes
            )
            launches = [] if self._broken else roster.launches_locked(grow)
        # A worker lost below wakes us (_lose): the next step replaces it.
        if starts:
            self._start_all(starts)
        for worker in retired:
            close_connection(worker.process.conn)
        for temporary in launches:
            error = roster.launch(temporary)
            if error is not None:
                self._start_failed(error)
        for worker, task in kills:
            if worker.task is task and worker.state != GONE:
                self._lose(worker, None)
        for task, message in controls:
            self._send_control(task, message)
        self._selector.watch(
            roster.version,
            lambda: [(self._wakeup_r, (WAKE, None)), *roster.wait_entries()],
        )
        due = roster.due()
        timeout = None if due is None else max(0.0, due - time.monotonic())
        self._handle(self._selector.wait(timeout), due)
        return True

    def _handle(self, ready: list[tuple[str, Any]], due: float | None) -> None:
        """What the wait returned (tags: mproster's and WAKE), then the
        deadlines that have passed."""
        roster = self._roster
        answered: list[Worker] = []
        died: list[Worker] = []
        exited = []
        for kind, item in ready:
            if kind == ANSWER:
                answered.append(item)
            elif kind == DIED:
                died.append(item)
            elif kind == EXITED:
                exited.append(item)
            else:
                os.read(self._wakeup_r, 4096)
        roster.reap(roster.retiring, exited)
        # Answers before deaths: a worker may answer and then exit.
        outcomes: list[Ended] = []
        for worker in answered:
            if worker.state != GONE:
                self._receive(worker, outcomes)
        if outcomes:
            self._answered(outcomes, died)
        for worker in died:
            if worker.state != GONE:
                self._lose(worker, "died")
        if due is not None:
            now = time.monotonic()
            for worker in list(roster.workers):
                deadline = worker.deadline
                if deadline is not None and deadline <= now and worker.state != GONE:
                    self._lose(worker, "time limit" if worker.task else "start timeout")

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

    def _admit_locked(self) -> list[tuple[Worker, TaskInfo]]:
        """Take the admissible heads, one per idle worker (the manager
        sends them: :meth:`_start_all`)."""
        starts: list[tuple[Worker, TaskInfo]] = []
        roster = self._roster
        while roster.idle:
            task = self._admission.admit_next()
            if task is None:
                break
            starts.append((roster.take_idle_locked(task), task))
        return starts

    def _start_all(self, starts: list[tuple[Worker, TaskInfo]]) -> None:
        """Send the tasks :meth:`_admit_locked` took (on the manager)."""
        for worker, task in starts:
            # Nobody else writes to it before its payload (only the manager
            # sends controls); a submitter that started its previous task
            # may still be about to let go of it.
            worker.sending.acquire()
            self._start(worker, task, on_manager=True)

    def _start(self, worker: Worker, task: TaskInfo, on_manager: bool) -> None:
        """Send an admitted task to the worker taken for it (whose
        ``sending`` lock the caller took; released here)."""
        lost = False
        try:
            # The handle first: a cancel that sees the task STARTED finds its pool.
            task.handle = self
            # Its on_start hook is user code: the callbacks thread runs it.
            started = task.set_started(defer=self._callbacks.put)
            if started:
                try:
                    if task.retries:
                        worker.channel.send(encode_retries(task.retries, task.eta))
                    worker.channel.send(task.payload or b"")
                except OSError:
                    lost = True
        finally:
            worker.sending.release()
        if lost:
            # The worker has died: the manager ends it now; a submitter
            # leaves that to the manager, which sees its sentinel (or EOF).
            if on_manager:
                self._lose(worker, "died")
            return
        if started:
            return
        task.handle = None  # canceled since it was admitted
        if on_manager:
            self._return_worker(worker)
            # A worker is free again: the head may start now, and its
            # submit may not have woken us (no worker was idle then).
            self._wake()
            return
        # Only the manager makes a worker idle again (or retires it).
        with self._lock:
            self._unstarted.append(worker)
            wake = not self._wakeup_pending
            self._wakeup_pending = True
        if wake:
            self._wake()

    def _receive(self, worker: Worker, outcomes: list[Ended]) -> None:
        """Read what the worker sent; its task's outcome goes to ``outcomes``."""
        try:
            messages = worker.channel.recv_ready()
        except (EOFError, OSError):
            self._lose(worker, "died")
            return
        for data in messages:
            state = worker.state
            if state == GONE:  # its initializer failed
                return
            kind = data[:1]
            if state == STARTING:
                self._worker_started(worker, data)
            elif kind == STATE:
                self._outcomes.state_update(worker, data)
            elif kind == EVENT:
                self._emitted(worker, data)
            else:
                outcomes.append((worker, worker.task, worker.decoding, data))

    def _answered(self, outcomes: list[Ended], died: list[Worker]) -> None:
        """Tasks ended: free their workers and send each the next admitted
        task, then finish the records (the workers run meanwhile). A worker
        that ``died`` in the same wait only frees its slot (_lose ends it)."""
        retired = []
        with self._lock:
            for worker, _, _, _ in outcomes:
                worker.tasks_done += 1
                if worker in died:  # it answered, then exited
                    self._slot_freed_locked()
                    worker.task = None
                elif self._task_done_locked(worker):
                    retired.append(worker)
            starts = self._admit_locked()
        if starts:
            self._start_all(starts)
        for worker in retired:
            # It sees EOF and exits (the roster joins it when its sentinel
            # fires); its replacement starts in the next step.
            close_connection(worker.process.conn)
        for _, ended, in_order, data in outcomes:
            if ended is not None:
                self._outcomes.ended(ended, data, in_order)

    def _emitted(self, worker: Worker, data: Message) -> None:
        self._outcomes.emitted(worker, data)

    def _send_control(self, task: TaskInfo, message: bytes) -> None:
        for worker in self._roster.workers:
            if worker.task is task and worker.state != GONE:
                # After the task's payload, if a submitter still writes it.
                with worker.sending:
                    try:
                        worker.channel.send(message)
                        lost = False
                    except OSError:
                        lost = True
                if lost:
                    self._lose(worker, "died")
                return

    def _worker_started(self, worker: Worker, message: Message) -> None:
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
            retire = self._task_done_locked(worker)
        if retire:
            close_connection(worker.process.conn)

    def _task_done_locked(self, worker: Worker) -> bool:
        """:meth:`_return_worker` under the lock; True: close its connection
        (it retires)."""
        if worker.state == GONE:
            # Lost meanwhile (a submitter's task was canceled while _lose
            # killed the worker): _lose freed its slot; it is no one's now.
            return False
        if worker.task is not None:
            self._slot_freed_locked()
        roster = self._roster
        surplus = self._surplus_locked(len(roster.workers), roster.processes)
        return roster.task_done_locked(worker, surplus)

    def _lose(self, worker: Worker, reason: str | None) -> None:
        """End a worker that died, overran a deadline, failed to start, or
        runs a canceled task: kill it, fail its task (unless canceled).
        The next step starts a replacement."""
        roster = self._roster
        with self._lock:
            # Out of the idle stack first: no submitter takes it now.
            starting = roster.remove_locked(worker)
            task = worker.task
            if task is not None:
                self._slot_freed_locked()
            worker.task = None
            ending = roster.ending
        self._wake()  # the next step starts its replacement
        roster.kill(worker)
        process = worker.process
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
