"""ExternalPool: someone else's executor behind our exact-priority queue.

::

    submit ──> Admission (ready queue + reserve rule), under the pool lock
                  │ notify
    hand-over thread: admit the head ──> STARTED ──> adapter.submit ──> engine
                                                        │ (its queue stays empty:
                                                        │  only admitted tasks go)
    engine's future done (any thread) ──> the record: result, exception
        (a lost worker: WorkerLostError), cancellation ──> slot freed, notify
    time limit (timer thread) ──> TaskTimeoutError, the future cancelled if it can be
    cancel() of a running task ──> the future's cancel(); else cancel_requested

A task is handed over only while fewer than its priority allows are in
flight there, so the engine never holds a backlog of ours: priorities and
cancel-while-queued hold whatever the engine's own queue does. One thread
per pool hands tasks over, in order, so that neither a submitter nor the
engine's callback thread ever calls into the engine. The records' hooks and
callbacks run on the supervisor's callbacks thread, never on the engine's.

Each task in flight is a :class:`Flight`; whichever ends it first (the
future, the time limit, a cancel, the shutdown) takes it out of ``_flights``
under the lock, and only that one gives the record its outcome.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

from ..core.errors import time_limit_error
from ..core.task import TaskInfo
from ..core.timer import TimerCall
from .executors import CANCELLED, Adapter, lost_worker
from .pool import AdmittingPool, Deadline, remaining

logger = logging.getLogger("atasker")

Defer = Callable[[Callable[[], None]], None]
CallAt = Callable[[float, Callable[[], object]], "TimerCall | None"]


@dataclass(frozen=True)
class PoolInfo:
    """One external pool in ``get_info().pools``.

    Attributes:
        size, reserve_normal, reserve_high: its reserve rule.
        running: tasks handed over and not yet ended.
        queued: tasks waiting in our queue for it, by priority.
    """

    size: int
    reserve_normal: int
    reserve_high: int
    running: int
    queued: dict[int, int]


class Flight:
    """A task handed over: its attempt, the engine's handle, its limit."""

    __slots__ = ("attempt", "handle", "limit", "task")

    def __init__(self, task: TaskInfo) -> None:
        self.task = task
        self.attempt = task.attempt or None  # None: a record that keeps no count
        self.handle: Any = None
        self.limit: TimerCall | None = None


