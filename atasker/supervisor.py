"""TaskSupervisor: configuration, lifecycle, look-up, and the wiring between
the task records, the timer and the pools.

::

    put_task / background_task ──> TaskInfo ──> registry (look-up)
                                      │
                 delay? ── yes ──> Timer ── due ──┐
                                      │ no        ▼
                                      └──────> ThreadPool (Admission)
                                                  │
    record final ──> _task_finished: registry, counters, log, callback

Creating a supervisor starts nothing; ``start()`` creates the pool (and the
timer thread starts with the first delayed task).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import os
import threading
import time
import types
import uuid
from typing import Any, Callable, Union

from .aloop import cancel_coroutine, schedule_coroutine
from .constants import (
    PRIORITIES,
    TASK_NORMAL,
    TASK_STATUS_CANCELED,
    TASK_STATUS_DELAYED,
    TASK_STATUS_QUEUED,
    TASK_STATUS_STARTED,
    TT_COROUTINE,
    TT_MP,
    TT_THREAD,
)
from .errors import SupervisorNotRunningError
from .jobs import JobSchedulerRegistry
from .mpcodec import accepts_task_id, pickle_payload
from .mpconfig import ProcessPoolSettings, check_options
from .processpool import ProcessPool
from .registry import TaskRegistry
from .task import TaskInfo, current_task
from .threadpool import ThreadPool
from .timer import Timer
from .validation import (
    check_callable,
    check_count,
    check_delay,
    check_priority,
    check_task_type,
    check_time_limit,
    check_timeout,
)

logger = logging.getLogger("atasker")

# atasker 0.7's defaults.
DEFAULT_POOL_SIZE = 15
DEFAULT_RESERVE_NORMAL = 5
DEFAULT_RESERVE_HIGH = 5
DEFAULT_POLL_DELAY = 0.1
DEFAULT_TIMEOUT_WARNING = 5.0
DEFAULT_TIMEOUT_CRITICAL = 10.0

Wait = Union[bool, float]


class TaskSupervisor(JobSchedulerRegistry):
    """Owns the pools, the timer and the records of one set of tasks.

    Args:
        supervisor_id: names the supervisor's threads; a random id if None.
        keep_finished: finished records kept for ``get_task`` (oldest dropped
            first).
        keep_finished_age: seconds a finished record is kept at most; None
            keeps it until ``keep_finished`` pushes it out.
        pool_size, reserve_normal, reserve_high: the thread pool's reserve
            rule (see :meth:`set_thread_pool`).

    Attributes:
        poll_delay: accepted for compatibility; nothing polls.
        timeout_warning, timeout_critical: seconds a task may wait in the
            queue before its start is logged at WARNING / CRITICAL and
            ``timeout_warning_func`` / ``timeout_critical_func`` is called
            with its record. None turns the check off.
        log_exceptions: log every failed task at ERROR with its traceback.
    """

    def __init__(
        self,
        supervisor_id: str | None = None,
        keep_finished: int = 10000,
        keep_finished_age: float | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
        reserve_normal: int = DEFAULT_RESERVE_NORMAL,
        reserve_high: int = DEFAULT_RESERVE_HIGH,
    ) -> None:
        super().__init__()
        self.id = str(supervisor_id) if supervisor_id is not None else uuid.uuid4().hex
        self.poll_delay = DEFAULT_POLL_DELAY
        self.timeout_warning: float | None = DEFAULT_TIMEOUT_WARNING
        self.timeout_warning_func: Callable[[TaskInfo], Any] | None = None
        self.timeout_critical: float | None = DEFAULT_TIMEOUT_CRITICAL
        self.timeout_critical_func: Callable[[TaskInfo], Any] | None = None
        self.log_exceptions = True
        self._registry = TaskRegistry(
            check_count(keep_finished, "keep_finished"),
            check_timeout(keep_finished_age, "keep_finished_age"),
        )
        # Task ids: a random prefix per supervisor and a counter, cheaper
        # than a uuid4 per task and unique across supervisors and restarts.
        self._id_prefix = uuid.uuid4().hex[:12]
        self._id_numbers = itertools.count(1)
        self._state_lock = threading.RLock()
        self._stopped = threading.Event()
        self._stopped.set()
        self._active = False
        self._pool: ThreadPool | None = None
        self._timer: Timer | None = None
        self.pool_size = 0
        self.reserve_normal = 0
        self.reserve_high = 0
        self.min_size: int | str = 0
        self.max_size: int | None = None
        self.mp_pool_size = 0
        self.mp_reserve_normal = 0
        self.mp_reserve_high = 0
        # None: fresh interpreters (fork+exec); or a start-method name.
        self.mp_context: Any = None
        self._mp_settings = ProcessPoolSettings()
        # Not None once set_mp_pool() or create_mp_pool() asked for a pool:
        # start() builds it.
        self._mp_options: ProcessPoolSettings | None = None
        self._mp_pool: ProcessPool | None = None
        # Workers and other schedulers -> the future of their loop() (or None).
        self._schedulers: dict[Any, concurrent.futures.Future[Any] | None] = {}
        self.set_thread_pool(
            pool_size=pool_size,
            reserve_normal=reserve_normal,
            reserve_high=reserve_high,
        )

    def __repr__(self) -> str:
        return f"<TaskSupervisor id={self.id!r} active={self._active}>"

    # ------------------------------------------------------------------
    # Configuration
    # ------------------------------------------------------------------

    def set_thread_pool(
        self,
        pool_size: int | None = None,
        reserve_normal: int | None = None,
        reserve_high: int | None = None,
        min_size: int | str | None = None,
        max_size: int | None = None,
    ) -> None:
        """Configure the thread pool; works before and while running.

        Args:
            pool_size: LOW tasks run while fewer than this run; 0: unlimited.
            reserve_normal: extra slots NORMAL (and higher) tasks may use.
            reserve_high: extra slots HIGH tasks may use on top of those.
                CRITICAL tasks always start, growing the pool past max_size.
            min_size: threads started with the pool and kept when idle;
                ``'max'`` for max_size.
            max_size: most threads for non-CRITICAL tasks. Default: the larger
                of ``cpu_count * 5`` and ``pool_size + reserves``.
        Raises:
            TypeError, ValueError: an argument is not an int >= 0.
        """
        with self._state_lock:
            self.pool_size, self.reserve_normal, self.reserve_high = _reserve_rule(
                (self.pool_size, self.reserve_normal, self.reserve_high),
                (pool_size, reserve_normal, reserve_high),
            )
            if max_size is not None:
                if check_count(max_size, "max_size") < 1:
                    raise ValueError(f"max_size must be >= 1; got {max_size!r}")
                self.max_size = max_size
            if min_size is not None:
                if min_size != "max":
                    check_count(min_size, "min_size")
                self.min_size = min_size
            if self._pool is not None:
                self._pool.configure(
                    self.pool_size,
                    self.reserve_normal,
                    self.reserve_high,
                    self._min_threads(),
                    self._max_threads(),
                )

    set_config = set_thread_pool  # atasker's older name

    def set_mp_pool(
        self,
        pool_size: int | None = None,
        reserve_normal: int | None = None,
        reserve_high: int | None = None,
    ) -> None:
        """Configure the process pool's reserve rule and ask for the pool.

        The rule is the thread pool's (see :meth:`set_thread_pool`); every
        start also needs an idle worker process. ``pool_size=0`` (the
        default) leaves the number of processes as the only limit. The pool
        is created at once if the supervisor runs, else by ``start()``; its
        workers start in the background (nothing waits for them).

        Raises:
            TypeError, ValueError: an argument is not an int >= 0.
        """
        with self._state_lock:
            limits = self._mp_settings.set_limits(
                pool_size, reserve_normal, reserve_high
            )
            self.mp_pool_size, self.mp_reserve_normal, self.mp_reserve_high = limits
            self._mp_options = self._mp_settings
            if self._mp_pool is not None:
                self._mp_pool.configure(*limits)
            elif self._active:
                self._start_mp_pool()

    def create_mp_pool(
        self,
        processes: int | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        maxtasksperchild: int | None = None,
        context: Any = None,
    ) -> None:
        """Create the process pool (atasker's call, multiprocessing.Pool's arguments).

        The pool is created at once if the supervisor runs, else by
        ``start()``; it never waits for its workers, which start in the
        background and take tasks as they become ready. Without this call
        the pool is created with defaults by ``set_mp_pool()`` or the first
        process task. A broken pool (see ``ProcessPoolBrokenError``) is
        replaced by a new one.

        Args:
            processes: worker processes; default: ``pool_size`` plus the
                reserves of :meth:`set_mp_pool` if set, else ``cpu_count``.
            initializer, initargs: run in each worker before its first task.
            maxtasksperchild: replace a worker after this many tasks.
            context: a start-method name or a multiprocessing context;
                default ``mp_context``, else fresh interpreters (fork+exec).

        Raises:
            TypeError, ValueError: a bad argument, named in the message.
            RuntimeError: a process pool that is not broken already runs.
        """
        options = check_options(
            processes, initializer, initargs, maxtasksperchild, context, self.mp_context
        )
        with self._state_lock:
            old = self._mp_pool
            if old is not None and old.broken is None:
                raise RuntimeError(
                    f"supervisor {self.id} already runs a process pool; "
                    "stop the supervisor to create another"
                )
            self._mp_settings.options = options
            self._mp_options = self._mp_settings
            if old is not None:
                self._mp_pool = None
                for task in old.shutdown(time.monotonic()):
                    task.set_canceled()
            if self._active:
                self._start_mp_pool()

    def _start_mp_pool(self) -> ProcessPool:
        """Create the process pool (state lock held); it does not wait for
        its workers."""
        pool = self._mp_settings.build(f"supervisor_{self.id}_mp_", self.mp_context)
        self._mp_pool = pool
        return pool

    def _max_threads(self) -> int:
        if self.max_size is not None:
            return self.max_size
        default = (os.cpu_count() or 1) * 5
        if self.pool_size:
            return max(
                default, self.pool_size + self.reserve_normal + self.reserve_high
            )
        return default

    def _min_threads(self) -> int:
        if self.min_size == "max":
            return self._max_threads()
        return min(int(self.min_size), self._max_threads())

    # ------------------------------------------------------------------
    # Lifecycle
    # ------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._active

    def start(self) -> None:
        """Start the pool. Calling it on a started supervisor does nothing."""
        with self._state_lock:
            if self._active:
                return
            self._timer = Timer(f"supervisor_{self.id}_timer", self._task_due)
            self._pool = ThreadPool(
                f"supervisor_{self.id}_pool_",
                self._run_thread_task,
                pool_size=self.pool_size,
                reserve_normal=self.reserve_normal,
                reserve_high=self.reserve_high,
                min_size=self._min_threads(),
                max_size=self._max_threads(),
            )
            if self._mp_options is not None:
                try:
                    self._start_mp_pool()
                except BaseException:
                    self._pool.shutdown(None)
                    self._pool = self._timer = None
                    raise
            self._active = True
            self._stopped.clear()
            logger.info(
                "supervisor %s started, thread pool: %s + %s RN + %s RH",
                self.id,
                self.pool_size,
                self.reserve_normal,
                self.reserve_high,
            )

    def stop(
        self,
        wait: Wait = True,
        stop_schedulers: bool = True,
        cancel_tasks: bool = False,
    ) -> None:
        """Stop accepting tasks, finish or cancel the queued ones, end the threads.

        Args:
            wait: True waits for queued and running tasks; a number waits that
                many seconds at most; False does not wait. Queued tasks still
                waiting at the deadline are canceled; running ones are left
                to finish in daemon threads, which cannot keep the
                interpreter from exiting. Every aloop is stopped too (its
                tasks waited for until the deadline, then cancelled).
            stop_schedulers: first stop every started worker (and other
                registered scheduler) and cancel every async job.
            cancel_tasks: cancel every queued task, and every aloop's
                tasks, at once.

        Delayed tasks are always canceled: they had not entered the queue.
        """
        deadline = _deadline(wait)
        if stop_schedulers:
            self._stop_schedulers(wait is not False)
            self._stop_job_schedulers()
        with self._state_lock:
            if not self._active:
                self._stop_aloops(wait, cancel_tasks)
                return
            self._active = False
            pool, timer, mp_pool = self._pool, self._timer, self._mp_pool
        assert pool is not None and timer is not None
        dropped = [*timer.stop(), *pool.close(cancel_tasks)]
        if mp_pool is not None:
            dropped += mp_pool.close(cancel_tasks)
        for task in dropped:
            task.set_canceled()
        # Coroutines may await thread or process tasks, which still run.
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        self._stop_aloops(True if remaining is None else remaining, cancel_tasks)
        # Both pools drain towards the same deadline; the process pool also
        # ends its worker processes, so it goes last.
        for task in pool.shutdown(deadline):
            task.set_canceled()
        if mp_pool is not None:
            for task in mp_pool.shutdown(deadline):
                task.set_canceled()
            with self._state_lock:
                self._mp_pool = None  # a restart makes a new one
        if wait is not False:
            pool.join(deadline)
        self._stopped.set()
        logger.info("supervisor %s stopped", self.id)

    def register_scheduler(self, scheduler: Any) -> bool:
        """Register a scheduler (atasker's call): its ``loop()`` coroutine, if
        it has one, runs on the supervisor's own loop, and ``stop()`` of the
        supervisor calls its ``stop()``."""
        future = None
        if callable(getattr(scheduler, "loop", None)):
            loop = self._supervisor_aloop().get_loop()
            future = asyncio.run_coroutine_threadsafe(scheduler.loop(), loop)
        with self._state_lock:
            self._schedulers[scheduler] = future
        return True

    def unregister_scheduler(self, scheduler: Any) -> bool:
        """Forget a scheduler (its ``loop()`` is cancelled); False if unknown."""
        with self._state_lock:
            if scheduler not in self._schedulers:
                return False
            future = self._schedulers.pop(scheduler)
        if future is not None:
            future.cancel()
        return True

    def register_sync_scheduler(self, scheduler: Any) -> bool:
        """Register a scheduler that runs on its own; ``stop()`` stops it."""
        with self._state_lock:
            self._schedulers.setdefault(scheduler, None)
        return True

    unregister_sync_scheduler = unregister_scheduler

    def get_schedulers(self) -> list[Any]:
        """The registered schedulers (started workers among them)."""
        with self._state_lock:
            return list(self._schedulers)

    def _stop_schedulers(self, wait: bool) -> None:
        for scheduler in self.get_schedulers():
            try:
                scheduler.stop(wait=wait)
            except Exception:
                logger.exception("stopping scheduler %r failed", scheduler)
            self.unregister_scheduler(scheduler)

    def block(self) -> None:
        """Block the calling thread until the supervisor is stopped."""
        self._stopped.wait()

    # ------------------------------------------------------------------
    # Tasks
    # ------------------------------------------------------------------

    def put_task(
        self,
        target: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        callback: Callable[[Any], Any] | None = None,
        priority: int = TASK_NORMAL,
        delay: float | None = None,
        tt: int = TT_THREAD,
        task_id: str | None = None,
        worker: Any = None,
    ) -> TaskInfo:
        """Run ``target(*args, _task_id=<id>, **kwargs)`` as a task (atasker's call).

        A thread target always gets ``_task_id``; a process target
        (``tt=TT_MP``) only if its signature takes it (a ``_task_id``
        parameter or ``**kwargs``). The task is marked completed when the
        target returns or raises; an explicit :meth:`mark_task_completed` is
        accepted too. ``worker`` is accepted for compatibility.

        Returns:
            The task record.

        Raises:
            TypeError, ValueError: a bad argument (named in the message).
            SupervisorNotRunningError: the supervisor is not started.
        """
        check_callable(target, "target")
        return self.submit(
            target,
            tuple(args),
            dict(kwargs) if kwargs else {},
            priority=priority,
            delay=delay,
            tt=tt,
            callback=callback,
            task_id=task_id,
            pass_task_id=tt != TT_MP or accepts_task_id(target),
        )

    def submit(
        self,
        target: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        priority: int = TASK_NORMAL,
        delay: float | None = None,
        tt: int = TT_THREAD,
        name: str | None = None,
        callback: Callable[[Any], Any] | None = None,
        time_limit: float | None = None,
        loop: Any = None,
        task_id: str | None = None,
        pass_task_id: bool = False,
        checked: bool = False,
    ) -> TaskInfo:
        """Create a task record and queue it (or delay it).

        ``pass_task_id=True`` adds ``_task_id`` to the target's kwargs;
        ``checked=True`` skips argument checks already made (by
        ``background_task`` when it decorated the target). A process task
        (``tt=TT_MP``) is pickled here, so what cannot be pickled is refused
        before a record exists. A coroutine task (``tt=TT_COROUTINE``: the
        target returns an awaitable) runs on ``loop``: an aloop name, an
        ALoop, an asyncio loop, or None for the default aloop.

        Raises:
            TypeError, ValueError: a bad argument (named in the message).
            SupervisorNotRunningError: the supervisor is not started.
            ProcessPoolStartError: the process pool, started by this first
                process task, could not start.
        """
        if not checked:
            check_callable(target, "target")
            priority = check_priority(priority)
            delay = check_delay(delay)
            tt = check_task_type(tt)
            check_callable(callback, "callback", allow_none=True)
            time_limit = check_time_limit(time_limit, tt)
        pool, timer = self._pool, self._timer
        if not self._active or pool is None or timer is None:
            raise SupervisorNotRunningError(
                f"supervisor {self.id} is not running: call start() first"
            )
        if task_id is None:
            task_id = f"{self._id_prefix}-{next(self._id_numbers)}"
        else:
            task_id = str(task_id)
        if pass_task_id:
            kwargs["_task_id"] = task_id
        task = TaskInfo(
            task_id,
            target,
            args,
            kwargs,
            tt=tt,
            priority=priority,
            name=name,
            delay=delay,
            callback=callback,
            time_limit=time_limit,
            owner=self,
        )
        if tt == TT_MP:
            task.payload = pickle_payload(target, args, kwargs)
            submit = self._mp_submitter()
        elif tt == TT_COROUTINE:
            task.handle = self.resolve_loop(loop)
            submit = self._start_coroutine
        else:
            submit = pool.submit
        self._registry.add(task)
        accepted = timer.schedule(task, delay) if delay else submit(task)
        if not accepted:
            self._registry.remove(task)
            raise SupervisorNotRunningError(f"supervisor {self.id} is stopping")
        return task

    def _start_coroutine(self, task: TaskInfo) -> bool:
        """Schedule a coroutine task on its loop (``task.handle``)."""
        try:
            schedule_coroutine(task, task.handle)
        except RuntimeError:
            return False
        return True

    def _mp_submitter(self) -> Callable[[TaskInfo], bool]:
        """The process pool's submit; the pool starts on the first process task."""
        mp_pool = self._mp_pool
        if mp_pool is None:
            with self._state_lock:
                if not self._active:
                    raise SupervisorNotRunningError(f"supervisor {self.id} is stopping")
                mp_pool = self._mp_pool or self._start_mp_pool()
        return mp_pool.submit

    def mark_task_completed(
        self, task: TaskInfo | str | None = None, task_id: str | None = None
    ) -> bool:
        """Mark a running task completed (atasker's call; idempotent).

        Args:
            task: the record or its id; None: the task running in this thread.
            task_id: the id, as atasker passes it in ``_task_id``.

        Returns:
            True if the task was found (whether or not it was already final).
        """
        record: TaskInfo | None
        if isinstance(task, TaskInfo):
            record = task
        elif task is not None or task_id is not None:
            record = self._registry.get(str(task if task is not None else task_id))
        else:
            record = current_task()
        if record is None:
            return False
        if record.status == TASK_STATUS_STARTED:
            record.set_result(None)
        return True

    def get_task(self, task_id: TaskInfo | str) -> TaskInfo | None:
        """The record with ``task_id`` while it is kept; else None."""
        if isinstance(task_id, TaskInfo):
            task_id = task_id.id
        return self._registry.get(str(task_id))

    def get_tasks(self, tt: int | None = None) -> list[TaskInfo]:
        """Unfinished records (queued, delayed, running), of type ``tt`` if given."""
        tasks = self._registry.active()
        if tt is None:
            return tasks
        return [task for task in tasks if task.tt == tt]

    def get_info(self) -> types.SimpleNamespace:
        """A snapshot of the supervisor's state (atasker's fields and more).

        Returns:
            A namespace with ``id, active, started, thread_pool_size,
            thread_reserve_normal, thread_reserve_high, thread_tasks`` (running
            thread-task records), ``thread_tasks_count, mp_tasks`` (running
            process-task records), ``mp_tasks_count, tasks`` (id ->
            unfinished record), and ``thread_pool_threads, queued`` (priority
            -> count), ``mp_pool_size, mp_reserve_normal, mp_reserve_high,
            mp_queued, mp_pids`` (worker process ids), ``aloops`` (name ->
            ALoop), ``default_aloop, async_job_schedulers, schedulers``
            (started workers), ``delayed,
            completed, failed, canceled, kept_finished``.
        """
        active = self._registry.active()
        started = [t for t in active if t.status == TASK_STATUS_STARTED]
        running = [t for t in started if t.tt == TT_THREAD]
        mp_running = [t for t in started if t.tt == TT_MP]
        pool, mp_pool = self._pool, self._mp_pool
        registry = self._registry
        queued = pool.queued() if pool is not None else dict.fromkeys(PRIORITIES, 0)
        mp_queued = (
            mp_pool.queued() if mp_pool is not None else dict.fromkeys(PRIORITIES, 0)
        )
        return types.SimpleNamespace(
            id=self.id,
            active=self._active,
            started=self._active,
            thread_pool_size=self.pool_size,
            thread_reserve_normal=self.reserve_normal,
            thread_reserve_high=self.reserve_high,
            thread_pool_threads=pool.size if pool is not None else 0,
            thread_tasks=running,
            thread_tasks_count=len(running),
            mp_pool_size=self.mp_pool_size,
            mp_reserve_normal=self.mp_reserve_normal,
            mp_reserve_high=self.mp_reserve_high,
            mp_tasks=mp_running,
            mp_tasks_count=len(mp_running),
            mp_queued=mp_queued,
            mp_pids=mp_pool.pids() if mp_pool is not None else [],
            aloops=self.get_aloops(),
            async_job_schedulers=self.get_async_job_schedulers(),
            schedulers=self.get_schedulers(),
            default_aloop=self.default_aloop,
            tasks={t.id: t for t in active},
            queued=queued,
            delayed=sum(1 for t in active if t.status == TASK_STATUS_DELAYED),
            completed=registry.completed,
            failed=registry.failed,
            canceled=registry.canceled,
            kept_finished=registry.finished_count(),
        )

    # ------------------------------------------------------------------
    # Callbacks from the timer, the pool and the records
    # ------------------------------------------------------------------

    def _task_due(self, task: TaskInfo) -> None:
        """Timer thread: a delayed task is due."""
        if not task.set_queued():
            return  # canceled meanwhile
        if task.tt == TT_COROUTINE:
            if not self._start_coroutine(task):
                task.set_exception(RuntimeError("the task's loop is closed"))
            return
        pool: ThreadPool | ProcessPool | None = (
            self._mp_pool if task.tt == TT_MP else self._pool
        )
        if pool is None or not pool.submit(task):
            task.set_canceled()  # stopping: accepted, so it must end

    def _run_thread_task(self, task: TaskInfo) -> None:
        """Pool thread: report a long queue wait, then run the task."""
        waited = time.time() - task.time_queued
        critical, warning = self.timeout_critical, self.timeout_warning
        if critical is not None and waited > critical:
            self._report_wait(
                task, waited, logging.CRITICAL, self.timeout_critical_func
            )
        elif warning is not None and waited > warning:
            self._report_wait(task, waited, logging.WARNING, self.timeout_warning_func)
        task.run()

    def _report_wait(
        self,
        task: TaskInfo,
        waited: float,
        level: int,
        func: Callable[[TaskInfo], Any] | None,
    ) -> None:
        logger.log(
            level,
            "task %s (%s) started after %.3f s in the queue: "
            "increase the pool size or reduce the load",
            task.id,
            task.name,
            waited,
        )
        if func is not None:
            try:
                func(task)
            except Exception:
                logger.exception("timeout function %r failed", func)

    def _task_finished(self, task: TaskInfo, previous: int) -> None:
        """A record reached its final status (called under the record's lock:
        only bookkeeping here, no user code)."""
        if task.status == TASK_STATUS_CANCELED:
            if previous == TASK_STATUS_QUEUED:
                pool = self._mp_pool if task.tt == TT_MP else self._pool
                if pool is not None:
                    pool.discard(task)
            elif previous == TASK_STATUS_DELAYED and self._timer is not None:
                self._timer.discard(task)
        self._registry.finish(task)

    def _cancel_running(self, task: TaskInfo) -> bool:
        """Cancel a started task: a process or coroutine task, not a thread."""
        mp_pool = self._mp_pool
        if task.tt == TT_MP and mp_pool is not None:
            return mp_pool.cancel_running(task)
        if task.tt == TT_COROUTINE:
            return cancel_coroutine(task)
        return False

    def _task_failed(self, task: TaskInfo) -> None:
        """A record ended with an exception (called by the record, no lock held)."""
        if task.exception is not None and self.log_exceptions:
            logger.error(
                "task %s (%s) failed",
                task.id,
                task.name,
                exc_info=(
                    type(task.exception),
                    task.exception,
                    task.exception.__traceback__,
                ),
            )


def _reserve_rule(
    current: tuple[int, int, int], new: tuple[int | None, int | None, int | None]
) -> tuple[int, int, int]:
    """``(pool_size, reserve_normal, reserve_high)``: ``new`` where given
    (checked to be ints >= 0), else ``current``."""
    names = ("pool_size", "reserve_normal", "reserve_high")
    pool_size, reserve_normal, reserve_high = (
        old if value is None else check_count(value, name)
        for old, value, name in zip(current, new, names)
    )
    return pool_size, reserve_normal, reserve_high


def _deadline(wait: Any) -> float | None:
    """``time.monotonic()`` deadline for ``stop(wait=...)``; None: no limit."""
    if wait is True:
        return None
    if wait is False:
        return time.monotonic()
    seconds = check_timeout(wait, "wait")
    assert seconds is not None
    return time.monotonic() + seconds


# The default supervisor: created at import, starts nothing until start().
task_supervisor = TaskSupervisor(supervisor_id="default")
