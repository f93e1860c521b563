"""AdmittingPool: what the thread pool and the process pool share.

::

    submit ──> Admission (ready queue + reserve rule), under the pool lock
                  │ head admissible?
                  ├── an idle worker (the idle stack's top): hand it the task
                  ├── fewer workers than max_size, or a CRITICAL head: grow
                  └── otherwise the head waits; a freed slot admits it

    slot freed ──> admit the next head; while stopping, wake the drain
    worker idle past its time and more than min_size ──> it retires
    pool thread blocked on a task of its pool ──> its slot is lent, one more
                  worker may start (like Java's ForkJoinPool compensating)

One lock guards the admission, the idle stack and the counts; a subclass
adds its workers and calls the helpers here with that lock held
(``*_locked``). Records name the pool as their container while queued
(``TaskInfo._container``), so :meth:`AdmittingPool.discard` removes a
canceled record from the pool that holds it.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, TypeVar, Union

from ..core.admission import Admission
from ..core.constants import TASK_CRITICAL
from ..core.task import TaskInfo

# A drain's deadline: a ``time.monotonic()`` value, None (no limit), or a
# function returning the current one (a later, shorter stop() shortens a
# drain under way; see :meth:`AdmittingPool.hurry`).
Deadline = Union[float, None, Callable[[], Union[float, None]]]

W = TypeVar("W")


def remaining(deadline: Deadline) -> float | None:
    """Seconds left to ``deadline`` (a function is asked for the current
    one); None: no limit. Negative once it has passed."""
    current = deadline() if callable(deadline) else deadline
    return None if current is None else current - time.monotonic()


class IdleStack(list[W]):
    """Idle workers, the most recently parked on top.

    Handing work to the most recent keeps the others idle long enough to
    retire when the load drops. The owner's lock guards it. A list, so that
    a hand-off's test, push and pop are C calls (a wrapper's methods cost a
    no-op thread task 2% more instructions).
    """

    __slots__ = ()

    push = list.append  # park a worker on top; pop() takes the top one

    def take_all(self) -> list[W]:
        """Empty the stack; return its workers."""
        workers = self[:]
        self.clear()
        return workers


class AdmittingPool:
    """One lock, one Admission, whether tasks are accepted, the drain.

    Subclasses call :meth:`_slot_freed_locked` whenever a task's slot frees,
    so a drain under way sees it.
    """

    def __init__(self, pool_size: int, reserve_normal: int, reserve_high: int) -> None:
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._admission = Admission(self, pool_size, reserve_normal, reserve_high)
        self._accepting = True
        # Pool threads blocked on a task of this pool: each has lent its slot
        # and lets one more worker start (see begin_blocking in ThreadPool).
        self._blocked: set[threading.Thread] = set()

    def queued(self) -> dict[int, int]:
        """Tasks waiting for a slot, by priority."""
        with self._lock:
            return dict(self._admission.queued)

    def discard(self, task: TaskInfo) -> None:
        """Forget ``task`` if it is queued here (it was canceled).

        A record queued in another pool (or none) is left alone: the record
        names its container, so this is safe to call on any pool.
        """
        with self._lock:
            if task._container is not self:
                return
            self._admission.discard(task)
            if not self._accepting:
                self._drained.notify_all()

    def close(self, cancel_queued: bool) -> list[TaskInfo]:
        """Stop accepting tasks.

        Args:
            cancel_queued: also take every queued task out.

        Returns:
            The tasks taken out; the caller cancels them.
        """
        with self._lock:
            self._accepting = False
            return self._admission.drain() if cancel_queued else []

    def hurry(self) -> None:
        """Wake a drain under way so that it reads its deadline again (a
        later ``stop()`` with a shorter wait)."""
        with self._lock:
            self._drained.notify_all()

    # ------------------------------------------------------------------
    # Helpers for subclasses (pool lock held)
    # ------------------------------------------------------------------

    def _slot_freed_locked(self) -> None:
        """A task admitted earlier is over: free its slot, wake a drain."""
        self._admission.running -= 1  # release(), inlined: once per task
        if not self._accepting:
            self._drained.notify_all()

    def _may_grow_locked(self, size: int, max_size: int) -> bool:
        """May one more worker start for the head, if it is admissible?
        Below ``max_size`` (plus one per blocked pool thread), yes; past it,
        only for a CRITICAL head, which always starts at once. (True does
        not mean a head is admissible: the caller's ``admit_next`` says.)"""
        if not self._full_locked(size, max_size):
            return True
        head = self._admission.admissible()
        return head is not None and head.priority == TASK_CRITICAL

    def _full_locked(self, size: int, max_size: int) -> bool:
        """No room for one more worker but for a CRITICAL task: ``max_size``
        (plus one per blocked pool thread) are there."""
        return size >= max_size + len(self._blocked)

    def _surplus_locked(self, size: int, max_size: int) -> bool:
        """More workers than allowed (after a resize, a CRITICAL burst, or a
        blocked thread that runs again): one that frees up should retire."""
        return size > max_size + len(self._blocked)

    def _unsettled_locked(self) -> int:
        """Tasks a drain waits for besides the queued ones: those holding
        a slot (a subclass adds what ends without one)."""
        return self._admission.running

    def _wait_drained_locked(self, deadline: Deadline, own: int = 0) -> None:
        """Wait (lock held) until nothing is queued and at most ``own``
        tasks run, or until ``deadline``.

        Args:
            deadline: a ``time.monotonic()`` value; None: no limit; or a
                function returning the current one, read again whenever the
                drain wakes (:meth:`hurry` wakes it).
            own: tasks that may still run (the caller's own).
        """
        self._accepting = False
        while len(self._admission.ready) or self._unsettled_locked() > own:
            left = remaining(deadline)
            if left is not None and left <= 0:
                return
            self._drained.wait(left)
