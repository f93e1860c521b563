"""Worker threads fed from an exact-priority ready heap.

::

    submit ──> Admission (ready heap + reserve rule), under the pool lock
                  │ head admissible?
                  ├── an idle worker is parked: hand it the task, release its lock
                  ├── fewer threads than max_size (or CRITICAL): start a thread with it
                  └── otherwise the head waits; a finishing worker takes it

    worker: run task ──> under the pool lock: free the slot, take the next
            admissible head itself, or park (push itself on the idle stack and
            block on its own lock, with the idle timeout)

There is no queue between the heap and the threads, so nothing is ordered
anywhere but in the heap: a task starts exactly when the reserve rule admits
it, and a queued task can be canceled until then.

Idle workers form a stack (the most recently parked is woken first) so that
surplus threads stay idle long enough to retire: a parked worker whose timed
acquire expires leaves if the pool has more than ``min_size`` threads. The
race between that timeout and a hand-off is settled under the pool lock: a
worker that finds it was handed a task after all acquires its lock (already
released by the dispatcher) and runs it.

Nested waits: a pool thread that blocks in ``wait``/``get`` on a thread task
of its own supervisor calls :meth:`ThreadPool.begin_blocking`: its slot is
lent to the queue and one more thread may start, until
:meth:`ThreadPool.end_blocking`. So a task waiting for its child never
deadlocks a full pool (for as long as it waits, the pool may run one task
more than its limits).

A worker holds no finished task: its first task travels in ``_Worker.task``
(not in the Thread's arguments), and its reference to a task is dropped
before it waits for the next one.
"""

from __future__ import annotations

import itertools
import logging
import threading
from typing import Callable

from ..core.constants import TASK_CRITICAL
from ..core.task import TaskInfo, wake_waiters
from ..core.waiting import Waiter, running
from .pool import AdmittingPool, Deadline, IdleStack
from .pool import remaining as pool_remaining

logger = logging.getLogger("atasker")

# Seconds a parked surplus thread waits for work before it exits. Longer keeps
# threads warm for bursts; shorter returns memory sooner.
IDLE_TIMEOUT = 10.0


class _Worker:
    __slots__ = ("idle", "task", "current", "wakeup")

    def __init__(self) -> None:
        self.idle = False
        self.task: TaskInfo | None = None  # handed over, not yet taken
        self.current: TaskInfo | None = None  # running now (get_info reads it)
        # Held while the worker is parked; the dispatcher releases it.
        self.wakeup = threading.Lock()
        self.wakeup.acquire()


