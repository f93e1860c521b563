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
    """A task handed over: its attempt, the engine's handle, its limit, and
    whether cancel() came before the engine had a handle to cancel."""

    __slots__ = ("attempt", "cancel", "handle", "limit", "task")

    def __init__(self, task: TaskInfo) -> None:
        self.task = task
        self.attempt: int | None = None  # None: a record that keeps no count
        self.handle: Any = None
        self.limit: TimerCall | None = None
        self.cancel = False


class ExternalPool(AdmittingPool):
    """See the module docstring.

    Args:
        name: the pool's name (``pool=`` of its tasks).
        adapter: the executor, adapted (executors.py).
        size, reserve_normal, reserve_high: the reserve rule.
        owner: the supervisor's id (it names the hand-over thread).
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
        owner: str,
        call_at: CallAt,
        defer: Defer,
    ) -> None:
        super().__init__(size, reserve_normal, reserve_high)
        self.name = name
        self.owner = owner
        self.adapter = adapter
        self.limits = (size, reserve_normal, reserve_high)
        self._call_at = call_at
        self._defer = defer
        self._wanted = threading.Condition(self._lock)
        self._flights: dict[TaskInfo, Flight] = {}
        # Calls whose record ended before the engine answered (time limit,
        # shutdown): the executor may still run them.
        self._abandoned: set[Flight] = set()
        self._ended: str | None = None  # why the hand-over thread returned
        # Flights whose slot is free and whose record is being given its
        # outcome: a drain waits for them too.
        self._ending = 0
        self._thread = threading.Thread(
            target=self._hand_over_all, name=f"supervisor_{owner}_pool_{name}"
        )
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

    def close(self, cancel_queued: bool) -> list[TaskInfo]:
        """See AdmittingPool; the hand-over thread ends once nothing is
        queued."""
        dropped = super().close(cancel_queued)
        with self._lock:
            self._wanted.notify()
        return dropped

    @property
    def accepting(self) -> bool:
        """Does it take new tasks?"""
        return self._accepting

    def busy(self) -> bool:
        """Are tasks of ours queued or in flight here?"""
        with self._lock:
            return bool(self._unsettled_locked() or len(self._admission.ready))

    def abandoned(self) -> bool:
        """May the executor still run a call whose record has ended?"""
        with self._lock:
            return bool(self._abandoned)

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
                    drained = not self._accepting and not self._admission.ready
                    if self._ended or drained:
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
                    self._end(flight, partial(self._fail, flight, exc))

    def _hand_over(self, task: TaskInfo) -> None:
        # In flight before it starts: a cancel() of the started task finds it.
        flight = Flight(task)
        with self._lock:
            ended = self._ended
            if ended is None:
                self._flights[task] = flight
        if ended is not None:  # retired or shut down since it was admitted
            self._end(flight, partial(self._canceled, flight, ended), claimed=True)
            return
        if not task.set_started(defer=self._defer):  # canceled since admitted
            self._end(flight, _nothing)
            return
        flight.attempt = task.attempt or None
        limit = task.time_limit
        if limit is not None:
            # Before the hand-over: a call that ends at once finds it armed.
            flight.limit = self._call_at(
                time.monotonic() + limit, partial(self._time_out, flight)
            )
        if not self._still(flight):  # canceled, or a shutdown took it
            self._end(flight, partial(self._canceled, flight, None))
            return
        try:
            flight.handle = self.adapter.submit(
                task, partial(self._done, flight), self.owner
            )
        except BaseException as exc:  # shut down by its owner, broken, ...
            self._end(
                flight, partial(self._fail, flight, lost_worker(exc, self.name) or exc)
            )
            return
        if not self._still(flight):  # ended or canceled during the submit
            self._cancel(flight.handle, task)
            flight.handle = None

    def _still(self, flight: Flight) -> bool:
        """Is ``flight`` still ours to hand over (not ended, not canceled)?"""
        with self._lock:
            return self._flights.get(flight.task) is flight and not flight.cancel

    # ------------------------------------------------------------------
    # Ends of a flight (any thread)
    # ------------------------------------------------------------------

    def _done(self, flight: Flight, ok: bool, value: Any) -> None:
        """The engine says the call ended (its callback thread)."""
        with self._lock:
            self._abandoned.discard(flight)
        if ok:
            self._end(
                flight,
                partial(flight.task.set_result, value, self._defer, flight.attempt),
            )
        elif value is CANCELLED:
            # A cancel() asked for it gives its reason; else the engine did.
            reason: str | None = f"pool {self.name!r} canceled it"
            if flight.task.cancel_requested:
                reason = None
            self._end(flight, partial(self._canceled, flight, reason))
        else:
            error = lost_worker(value, self.name) or value
            self._end(flight, partial(self._fail, flight, error))

    def _time_out(self, flight: Flight) -> None:
        """The timer thread: the flight ran past its task's time limit."""
        task, handle = flight.task, flight.handle
        error = time_limit_error(task, task.time_limit, f" in pool {self.name!r}")
        if self._end(flight, partial(self._fail, flight, error), abandon=True):
            # The engine's code: not on the timer thread.
            def cancel() -> None:
                self._cancel(handle, task)

            self._defer(cancel)

    def cancel_running(self, task: TaskInfo, reason: str | None) -> bool:
        """cancel() of a task handed over: the engine's cancel, if it can.

        Returns:
            True if the task is now canceled; False if it runs on (its
            ``cancel_requested`` is set, as for a thread task).
        """
        if not task._request_cancel(reason):
            return task.cancelled()
        with self._lock:
            flight = self._flights.get(task)
            if flight is None:
                return task.cancelled()
            if flight.handle is None:
                # Not handed over yet: the hand-over ends it instead.
                flight.cancel = True
                return False
            handle = flight.handle
        # A cancelled future reports at once, in this thread: the record
        # takes the requested reason (see _done).
        return self._cancel(handle, task) and task.cancelled()

    def _cancel(self, handle: Any, task: TaskInfo) -> bool:
        """The engine's cancel of a call (``handle``: None, nothing)."""
        if handle is None:
            return False
        try:
            return self.adapter.cancel(handle)
        except BaseException:  # the engine's code
            logger.exception("pool %r: cancelling task %s failed", self.name, task.id)
            return False

    def _end(
        self,
        flight: Flight,
        outcome: Callable[[], object],
        claimed: bool = False,
        abandon: bool = False,
    ) -> bool:
        """Free ``flight``'s slot and give its record its outcome, if no
        other end came first; True if this call ended it. The slot first:
        whoever the record wakes sees it free, and the next task is handed
        over meanwhile; a drain waits until the outcome is given.

        Args:
            claimed: the caller took it out of the flights already.
            abandon: the engine has not answered: it may still run the call.
        """
        with self._lock:
            if not claimed:
                if self._flights.get(flight.task) is not flight:
                    return False
                del self._flights[flight.task]
                if abandon:
                    self._abandoned.add(flight)
            self._slot_freed_locked()
            self._ending += 1
            self._wanted.notify()
        if flight.limit is not None:
            flight.limit.cancel()
        # The engine's future keeps its callbacks, which keep the flight:
        # without this cycle, what the future holds goes at once (Dask
        # releases a finished key).
        flight.handle = None
        try:
            outcome()
        finally:
            with self._lock:
                self._ending -= 1
                if not self._accepting:
                    self._drained.notify_all()
        return True

    def _unsettled_locked(self) -> int:
        return self._admission.running + self._ending

    def _fail(self, flight: Flight, error: BaseException) -> None:
        flight.task.set_exception(error, defer=self._defer, attempt=flight.attempt)

    def _canceled(self, flight: Flight, reason: str | None) -> None:
        """CANCELED with ``reason``; None: the one cancel() asked for."""
        flight.task.set_canceled(defer=self._defer, reason=reason)

    # ------------------------------------------------------------------
    # Shutdown
    # ------------------------------------------------------------------

    def retire(self, reason: str) -> list[TaskInfo]:
        """Take no more tasks and hand none over (one admitted meanwhile
        ends CANCELED, ``reason``); what is in flight ends as the engine
        says.

        Returns:
            The queued tasks, taken out; the caller cancels them.
        """
        dropped = self.close(True)
        with self._lock:
            self._ended = self._ended or reason
            self._wanted.notify_all()
        return dropped

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
            self._ended = self._ended or reason
            flights = list(self._flights.values())
            self._flights.clear()
            self._abandoned.update(flights)
            for _ in flights:  # ended here: another drain must see them go
                self._slot_freed_locked()
            self._wanted.notify_all()
        for task in dropped:
            task.set_canceled(defer=self._defer, reason=reason)
        for flight in flights:
            if flight.limit is not None:
                flight.limit.cancel()
            self._canceled(flight, reason)
            self._cancel(flight.handle, flight.task)
            flight.handle = None
        if self._thread is not threading.current_thread() and self._thread.is_alive():
            left = remaining(deadline)
            self._thread.join(None if left is None else max(0.0, left))
        return dropped + [flight.task for flight in flights]


def _nothing() -> None:
    pass
