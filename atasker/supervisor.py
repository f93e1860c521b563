"""TaskSupervisor: the lifecycle, and the wiring between the task records,
the timer and the pools.

::

    put_task / background_task ──> TaskInfo ──> registry (look-up)
                                      │
                 delay? ── yes ──> Timer ── due ──┐
                                      │ no        ▼
                                      └──────> ThreadPool (Admission)
                                                  │
    record final ──> _task_finished: registry, counters, log, callback

Creating a supervisor starts nothing; ``start()`` creates the pool (and the
timer thread starts with the first delayed task). Starting and stopping are
the transitions of one state machine (see lifecycle.py).
"""

from __future__ import annotations

import itertools
import logging
import threading
import uuid
from typing import Any, Callable, Union

from .aloop import cancel_coroutine, schedule_coroutine
from .constants import (
    TASK_NORMAL,
    TT_COROUTINE,
    TT_MP,
    TT_THREAD,
)
from .errors import SupervisorNotRunningError
from .info import TaskLookup
from .jobs import JobSchedulerRegistry
from .lifecycle import RUNNING, Lifecycle, StopRequest, interrupts_atasker_code, track
from .mpcodec import accepts_task_id, pickle_payload
from .mpconfig import ProcessPoolSettings, check_options
from .processpool import ProcessPool
from .queuewait import QueueWaitReports
from .registry import TaskRegistry
from .schedulers import SchedulerRegistry
from .task import TaskInfo
from .threadconfig import ThreadPoolConfig
from .threadpool import ThreadPool
from .timer import Timer
from .validation import (
    check_args,
    check_callable,
    check_count,
    check_delay,
    check_kwargs,
    check_priority,
    check_task_type,
    check_time_limit,
    check_timeout,
    check_wait,
)

logger = logging.getLogger("atasker")

# atasker 0.7's defaults.
DEFAULT_POOL_SIZE = 15
DEFAULT_RESERVE_NORMAL = 5
DEFAULT_RESERVE_HIGH = 5
DEFAULT_POLL_DELAY = 0.1

Wait = Union[bool, float]


