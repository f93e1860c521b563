"""Worker processes of our own, fed one task at a time from an exact-priority heap.

::

    submit ──> Admission (ready heap + reserve rule) ──> wake-up pipe
                                                           │
    manager thread: multiprocessing.connection.wait() on, at once,
        each worker's pipe       result  ──> record final, worker idle, slot freed
        each process sentinel    died    ──> its task fails with WorkerLostError,
                                             the worker is replaced
        the wake-up pipe         new work, a cancel, stop
        timeout = nearest time limit    ──> kill, TaskTimeoutError, replace
    then it hands admissible tasks to idle workers, one each.

A worker is sent a task only when it is idle, so no task waits in a pipe: the
heap decides every start, and a queued task stays cancellable. Whatever
happens to a worker process, its one task gets a final status and its slot
is freed. Callbacks run in a thread of their own, never in the manager.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import pickle
import queue
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any

from .admission import AdmittingPool
from .constants import TASK_CRITICAL
from .errors import ProcessPoolStartError, TaskTimeoutError, WorkerLostError
from .mpworker import READY, RemoteTraceback, worker_main
from .task import TaskInfo

logger = logging.getLogger("atasker")

# Seconds a new worker may take to start and run its initializer.
START_TIMEOUT = 60.0
# Seconds an ending worker gets after its pipe is closed, then after SIGTERM,
# before it is killed.
STOP_GRACE = 1.0


class _Worker:
    __slots__ = (
        "conn",
        "deadline",
        "lost",
        "process",
        "ready",
        "task",
        "tasks_done",
        "temporary",
    )

    def __init__(self, process: BaseProcess, conn: Connection, temporary: bool) -> None:
        self.process = process
        self.conn = conn
        self.temporary = temporary  # started for a CRITICAL task, leaves after it
        self.ready = False
        self.lost = False
        self.task: TaskInfo | None = None
        self.deadline: float | None = None
        self.tasks_done = 0


class ProcessPool(AdmittingPool):
    """See the module docstring.

    Args:
        name_prefix: process names are ``<name_prefix><n>``; the manager
            thread is ``<name_prefix>manager``.
        context: the multiprocessing context that starts the processes.
        processes: worker processes kept running.
        initializer, initargs: called in each worker before its first task.
        max_tasks_per_child: replace a worker after this many tasks.
    """

    def __init__(
        self,
        name_prefix: str,
        context: BaseContext,
        processes: int,
        initializer: Callable[..., Any] | None,
        initargs: tuple[Any, ...],
        max_tasks_per_child: int | None,
        pool_size: int,
        reserve_normal: int,
        reserve_high: int,
    ) -> None:
        super().__init__(pool_size, reserve_normal, reserve_high)
        self._name_prefix = name_prefix
        self._context = context
        self.processes = processes
        self._initializer = initializer
        self._initargs = initargs
        self._max_tasks = max_tasks_per_child
        self._workers: list[_Worker] = []
        self._idle: list[_Worker] = []
        self._kill: list[tuple[_Worker, TaskInfo]] = []
        self._retiring: list[BaseProcess] = []  # told to exit, not yet joined
        self._numbers = itertools.count(1)
        self._ended = False
        self._starting_extra = False
        self._wakeup_pending = False
        self._wakeup_r, self._wakeup_w = os.pipe()
        self._callbacks: queue.SimpleQueue[Callable[[], None] | None] = (
            queue.SimpleQueue()
        )
        self._manager: threading.Thread | None = None
        self._callback_thread: threading.Thread | None = None

    # ------------------------------------------------------------------
    # Start and configuration
    # ------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker processes and wait until each is ready.

        Raises:
            ProcessPoolStartError: a worker's initializer raised or it died.
        """
        workers = [self._spawn(temporary=False) for _ in range(self.processes)]
        try:
            for worker in workers:
                self._await_ready(worker)
        except BaseException:
            self._end_processes(workers)
            os.close(self._wakeup_r)
            os.close(self._wakeup_w)
            raise
        self._workers = workers
        self._idle = list(workers)
        self._manager = threading.Thread(
            target=self._manage, name=f"{self._name_prefix}manager", daemon=True
        )
        self._callback_thread = threading.Thread(
            target=self._run_callbacks,
            name=f"{self._name_prefix}callbacks",
            daemon=True,
        )
        self._manager.start()
        self._callback_thread.start()

    def _spawn(self, temporary: bool) -> _Worker:
        parent_conn, child_conn = self._context.Pipe()
        process = self._context.Process(  # type: ignore[attr-defined]
            target=worker_main,
            args=(child_conn, self._initializer, self._initargs),
            name=f"{self._name_prefix}{next(self._numbers)}",
            daemon=True,
        )
        process.start()
        child_conn.close()
        return _Worker(process, parent_conn, temporary)

    def _await_ready(self, worker: _Worker) -> None:
        ready = wait([worker.conn, worker.process.sentinel], START_TIMEOUT)
        message = None
        if worker.conn in ready:
            try:
                message = worker.conn.recv_bytes()
            except (EOFError, OSError):
                message = None
        if message == READY:
            worker.ready = True
            return
        if message is not None:
            _, text = pickle.loads(message)
            raise ProcessPoolStartError(
                f"the process pool's initializer {self._initializer!r} failed "
                f"in worker process {worker.process.pid}:\n{text}"
            )
        worker.process.join(STOP_GRACE)
        raise ProcessPoolStartError(
            f"worker process {worker.process.pid} did not start "
            f"(exit code {worker.process.exitcode})"
        )

    def configure(self, pool_size: int, reserve_normal: int, reserve_high: int) -> None:
        """Change the reserve rule while running."""
        with self._lock:
            self._admission.configure(pool_size, reserve_normal, reserve_high)
        self._wake()

    # ------------------------------------------------------------------
    # State
    # ------------------------------------------------------------------

    def pids(self) -> list[int]:
        """Process ids of the workers."""
        with self._lock:
            return [w.process.pid for w in self._workers if w.process.pid is not None]

    # ------------------------------------------------------------------
    # Submit and cancel (any thread)
    # ------------------------------------------------------------------

    def submit(self, task: TaskInfo) -> bool:
        """Queue ``task`` (its payload already pickled); False if closed."""
        with self._lock:
            if not self._accepting:
                return False
            self._admission.push(task)
            wake = not self._wakeup_pending
            self._wakeup_pending = True
        if wake:
            self._wake()
        return True

    def cancel_running(self, task: TaskInfo) -> bool:
        """Cancel a running task: its worker is killed and replaced.

        Returns:
            True if the task is now canceled.
        """
        with self._lock:
            running = any(w.task is task for w in self._workers)
        if not running or not task.set_canceled(defer=self._callbacks.put):
            return task.cancelled()
        with self._lock:
            for worker in self._workers:
                if worker.task is task:
                    self._kill.append((worker, task))
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
        except BaseException:
            logger.exception("process pool manager failed")
            raise

    def _step(self) -> bool:
        """One round: start tasks, wait for an event, handle it."""
        with self._lock:
            if self._ended:
                return False
            self._wakeup_pending = False
            starts = self._assign_locked()
            kills, self._kill = self._kill, []
            need_extra = self._needs_extra_locked()
        for worker, task in starts:
            self._send(worker, task)
        for worker, task in kills:
            if worker.task is task and not worker.lost:
                self._lose(worker, None)
        if need_extra:
            self._add_worker(temporary=True)
        # Take the wait set after the actions above: a worker they started
        # must be in it (its wake-up byte may already be drained).
        with self._lock:
            workers = list(self._workers)
            retiring = list(self._retiring)
        objects: list[Any] = [self._wakeup_r]
        deadlines = []
        for worker in workers:
            if worker.lost:
                continue
            objects.append(worker.conn)
            objects.append(worker.process.sentinel)
            if worker.deadline is not None:
                deadlines.append(worker.deadline)
        objects += [process.sentinel for process in retiring]
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        ready = set(wait(objects, timeout))
        if self._wakeup_r in ready:
            os.read(self._wakeup_r, 4096)
        for process in retiring:
            if process.sentinel in ready:
                process.join()
                self._retiring.remove(process)
        # Results before deaths: a worker may answer and then exit.
        for worker in workers:
            if worker.conn in ready and not worker.lost:
                self._receive(worker)
        for worker in workers:
            if worker.process.sentinel in ready and not worker.lost:
                self._lose(worker, "died")
        now = time.monotonic()
        for worker in workers:
            if (
                worker.deadline is not None
                and worker.deadline <= now
                and not worker.lost
            ):
                self._lose(worker, "time limit")
        return True

    def _assign_locked(self) -> list[tuple[_Worker, TaskInfo]]:
        starts = []
        while self._idle:
            task = self._admission.admit_next()
            if task is None:
                break
            worker = self._idle.pop()
            worker.task = task
            if task.time_limit is not None:
                worker.deadline = time.monotonic() + task.time_limit
            starts.append((worker, task))
        return starts

    def _needs_extra_locked(self) -> bool:
        # CRITICAL tasks always start at once: with no idle worker, start a
        # temporary one (one at a time; it leaves after its task).
        if self._idle or self._starting_extra or not self._accepting:
            return False
        head = self._admission.admissible()
        if head is None or head.priority != TASK_CRITICAL:
            return False
        self._starting_extra = True
        return True

    def _send(self, worker: _Worker, task: TaskInfo) -> None:
        if not task.set_started():  # canceled since it was admitted
            self._return_worker(worker)
            return
        try:
            worker.conn.send_bytes(task.payload or b"")
        except (OSError, EOFError):
            self._lose(worker, "died")

    def _receive(self, worker: _Worker) -> None:
        try:
            data = worker.conn.recv_bytes()
        except (EOFError, OSError):
            self._lose(worker, "died")
            return
        if not worker.ready:
            self._worker_started(worker, data)
            return
        task = worker.task
        try:
            ok, value, text = pickle.loads(data)
        except Exception as exc:
            ok, value, text = False, exc, None
            value = TypeError(
                f"the task's result cannot be unpickled in the parent: {exc!r}"
            )
        worker.tasks_done += 1
        self._return_worker(worker)
        if task is None:
            return
        defer = self._callbacks.put
        if ok:
            task.set_result(value, defer=defer)
        else:
            if text:
                value.__cause__ = RemoteTraceback(text)
            task.set_exception(value, defer=defer)

    def _return_worker(self, worker: _Worker) -> None:
        """The worker's task is over: free its slot; make it idle, or retire it."""
        retire = False
        with self._lock:
            if worker.task is not None:
                self._admission.release()
            worker.task = None
            worker.deadline = None
            used_up = (
                self._max_tasks is not None and worker.tasks_done >= self._max_tasks
            )
            surplus = worker.temporary and len(self._workers) > self.processes
            if used_up or surplus or self._ended:
                retire = True
                self._workers.remove(worker)
                worker.lost = True
            else:
                self._idle.append(worker)
            if not self._accepting:
                self._drained.notify_all()
        if retire:
            worker.conn.close()  # the worker sees EOF and exits
            self._retiring.append(worker.process)  # joined when its sentinel fires
            if not worker.temporary or len(self._workers) < self.processes:
                self._add_worker(temporary=False)

    def _lose(self, worker: _Worker, reason: str | None) -> None:
        """End a worker that died, overran its time limit, or runs a canceled
        task: kill it, fail its task (unless canceled), replace it."""
        worker.lost = True
        process = worker.process
        if process.exitcode is None:
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
            if worker.temporary and not worker.ready:
                self._starting_extra = False
            if not self._accepting:
                self._drained.notify_all()
        worker.conn.close()
        if task is not None and reason is not None:
            task.set_exception(
                self._loss_error(task, process, reason), defer=self._callbacks.put
            )
        if not worker.ready:
            # Died while starting: replacing it could loop for ever.
            logger.error(
                "worker process %s died while starting (exit code %s); not replaced",
                process.pid,
                process.exitcode,
            )
        elif not worker.temporary:
            self._add_worker(temporary=False)

    @staticmethod
    def _loss_error(task: TaskInfo, process: BaseProcess, reason: str) -> BaseException:
        if reason == "time limit":
            return TaskTimeoutError(
                f"task {task.id} ({task.name}) ran past its time limit of "
                f"{task.time_limit} s; its worker process {process.pid} was killed"
            )
        return WorkerLostError(
            f"worker process {process.pid} running task {task.id} ({task.name}) "
            f"died with exit code {process.exitcode}",
            exitcode=process.exitcode,
            pid=process.pid,
        )

    def _add_worker(self, temporary: bool) -> None:
        with self._lock:
            if self._ended:
                return
        try:
            worker = self._spawn(temporary)
        except Exception:
            logger.exception("cannot start a worker process")
            return
        with self._lock:
            self._workers.append(worker)

    def _worker_started(self, worker: _Worker, message: bytes) -> None:
        if message == READY:
            worker.ready = True
            with self._lock:
                if worker.temporary:
                    self._starting_extra = False
                self._idle.append(worker)
            return
        with self._lock:
            if worker.temporary:
                self._starting_extra = False
        _, text = pickle.loads(message)
        logger.error(
            "the process pool's initializer failed in a new worker process; "
            "it is not replaced:\n%s",
            text,
        )
        worker.lost = True
        with self._lock:
            self._workers.remove(worker)
        worker.conn.close()
        worker.process.join()

    def _run_callbacks(self) -> None:
        while True:
            notify = self._callbacks.get()
            if notify is None:
                return
            notify()

    # ------------------------------------------------------------------
    # Shutdown
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
            self._ended = True
        self._wake()
        if self._manager is not None:
            self._manager.join()
        with self._lock:
            workers, self._workers, self._idle = self._workers, [], []
        dropped += [w.task for w in workers if w.task is not None]
        self._end_processes(workers)
        self._callbacks.put(None)
        if self._callback_thread is not None:
            self._callback_thread.join()
        os.close(self._wakeup_r)
        os.close(self._wakeup_w)
        return dropped

    def _end_processes(self, workers: list[_Worker]) -> None:
        """Close pipes (idle workers exit), then terminate, then kill; join all."""
        for worker in workers:
            worker.conn.close()
        processes = [w.process for w in workers] + self._retiring
        self._retiring = []
        for escalate in (None, "terminate", "kill"):
            alive = [p for p in processes if p.exitcode is None]
            if not alive:
                break
            for process in alive:
                if escalate is not None:
                    getattr(process, escalate)()
            _wait_all(alive, STOP_GRACE)
        for process in processes:
            process.join()