class ExternalPool(AdmittingPool):
    """See the module docstring.

    Args:
        name: the pool's name (``pool=`` of its tasks).
        adapter: the executor, adapted (executors.py).
        size, reserve_normal, reserve_high: the reserve rule.
        thread_name: the hand-over thread's name.
        call_at: the timer's ``call_at`` (time limits).
        defer: runs the records' user code (hooks, callbacks) elsewhere.
    """

    def __init__(
        self,
        name: str,
        adapter: Adapter,
        size: int,
        reserve_normal: int,
        reserve_high: int,
        *,
        thread_name: str,
        call_at: CallAt,
        defer: Defer,
    ) -> None:
        super().__init__(size, reserve_normal, reserve_high)
        self.name = name
        self.adapter = adapter
        self.limits = (size, reserve_normal, reserve_high)
        self._call_at = call_at
        self._defer = defer
        self._wanted = threading.Condition(self._lock)
        self._flights: dict[TaskInfo, Flight] = {}
        self._ended = False  # the hand-over thread must return
        self._thread = threading.Thread(target=self._hand_over_all, name=thread_name)
        self._thread.daemon = True

    def start(self) -> None:
        self._thread.start()

    def submit(self, task: TaskInfo) -> bool:
        """Queue ``task``; False if the pool no longer accepts tasks."""
        with self._lock:
            if not self._accepting:
                return False
            if self._admission.push(task):
                self._wanted.notify()
        return True

    @property
    def accepting(self) -> bool:
        """Does it take new tasks?"""
        return self._accepting

    def busy(self) -> bool:
        """Are tasks queued or in flight here?"""
        with self._lock:
            return bool(self._admission.running or len(self._admission.ready))

    def info(self) -> PoolInfo:
        with self._lock:
            return PoolInfo(
                *self.limits, self._admission.running, dict(self._admission.queued)
            )

    # ------------------------------------------------------------------
    # Hand-over (its own thread)
    # ------------------------------------------------------------------

    def _hand_over_all(self) -> None:
        while True:
            with self._lock:
                task = self._admission.admit_next()
                while task is None:
                    if self._ended:
                        return
                    self._wanted.wait()
                    task = self._admission.admit_next()
            try:
                self._hand_over(task)
            except BaseException as exc:  # a bug of ours: the task must still end
                logger.exception("pool %r: handing %s over failed", self.name, task.id)
                with self._lock:
                    flight = self._flights.get(task)
                if flight is not None:
                    self._end(flight, partial(self._fail, task, flight, exc))

    def _hand_over(self, task: TaskInfo) -> None:
        if not task.set_started(defer=self._defer):  # canceled since admitted
            self._slot_freed()
            return
        flight = Flight(task)
        with self._lock:
            ended = self._ended
            if not ended:
                self._flights[task] = flight
        if ended:  # the shutdown took what was in flight before this
            self._end(flight, lambda: self._stopped(task, "stopped"), claimed=True)
            return
        limit = task.time_limit
        if limit is not None:
            # Before the hand-over: a call that ends at once finds it armed.
            flight.limit = self._call_at(
                time.monotonic() + limit, lambda: self._time_out(flight)
            )
        try:
            flight.handle = self.adapter.submit(
                task, lambda ok, value: self._done(flight, ok, value)
            )
        except BaseException as exc:  # shut down by its owner, broken, ...
            error = lost_worker(exc, self.name) or exc
            self._end(flight, lambda: self._fail(task, flight, error))

    # ------------------------------------------------------------------
    # Ends of a flight (any thread)
    # ------------------------------------------------------------------

    def _done(self, flight: Flight, ok: bool, value: Any) -> None:
        """The engine says the call ended (its callback thread)."""
        task = flight.task
        if ok:
            self._end(
                flight,
                partial(task.set_result, value, self._defer, flight.attempt),
            )
        elif value is CANCELLED:
            reason = f"pool {self.name!r} canceled it"
            self._end(flight, partial(self._stopped, task, reason))
        else:
            error = lost_worker(value, self.name) or value
            self._end(flight, lambda: self._fail(task, flight, error))

    def _time_out(self, flight: Flight) -> None:
        """The timer thread: the flight ran past its task's time limit."""
        task = flight.task
        error = time_limit_error(task, task.time_limit, f" in pool {self.name!r}")
        if self._end(flight, lambda: self._fail(task, flight, error)):
            # The engine's code: not on the timer thread.
            def cancel() -> None:
                self._cancel_handle(flight)

            self._defer(cancel)

    def cancel_running(self, task: TaskInfo, reason: str | None) -> bool:
        """cancel() of a task handed over: the engine's cancel, if it can.

        Returns:
            True if the task is now canceled; False if it runs on (its
            ``cancel_requested`` is set, as for a thread task).
        """
        with self._lock:
            flight = self._flights.get(task)
        if flight is None or not task._request_cancel(reason):
            return task.cancelled()
        # A cancelled future reports at once, in this thread: the record
        # takes the requested reason (see _stopped).
        return (
            flight.handle is not None
            and self._cancel_handle(flight)
            and (task.cancelled())
        )

    def _cancel_handle(self, flight: Flight) -> bool:
        handle = flight.handle
        if handle is None:
            return False
        try:
            return self.adapter.cancel(handle)
        except BaseException:  # the engine's code
            logger.exception(
                "pool %r: cancelling task %s failed", self.name, flight.task.id
            )
            return False

    def _end(
        self, flight: Flight, outcome: Callable[[], object], claimed: bool = False
    ) -> bool:
        """Give ``flight``'s record its outcome if no other end came first,
        then free its slot. True if this call ended it."""
        if not claimed:
            with self._lock:
                if self._flights.get(flight.task) is not flight:
                    return False
                del self._flights[flight.task]
        if flight.limit is not None:
            flight.limit.cancel()
        try:
            outcome()
        finally:
            self._slot_freed()
        return True

    def _fail(self, task: TaskInfo, flight: Flight, error: BaseException) -> None:
        task.set_exception(error, defer=self._defer, attempt=flight.attempt)

    def _stopped(self, task: TaskInfo, reason: str) -> None:
        extra = task._extra
        requested = None if extra is None else extra.cancel_requested
        task.set_canceled(defer=self._defer, reason=requested or reason)

    def _slot_freed(self) -> None:
        with self._lock:
            self._slot_freed_locked()
            self._wanted.notify()

    # ------------------------------------------------------------------
    # Shutdown
    # ------------------------------------------------------------------

    def retire(self) -> list[TaskInfo]:
        """Take no more tasks and hand none over; what is in flight ends as
        the engine says.

        Returns:
            The queued tasks, taken out; the caller cancels them.
        """
        with self._lock:
            self._accepting = False
            self._ended = True
            self._wanted.notify_all()
            return self._admission.drain()

    def shutdown(self, deadline: Deadline, reason: str = "stopped") -> list[TaskInfo]:
        """Let queued and in-flight tasks end until ``deadline``; cancel the
        rest (``reason``), the engine's futures too, if it can; end the
        hand-over thread. The executor itself is left alone.

        Returns:
            The tasks that did not end by the deadline (now canceled).
        """
        with self._lock:
            self._wait_drained_locked(deadline)
            dropped = self._admission.drain()
            self._ended = True
            flights = list(self._flights.values())
            self._flights.clear()
            self._wanted.notify_all()
        for task in dropped:
            task.set_canceled(defer=self._defer, reason=reason)
        for flight in flights:
            if flight.limit is not None:
                flight.limit.cancel()
            flight.task.set_canceled(defer=self._defer, reason=reason)
            self._cancel_handle(flight)
        if self._thread is not threading.current_thread() and self._thread.is_alive():
            left = remaining(deadline)
            self._thread.join(None if left is None else max(0.0, left))
        return dropped + [flight.task for flight in flights]