class ThreadPool(AdmittingPool):
    """Threads that run admitted tasks; see the module docstring.

    Args:
        name_prefix: thread names are ``<name_prefix><n>``.
        run_task: runs one task in the calling thread; must not raise;
            returns the task's waiters for the pool thread to wake once it
            has done its own bookkeeping (see TaskInfo.run), or None.
    """

    def __init__(
        self,
        name_prefix: str,
        run_task: Callable[[TaskInfo], list[Waiter] | None],
        *,
        pool_size: int,
        reserve_normal: int,
        reserve_high: int,
        min_size: int,
        max_size: int,
    ) -> None:
        super().__init__(pool_size, reserve_normal, reserve_high)
        self._name_prefix = name_prefix
        self._run_task = run_task
        self._idle: IdleStack[_Worker] = IdleStack()
        # Its threads, each with what it runs (running_tasks reads them).
        self._threads: dict[threading.Thread, _Worker] = {}
        # Threads still running a task past its time limit and grace: no
        # longer counted, joined or given work (see abandon()).
        self._abandoned: set[threading.Thread] = set()
        self._numbers = itertools.count(1)
        self._stopping = False
        self.min_size = min_size
        self.max_size = max_size
        self.idle_timeout = IDLE_TIMEOUT
        self._size = min_size  # threads running a task or parked
        self._start_threads([None] * min_size)

    # ------------------------------------------------------------------
    # Configuration and state
    # ------------------------------------------------------------------

    def configure(
        self,
        pool_size: int,
        reserve_normal: int,
        reserve_high: int,
        min_size: int,
        max_size: int,
    ) -> None:
        """Change limits while running; newly allowed tasks start at once."""
        with self._lock:
            self._admission.configure(pool_size, reserve_normal, reserve_high)
            self.min_size = min_size
            self.max_size = max_size
            spawn = self._dispatch_locked()  # counts its threads in _size
            missing = max(0, min_size - self._size)
            self._size += missing
        self._start_threads([*spawn, *[None] * missing])

    @property
    def size(self) -> int:
        """Threads in the pool now (running a task or idle)."""
        return self._size

    # ------------------------------------------------------------------
    # Submit and cancel
    # ------------------------------------------------------------------

    def submit(self, task: TaskInfo) -> bool:
        """Queue ``task``; False if the pool no longer accepts tasks."""
        with self._lock:
            if not self._accepting:
                return False
            idle = self._idle
            if idle:
                if self._admission.admit_now(task):
                    # Nothing was queued, so it was the head: to a parked worker.
                    worker = idle.pop()
                    worker.idle = False
                    worker.task = task
                    worker.wakeup.release()
                    return True
            elif task.priority != TASK_CRITICAL and self._full_locked(
                self._size, self.max_size
            ):
                # Every thread is busy and none may start for it: it waits.
                # (No CRITICAL task ever waits here: it always starts.)
                self._admission.push(task)
                return True
            if not self._admission.push(task):
                return True  # canceled meanwhile: accepted, and already final
            spawn = self._dispatch_locked()
        if spawn:
            self._start_threads(spawn)
        return True

    def _dispatch_locked(self) -> list[TaskInfo | None]:
        """Hand admissible tasks to parked workers; return those that need a
        new thread (the caller starts them outside the lock)."""
        admission = self._admission
        spawn: list[TaskInfo | None] = []
        while True:
            if self._idle:
                task = admission.admit_next()
                if task is None:
                    break
                worker = self._idle.pop()
                worker.idle = False
                worker.task = task
                worker.wakeup.release()
                continue
            if not self._may_grow_locked(self._size, self.max_size):
                break
            task = admission.admit_next()
            if task is None:
                break
            spawn.append(task)
            self._size += 1
        return spawn

    def _start_threads(self, first_tasks: list[TaskInfo | None]) -> None:
        """Start one thread per entry (``_size`` already counts them).

        A thread the OS refuses fails its task (which would otherwise wait
        for a thread that may never come) and frees its slot, which may
        admit the next queued task at once: an idle worker takes it, or
        another thread is tried.
        """
        pending = list(reversed(first_tasks))
        while pending:
            task = pending.pop()
            worker = _Worker()
            worker.task = task  # not the Thread's args: they outlive the task
            thread = threading.Thread(
                target=self._work,
                args=(worker,),
                name=f"{self._name_prefix}{next(self._numbers)}",
                daemon=True,
            )
            with self._lock:
                self._threads[thread] = worker
            try:
                thread.start()
            except RuntimeError as exc:  # the OS refused a thread
                worker.task = None
                with self._lock:
                    del self._threads[thread]
                    self._size -= 1
                    if task is not None:
                        self._slot_freed_locked()
                    pending.extend(reversed(self._dispatch_locked()))
                if task is not None and task.set_started():
                    task.set_exception(exc)
            del task

    # ------------------------------------------------------------------
    # Nested waits
    # ------------------------------------------------------------------

    def begin_blocking(self) -> None:
        """The calling pool thread blocks on a task of this pool: lend its
        slot and let one more thread start, so the awaited task can run."""
        with self._lock:
            current = threading.current_thread()
            self._blocked.add(current)
            if current not in self._abandoned:  # an abandoned one has no slot
                self._slot_freed_locked()
            spawn = self._dispatch_locked()
        if spawn:
            self._start_threads(spawn)

    def end_blocking(self) -> None:
        """The thread that blocked runs again: it takes its slot back (the
        pool may run one task past its limits until a task ends) and the
        extra thread retires when it frees up."""
        with self._lock:
            current = threading.current_thread()
            self._blocked.discard(current)
            if current not in self._abandoned:  # an abandoned one has no slot
                self._admission.reclaim()

    # ------------------------------------------------------------------
    # Abandoned threads
    # ------------------------------------------------------------------

    def abandon(self, thread: threading.Thread) -> bool:
        """``thread`` still runs a task past its time limit and grace: free its
        slot and its place in the pool (another thread may start for the
        queue); when it returns, it exits. False if it is not a thread of
        this pool (any more)."""
        with self._lock:
            if self._threads.pop(thread, None) is None:
                return False
            self._abandoned.add(thread)
            self._size -= 1
            if thread not in self._blocked:  # a blocked one lent its slot already
                self._slot_freed_locked()
            spawn = self._dispatch_locked()
        if spawn:
            self._start_threads(spawn)
        return True

    def running_tasks(self) -> list[TaskInfo]:
        """The records its threads run now (a caller filters by status: one
        may end meanwhile). O(threads): nothing queued is read."""
        with self._lock:
            workers = list(self._threads.values())
        return [task for task in (w.current for w in workers) if task is not None]

    @property
    def abandoned(self) -> int:
        """Abandoned threads still running."""
        return len(self._abandoned)

    # ------------------------------------------------------------------
    # Worker threads
    # ------------------------------------------------------------------

    def _work(self, worker: _Worker) -> None:
        running.pool = self  # TaskInfo.wait lends this pool a slot
        try:
            task, worker.task = worker.task, None
            if task is None:
                task = self._park(worker)
            while task is not None:
                worker.current = task
                waiters = None
                try:
                    waiters = self._run_task(task)
                except BaseException as exc:  # run_task must not: keep the count
                    logger.exception("task runner failed for %s", task)
                    task.set_exception(exc)  # and the task must end
                # Hold no finished task while waiting for the next one.
                task = worker.current = None
                task = self._next(worker, waiters)
        finally:
            with self._lock:
                self._threads.pop(threading.current_thread(), None)
                self._drained.notify_all()

    def _next(self, worker: _Worker, waiters: list[Waiter] | None) -> TaskInfo | None:
        """Free the finished task's slot; wake its ``waiters``; return the
        next task, or None to exit.

        The waiters are woken last, once this thread has freed the slot and
        taken its next task or parked: the GIL is theirs as soon as this
        thread blocks or runs that task, not after more bookkeeping (and a
        woken waiter sees the slot free).
        """
        park = False
        with self._lock:
            current = threading.current_thread() if self._abandoned else None
            if current is not None and current in self._abandoned:
                # Its slot and place are gone: it exits.
                self._abandoned.discard(current)
                logger.warning("abandoned thread %s returned", current.name)
                task = None
            else:
                self._slot_freed_locked()
                task = self._admission.admit_next()
                if task is None:
                    size = self._size
                    if self._stopping or self._surplus_locked(size, self.max_size):
                        self._size = size - 1  # it exits
                    else:
                        worker.idle = park = True
                        self._idle.push(worker)
        if waiters is not None:
            wake_waiters(waiters)
        return self._wait_handoff(worker) if park else task

    def _park(self, worker: _Worker) -> TaskInfo | None:
        """Wait, idle, for a hand-off; None when the worker should exit."""
        with self._lock:
            if self._stopping:
                self._size -= 1
                return None
            worker.idle = True
            self._idle.push(worker)
        return self._wait_handoff(worker)

    def _wait_handoff(self, worker: _Worker) -> TaskInfo | None:
        """Parked: block until handed a task; None when the worker should exit."""
        while not worker.wakeup.acquire(timeout=self.idle_timeout):
            with self._lock:
                if not worker.idle:
                    # Handed a task just after the timeout: its lock is
                    # already released, so this acquire returns at once.
                    worker.wakeup.acquire()
                    break
                if self._size > self.min_size:
                    self._idle.remove(worker)
                    worker.idle = False
                    self._size -= 1
                    return None
        task, worker.task = worker.task, None
        return task

    # ------------------------------------------------------------------
    # Shutdown
    # ------------------------------------------------------------------

    def shutdown(self, deadline: Deadline) -> list[TaskInfo]:
        """Let queued tasks run until ``deadline``, then stop the threads.

        Args:
            deadline: ``time.monotonic()`` value to wait until; None waits for
                ever; or a function returning the current deadline (see
                :meth:`hurry`).

        Returns:
            The queued tasks that will not run; the caller cancels them.
        """
        with self._lock:
            # A task that stops its own supervisor holds a slot until it returns.
            own = 1 if threading.current_thread() in self._threads else 0
            self._wait_drained_locked(deadline, own)
            dropped = self._admission.drain()
            self._stopping = True
            for worker in self._idle.take_all():
                worker.idle = False
                worker.task = None
                self._size -= 1
                worker.wakeup.release()
        return dropped

    def join(self, deadline: float | None) -> None:
        """Wait for the threads to exit (a hung task's thread is left)."""
        while True:
            with self._lock:
                if not self._threads.keys() - {threading.current_thread()}:
                    return
                remaining = pool_remaining(deadline)
                if remaining is not None and remaining <= 0:
                    return
                self._drained.wait(remaining)
