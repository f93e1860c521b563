"""TaskSupervisor: the lifecycle, and the wiring between the task records,
the timer and the pools.

::

    TaskSupervisor = lifecycle (here; the state machine in lifecycle.py)
                   + TaskDispatch (dispatch.py): records to pools and back
                   + TaskEvents (eventing.py): subscribe, events
                   + ClassTaskControl (classtasks/control.py): class tasks
                   + ExternalPools (extpools.py): add_pool, remove_pool, mp_pool
                   + TaskLookup (info.py): get_task, get_tasks, get_info
                   + ThreadPoolConfig, ProcessPoolConfig, QueueWaitReports
                   + aloops, async jobs (aloop.py, jobs.py), schedulers

Creating a supervisor starts nothing; ``start()`` creates the pool (and the
timer thread starts with the first delayed task). Starting and stopping are
the transitions of one state machine (see lifecycle.py).
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any, Union

from .aio.jobs import JobSchedulerRegistry
from .classtasks.control import ClassTaskControl
from .control.dispatch import TaskDispatch
from .control.eventing import TaskEvents
from .control.extpools import ExternalPools
from .control.info import TaskLookup
from .control.lifecycle import (
    RUNNING,
    Lifecycle,
    StopRequest,
    interrupts_atasker_code,
    track,
)
from .control.schedulers import SchedulerRegistry
from .core.constants import TASK_STATUS_DELAYED
from .core.events import EventBus
from .core.registry import TaskRegistry
from .core.timer import Timer
from .core.validation import (
    check_count,
    check_timeout,
    check_wait,
)
from .pools.mpconfig import ProcessPoolConfig
from .pools.mpthreads import UserCodeThread
from .pools.pool import AdmittingPool, remaining
from .pools.queuewait import QueueWaitReports
from .pools.threadattempt import ThreadLimits
from .pools.threadconfig import ThreadPoolConfig
from .pools.threadpool import ThreadPool

logger = logging.getLogger("atasker")

# atasker 0.7's defaults.
DEFAULT_POOL_SIZE = 15
DEFAULT_RESERVE_NORMAL = 5
DEFAULT_RESERVE_HIGH = 5
DEFAULT_POLL_DELAY = 0.1
# Seconds a thread task may run past its hard time limit before its thread is
# abandoned (no longer counted by the pool).
DEFAULT_TIME_LIMIT_GRACE = 1.0

Wait = Union[bool, float]


class TaskSupervisor(
    TaskDispatch,
    TaskEvents,
    ClassTaskControl,
    ExternalPools,
    TaskLookup,
    QueueWaitReports,
    ThreadPoolConfig,
    ProcessPoolConfig,
    JobSchedulerRegistry,
):
    """Owns the pools, the timer and the records of one set of tasks.

    Args:
        supervisor_id: names the supervisor's threads; a random id if None.
        keep_finished: finished records kept for ``get_task`` (oldest dropped
            first).
        keep_finished_age: seconds a finished record is kept at most; None
            keeps it until ``keep_finished`` pushes it out.
        time_limit_grace: seconds a thread task may run on past its hard
            ``time_limit`` (the exception raised in its thread arrives only
            when it next runs Python code) before its thread is abandoned.
        pool_size, reserve_normal, reserve_high: the thread pool's reserve
            rule (see :meth:`set_thread_pool`).

    Attributes:
        poll_delay: accepted for compatibility; nothing polls.
        timeout_warning, timeout_critical: seconds a task may wait in the
            queue before its start is logged at WARNING / CRITICAL and
            ``timeout_warning_func`` / ``timeout_critical_func`` is called
            with its record. None turns the check off.
        log_exceptions: log every failed task at ERROR with its traceback.
        time_limit_grace: see Args; read when a hard limit passes.
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
        time_limit_grace: float = DEFAULT_TIME_LIMIT_GRACE,
    ) -> None:
        super().__init__()
        self.id = str(supervisor_id) if supervisor_id is not None else uuid.uuid4().hex
        self._events.thread_prefix = f"supervisor_{self.id}_"
        self.poll_delay = DEFAULT_POLL_DELAY
        self._registry = TaskRegistry(
            check_count(keep_finished, "keep_finished"),
            check_timeout(keep_finished_age, "keep_finished_age"),
        )
        check_wait(exit_wait, "exit_wait")  # checked now, used at exit
        self.exit_wait = exit_wait
        self.time_limit_grace = time_limit_grace
        self._lifecycle = Lifecycle(self.id)
        # Where user code that internal threads must not run goes.
        self._user_code = UserCodeThread(f"supervisor_{self.id}_callbacks")
        # Configuration and the current pools; taken inside the lifecycle's
        # lock, never around it.
        self._state_lock = threading.RLock()
        self._pool: ThreadPool | None = None
        self._timer: Timer | None = None
        self._limits: ThreadLimits | None = None
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
    def time_limit_grace(self) -> float:
        """Seconds a thread task may run on past its hard ``time_limit``
        before its thread is abandoned (see the constructor)."""
        return self._time_limit_grace

    @time_limit_grace.setter
    def time_limit_grace(self, seconds: float) -> None:
        grace = check_timeout(seconds, "time_limit_grace")
        if grace is None:
            raise TypeError(
                "time_limit_grace must be a number of seconds >= 0; got None"
            )
        self._time_limit_grace = grace

    # ------------------------------------------------------------------
    # Lifecycle
    # ------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._lifecycle.state == RUNNING

    _active = active  # the name the supervisor's parts use

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
            self._events.open()
            self._user_code = UserCodeThread(f"supervisor_{self.id}_callbacks")
            self._limits = ThreadLimits(
                timer, lambda: self.time_limit_grace, self._run_user_code
            )
            try:
                if self._mp_options is not None:
                    self._start_mp_pool()
                self._start_external_pools()
            except BaseException:
                pool.shutdown(None)
                mp_pool, self._mp_pool = self._mp_pool, None
                if mp_pool is not None:
                    mp_pool.shutdown(None)
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
        # Class tasks are asked to stop, as stop_task() does, before the
        # pools drain (they would otherwise run until the deadline).
        self._stop_class_tasks()
        with self._state_lock:
            pool, timer, mp_pool = self._pool, self._timer, self._mp_pool
        assert pool is not None and timer is not None
        # Before the pools close: a cancel_tasks from a later stop() then
        # finds them, whenever it comes.
        external = self._external_pools()
        pools: list[AdmittingPool] = [pool, *external]
        if mp_pool is not None:
            pools.append(mp_pool)
        request.on_hurry(lambda: self._hurry(request, pools))
        dropped = timer.stop()
        for each in pools:
            dropped += each.close(request.cancel_tasks)
        # First what waits in no queue (for its dependencies, or its next
        # attempt while that attempt's hooks run): only the stop can end it.
        # Newest first, and before the tasks above: a dependant then ends
        # "stopped", not "dependency failed" by what it depends on.
        dropped[:0] = [
            t
            for t in reversed(self._registry.active())
            if t.status == TASK_STATUS_DELAYED and t._container is None
        ]
        for task in dropped:
            task.set_canceled(reason="stopped")
        if not request.stop_schedulers:
            # Workers left running end before their loops do.
            self._stop_schedulers(request.deadline())
        # Coroutines may await thread or process tasks, which still run.
        self._stop_aloops(request.deadline(), request.cancel_tasks)
        # Both pools drain towards the same deadline; the process pool also
        # ends its worker processes, so it goes last.
        for task in pool.shutdown(request.deadline):
            task.set_canceled(reason="stopped")
        self._stop_external_pools(request.deadline)
        if mp_pool is not None:
            for task in mp_pool.shutdown(request.deadline):
                task.set_canceled(reason="stopped")
        pool.join(request.deadline())
        # Last: until the pools drained, their tasks' time limits applied.
        timer.close()
        left = remaining(request.deadline)
        self._user_code.close(None if left is None else max(0.0, left))
        # What the tasks published is delivered, then the subscribers'
        # threads end (they start again with the next event).
        self._events.close(request.deadline())
        with self._state_lock:
            self._pool = self._timer = None
            self._limits = None
            self._mp_pool = None  # a restart makes a new one

    @staticmethod
    def _hurry(request: StopRequest, pools: list[AdmittingPool]) -> None:
        """A later stop() made this one more urgent."""
        for each in pools:
            if request.cancel_tasks:
                for task in each.close(True):
                    task.set_canceled(reason="stopped")
            each.hurry()

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
        self._limits = None
        self._mp_pool = None
        self._external, self._retired = {}, []  # the parent's threads
        self._user_code = UserCodeThread(f"supervisor_{self.id}_callbacks")
        self._registry = TaskRegistry(
            self._registry.keep_finished, self._registry.keep_finished_age
        )
        self._reset_aloops_after_fork()
        self._schedulers.reset_after_fork()
        self._events = EventBus(f"supervisor_{self.id}_")

    # The scheduler registry (atasker.control.schedulers) ----------------------

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


# The default supervisor: created at import, starts nothing until start().
task_supervisor = TaskSupervisor(supervisor_id="default")