class TaskSupervisor(
    TaskLookup, QueueWaitReports, ThreadPoolConfig, JobSchedulerRegistry
):
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
        keep_finished: int = 0,
        keep_finished_age: float | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
        reserve_normal: int = DEFAULT_RESERVE_NORMAL,
        reserve_high: int = DEFAULT_RESERVE_HIGH,
        exit_wait: Wait = True,
    ) -> None:
        super().__init__()
        self.id = str(supervisor_id) if supervisor_id is not None else uuid.uuid4().hex
        self.poll_delay = DEFAULT_POLL_DELAY
        self.log_exceptions = True
        self._registry = TaskRegistry(
            check_count(keep_finished, "keep_finished"),
            check_timeout(keep_finished_age, "keep_finished_age"),
        )
        # Task ids: a random prefix per supervisor and a counter, cheaper
        # than a uuid4 per task and unique across supervisors and restarts.
        self._id_prefix = uuid.uuid4().hex[:12]
        self._id_numbers = itertools.count(1)
        check_wait(exit_wait, "exit_wait")  # checked now, used at exit
        self.exit_wait = exit_wait
        self._lifecycle = Lifecycle(self.id)
        # Configuration and the current pools; taken inside the lifecycle's
        # lock, never around it.
        self._state_lock = threading.RLock()
        self._pool: ThreadPool | None = None
        self._timer: Timer | None = None
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
        # Workers and other schedulers; stop() stops them.
        self._schedulers = SchedulerRegistry(
            lambda: self._supervisor_aloop().get_loop()
        )
        self.set_thread_pool(
            pool_size=pool_size,
            reserve_normal=reserve_normal,
            reserve_high=reserve_high,
        )
        track(self)

    def __repr__(self) -> str:
        return f"<TaskSupervisor id={self.id!r} {self._lifecycle.state}>"

    @property
    def _active(self) -> bool:
        return self._lifecycle.state == RUNNING

    @property
    def mp_pool(self) -> ProcessPool | None:
        """The process pool while one runs, else None.

        Setting it (atasker 0.7 let a ``multiprocessing.Pool`` be assigned)
        raises TypeError: use :meth:`create_mp_pool`.
        """
        return self._mp_pool

    @mp_pool.setter
    def mp_pool(self, pool: Any) -> None:
        raise TypeError(
            f"supervisor {self.id}: assigning mp_pool ({pool!r}) is not supported: "
            "call create_mp_pool(processes=..., initializer=..., ...) to set up "
            "the process pool (atasker runs its own, crash-proof workers)"
        )

    # ------------------------------------------------------------------
    # Configuration
    # ------------------------------------------------------------------

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
                for task in old.shutdown(None):  # broken: nothing runs
                    task.set_canceled()
            if self._active:
                self._start_mp_pool()

    def _start_mp_pool(self) -> ProcessPool:
        """Create the process pool (state lock held); it does not wait for
        its workers."""
        pool = self._mp_settings.build(f"supervisor_{self.id}_mp_", self.mp_context)
        self._mp_pool = pool
        return pool

    # ------------------------------------------------------------------
    # Lifecycle
    # ------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._lifecycle.state == RUNNING

    def start(self, daemon: bool | None = None) -> None:
        """Start the pools. Calling it on a started supervisor does nothing.

        During a stop it waits until the stop is done, then starts afresh.

        Args:
            daemon: accepted for atasker 0.7 compatibility; the supervisor's
                threads never keep the interpreter alive.

        Raises:
            RuntimeError: called from one of the supervisor's own threads
                while it stops (it would wait for itself).
        """
        self._lifecycle.start(self._start_components)

    def _start_components(self) -> None:
        """Build the timer and the pools (the lifecycle's lock is held)."""
        with self._state_lock:
            timer = Timer(f"supervisor_{self.id}_timer", self._task_due)
            pool = ThreadPool(
                f"supervisor_{self.id}_pool_",
                self._run_thread_task,
                pool_size=self.pool_size,
                reserve_normal=self.reserve_normal,
                reserve_high=self.reserve_high,
                min_size=self._min_threads(),
                max_size=self._max_threads(),
            )
            self._pool, self._timer = pool, timer
            if self._mp_options is not None:
                try:
                    self._start_mp_pool()
                except BaseException:
                    pool.shutdown(None)
                    self._pool = self._timer = None
                    raise
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

        Safe from any thread. From one of the supervisor's own threads (a
        task, a callback, a coroutine task, a worker's executor) or from a
        signal handler that interrupted atasker code, the stop goes on in a
        thread of its own and this returns at once; :meth:`block` returns
        when it is done. A stop() while another runs joins it (an earlier
        deadline or ``cancel_tasks`` makes it more urgent) and returns when
        that stop is done.

        Args:
            wait: True waits for queued and running tasks; a number waits that
                many seconds at most; False does not wait. Queued tasks still
                waiting at the deadline are canceled; running ones are left
                to finish in daemon threads, which cannot keep the
                interpreter from exiting. Every aloop is stopped too (its
                tasks waited for until the deadline, then cancelled).
            stop_schedulers: first stop every started worker (and other
                registered scheduler) and cancel every async job; with False
                their loops are cancelled with the supervisor's.
            cancel_tasks: cancel every queued task, and every aloop's
                tasks, at once.

        Delayed tasks are always canceled: they had not entered the queue.
        """
        deadline = check_wait(wait)
        if interrupts_atasker_code():
            # A signal handler: the code it interrupted may hold any of our
            # locks. Take none in this thread.
            threading.Thread(
                target=self._stop,
                args=(deadline, stop_schedulers, cancel_tasks),
                name=f"supervisor_{self.id}_stop",
                daemon=True,
            ).start()
            return
        self._stop(deadline, stop_schedulers, cancel_tasks)

    def _stop(
        self, deadline: float | None, stop_schedulers: bool, cancel_tasks: bool
    ) -> None:
        if not self._lifecycle.stop(
            deadline, cancel_tasks, stop_schedulers, self._stop_components
        ):
            # Not running: aloops may run all the same (0.7 let them start first).
            self._stop_aloops(deadline, cancel_tasks)

    def _stop_components(self, request: StopRequest) -> None:
        """The stop itself (STOPPING); every wait keeps to the request's deadline."""
        if request.stop_schedulers:
            self._stop_schedulers(request.deadline())
            self._stop_job_schedulers()
        with self._state_lock:
            pool, timer, mp_pool = self._pool, self._timer, self._mp_pool
        assert pool is not None and timer is not None
        # Before the pools close: a cancel_tasks from a later stop() then
        # finds them, whenever it comes.
        request.on_hurry(lambda: self._hurry(request, pool, mp_pool))
        dropped = [*timer.stop(), *pool.close(request.cancel_tasks)]
        if mp_pool is not None:
            dropped += mp_pool.close(request.cancel_tasks)
        for task in dropped:
            task.set_canceled()
        # Workers left running (stop_schedulers=False) end before their loops.
        self._stop_schedulers(request.deadline())
        # Coroutines may await thread or process tasks, which still run.
        self._stop_aloops(request.deadline(), request.cancel_tasks)
        # Both pools drain towards the same deadline; the process pool also
        # ends its worker processes, so it goes last.
        for task in pool.shutdown(request.deadline):
            task.set_canceled()
        if mp_pool is not None:
            for task in mp_pool.shutdown(request.deadline):
                task.set_canceled()
        pool.join(request.deadline())
        with self._state_lock:
            self._pool = self._timer = None
            self._mp_pool = None  # a restart makes a new one

    @staticmethod
    def _hurry(
        request: StopRequest, pool: ThreadPool, mp_pool: ProcessPool | None
    ) -> None:
        """A later stop() made this one more urgent."""
        pools: list[Any] = [pool] if mp_pool is None else [pool, mp_pool]
        for each in pools:
            if request.cancel_tasks:
                for task in each.close(True):
                    task.set_canceled()
            hurry = getattr(each, "hurry", None)
            if hurry is not None:
                hurry()

    def block(self) -> None:
        """Block the calling thread until the supervisor is stopped (at once
        if it never started)."""
        self._lifecycle.wait_stopped()

    def _stop_at_exit(self) -> None:
        """Interpreter exit: stop as ``stop(wait=exit_wait)`` would."""
        self.stop(wait=self.exit_wait)

    def _after_fork_in_child(self) -> None:
        """In a child made by os.fork(): no thread of ours exists here. Leave
        a stopped supervisor, with the same configuration, that can start."""
        self._lifecycle.reset_after_fork()
        self._state_lock = threading.RLock()
        self._pool = self._timer = None
        self._mp_pool = None
        self._registry = TaskRegistry(
            self._registry.keep_finished, self._registry.keep_finished_age
        )
        self._reset_aloops_after_fork()
        for scheduler in self._schedulers.get():
            reset = getattr(scheduler, "_reset_after_fork", None)
            if reset is not None:
                reset()
        self._schedulers = SchedulerRegistry(
            lambda: self._supervisor_aloop().get_loop()
        )

    # The scheduler registry (atasker.schedulers) ----------------------

    def register_scheduler(self, scheduler: Any) -> bool:
        """Register a scheduler (atasker's call): its ``loop()`` coroutine, if
        it has one, runs on the supervisor's own loop, and ``stop()`` of the
        supervisor calls its ``stop()``."""
        return self._schedulers.register(scheduler)

    def unregister_scheduler(self, scheduler: Any) -> bool:
        """Forget a scheduler (its ``loop()`` is cancelled); False if unknown."""
        return self._schedulers.unregister(scheduler)

    def register_sync_scheduler(self, scheduler: Any) -> bool:
        """Register a scheduler that runs on its own; ``stop()`` stops it."""
        return self._schedulers.register_sync(scheduler)

    unregister_sync_scheduler = unregister_scheduler

    def get_schedulers(self) -> dict[Any, Any]:
        """The registered schedulers (started workers among them): scheduler
        -> the future of its ``loop()``, or None."""
        return self._schedulers.get()

    def _stop_schedulers(self, deadline: float | None) -> None:
        """Stop every scheduler by ``deadline`` (``time.monotonic()``; None:
        no limit)."""
        self._schedulers.stop_schedulers(deadline)

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
            check_args(args),
            check_kwargs(kwargs),
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
            if not isinstance(args, tuple):
                args = check_args(args)
            if type(kwargs) is not dict or not all(type(k) is str for k in kwargs):
                kwargs = check_kwargs(kwargs)
            priority = check_priority(priority)
            delay = check_delay(delay)
            tt = check_task_type(tt)
            check_callable(callback, "callback", allow_none=True)
            time_limit = check_time_limit(time_limit, tt)
        pool, timer = self._pool, self._timer
        if pool is None or timer is None or not self._active:
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
        try:
            accepted = timer.schedule(task, delay) if delay else submit(task)
        except BaseException:
            self._registry.remove(task)
            raise
        if not accepted:
            self._registry.remove(task)
            raise SupervisorNotRunningError(f"supervisor {self.id} is stopping")
        return task

    @staticmethod
    def _start_coroutine(task: TaskInfo) -> bool:
        """Schedule a coroutine task on its loop (``task.handle``).

        Raises:
            RuntimeError: the loop is closed (says which).
        """
        schedule_coroutine(task, task.handle)
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

    # ------------------------------------------------------------------
    # Callbacks from the timer, the pool and the records
    # ------------------------------------------------------------------

    def _task_due(self, task: TaskInfo) -> None:
        """Timer thread: a delayed task is due."""
        if not task.set_queued():
            return  # canceled meanwhile
        # The timer's thread must not run user code: done callbacks of a task
        # that ends here run on a thread of their own (this is rare).
        if task.tt == TT_COROUTINE:
            try:
                self._start_coroutine(task)
            except RuntimeError as exc:
                task.set_exception(exc, defer=self._run_user_code)
            return
        pool: ThreadPool | ProcessPool | None = (
            self._mp_pool if task.tt == TT_MP else self._pool
        )
        if pool is None or not pool.submit(task):
            # Stopping: accepted, so it must end.
            task.set_canceled(defer=self._run_user_code)

    def _run_user_code(self, notify: Callable[[], None]) -> None:
        """Run a record's callbacks (they catch what they raise) off the
        calling internal thread."""
        threading.Thread(
            target=notify, name=f"supervisor_{self.id}_callbacks", daemon=True
        ).start()

    def _task_finished(self, task: TaskInfo, previous: int) -> None:
        """A record reached its final status (called under the record's lock:
        only bookkeeping here, no user code; the record has left its queue)."""
        self._registry.finish(task)

    def _cancel_running(self, task: TaskInfo) -> bool:
        """Cancel a started task: a process or coroutine task, not a thread."""
        if task.tt == TT_MP:
            # The pool that runs it (set when it started), not the current
            # one: a restart may have made another.
            mp_pool = task.handle if isinstance(task.handle, ProcessPool) else None
            mp_pool = mp_pool or self._mp_pool
            return mp_pool.cancel_running(task) if mp_pool is not None else False
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


# The default supervisor: created at import, starts nothing until start().
task_supervisor = TaskSupervisor(supervisor_id="default")