def _wait_all(processes: list[BaseProcess], timeout: float) -> None:
    """Wait until every process has exited, or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    pending = {p.sentinel: p for p in processes}
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        for sentinel in wait(list(pending), remaining):
            pending.pop(sentinel).join()  # type: ignore[arg-type]


def default_context() -> BaseContext:
    """``forkserver`` where the platform has it, else ``spawn``.

    Forking a process that already runs threads can deadlock in the child,
    and a supervisor always runs threads; forkserver forks from a clean,
    single-threaded server instead.
    """
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("spawn")


def resolve_context(context: Any) -> BaseContext:
    """A multiprocessing context from a start-method name, a context, or None.

    Raises:
        ValueError: an unknown start method.
        TypeError: neither a name nor a context.
    """
    import multiprocessing

    if context is None:
        return default_context()
    if isinstance(context, str):
        if context not in multiprocessing.get_all_start_methods():
            raise ValueError(
                f"context must be one of {multiprocessing.get_all_start_methods()}; "
                f"got {context!r}"
            )
        return multiprocessing.get_context(context)
    if isinstance(context, BaseContext):
        return context
    raise TypeError(
        "context must be a start-method name or a multiprocessing context; "
        f"got {context!r}"
    )


def pickle_payload(
    target: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> bytes:
    """Pickle a process task, or raise a TypeError that says what cannot be.

    Raises:
        TypeError: the target is not importable by reference, or an argument
            cannot be pickled.
    """
    try:
        return pickle.dumps((target, args, kwargs), pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        try:
            pickle.dumps(target, pickle.HIGHEST_PROTOCOL)
        except Exception:
            raise TypeError(
                f"target {target!r} cannot be pickled for a process task: it must "
                f"be a function defined at the top level of an importable module "
                f"(not a lambda, a nested function or a bound method of an "
                f"unpicklable object); {exc}"
            ) from exc
        raise TypeError(
            f"the arguments of process task {target!r} cannot be pickled: {exc}"
        ) from exc


def accepts_task_id(target: Callable[..., Any]) -> bool:
    """True if ``target`` takes a ``_task_id`` keyword (by name or ``**kwargs``)."""
    import inspect

    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.kind is p.VAR_KEYWORD
        or (
            p.name == "_task_id" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        )
        for p in parameters
    )
