"""Tasks that wait for something before they are queued: their due time,
their dependencies, their next attempt; and expiry.

::

    submit ──> dependencies? ── deps.watch ── all COMPLETED ──> _dependencies_met
                                           └─ one failed ──> CANCELED
    attempt failed, policy says again ──> record DELAYED ──> _retry_task
    timer: due ──> _task_due
    _task_due, _dependencies_met, _retry_task ──> _release: due later? the
        timer; else the pool
    expires ──> a timer call: CANCELED ("expired") unless started

The supervisor inherits :class:`TaskRelease` (through TaskDispatch), and the
records call ``_retry_task`` back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..core.constants import TASK_STATUS_DELAYED, TT_COROUTINE
from ..core.errors import SupervisorNotRunningError
from ..core.options import TaskOptions
from ..core.registry import TaskRegistry
from ..core.task import TaskInfo
from ..core.timer import Timer

logger = logging.getLogger("atasker")


class TaskRelease:
    """When waiting tasks go to their pool (mixed into the supervisor)."""

    id: str
    _registry: TaskRegistry
    _timer: Timer | None

    if TYPE_CHECKING:  # the supervisor's, and its other parts'

        @property
        def _active(self) -> bool: ...

        def _enqueue(self, task: TaskInfo) -> bool: ...

        def _run_user_code(self, notify: Any) -> None: ...

        def _prepare(
            self, task: TaskInfo, pickle_as: Any, options: TaskOptions
        ) -> None: ...

    def _release(self, task: TaskInfo, wait: float) -> bool:
        """A DELAYED task (its dependencies met, or another attempt due) may
        go: to the timer if ``wait`` > 0, else to its pool. False if the
        supervisor no longer takes it."""
        timer = self._timer
        if timer is None:
            return False
        if wait > 0:
            return timer.schedule(task, wait)
        if not task.set_queued():
            return True  # canceled meanwhile: accepted, and already final
        return self._enqueue(task)

    def _arm_expiry(self, task: TaskInfo, timer: Timer, seconds: float) -> None:
        """Cancel ``task`` ("expired") in ``seconds`` unless it starts first."""
        call = timer.call_at(
            time.monotonic() + seconds,
            lambda: task._expire(defer=self._run_user_code),
        )
        if call is not None and not task._keep_expiry(call):
            call.cancel()  # it started (or ended) meanwhile

    def _dependencies(self, items: Sequence[Any]) -> list[TaskInfo]:
        """The records of ``depends_on``.

        Raises:
            ValueError: an id this supervisor does not know.
        """
        records = []
        for item in items:
            if isinstance(item, TaskInfo):
                records.append(item)
                continue
            record = self._registry.get(str(item))
            if record is None:
                raise ValueError(
                    f"depends_on: supervisor {self.id} knows no task {item!r}: "
                    "it was never submitted, or it finished and its record is "
                    "no longer kept (depend on the record itself, or keep "
                    "finished records with TaskSupervisor(keep_finished=N))"
                )
            records.append(record)
        return records

    def _dependencies_met(self, task: TaskInfo) -> None:
        """Every dependency of ``task`` completed (in the thread that finished
        the last one): queue it, or let it wait for its eta. A task of a
        workflow gets their results first."""
        extra = task._extra
        if extra is not None and extra.feed is not None:
            if task.payload is not None:  # pickling it again: user code
                self._run_user_code(lambda: self._fed(task))
            else:
                self._fed(task)
            return
        self._release_due(task)

    def _fed(self, task: TaskInfo) -> None:
        try:
            self._feed(task)
        except Exception as exc:  # a result a process task cannot pickle
            task.set_exception(exc, defer=self._run_user_code)
            return
        self._release_due(task)

    def _release_due(self, task: TaskInfo) -> None:
        due = task.eta
        self._release_or_end(task, 0.0 if due is None else max(0.0, due - time.time()))

    def _feed(self, task: TaskInfo) -> None:
        """Prepend what a chain or chord task follows to its arguments (a
        process task's payload is pickled again, with them)."""
        with task._lock:
            extra = task._extra
            if extra is None or extra.feed is None:
                return
            if task.status != TASK_STATUS_DELAYED:
                return
            follow, extra.feed = extra.feed, None
            task.args = (follow.value(), *task.args)
        if task.payload is not None:
            self._prepare(task, follow.pickle_as, task.options)
            if task.done():  # canceled meanwhile: keep nothing it ran
                task.payload = None

    def _task_due(self, task: TaskInfo) -> None:
        """Timer thread: a delayed task is due."""
        self._release_or_end(task, 0.0)

    def _release_or_end(self, task: TaskInfo, wait: float) -> None:
        """:meth:`_release`; a task it cannot release ends, for it was
        accepted: CANCELED if the supervisor stops, else with the error (a
        closed loop, a process pool that cannot start). Called from internal
        threads (the timer, a manager): the task's user code is deferred."""
        try:
            released = self._release(task, wait)
        except SupervisorNotRunningError:
            released = False
        except Exception as exc:
            task.set_exception(exc, defer=self._run_user_code)
            return
        if not released:
            task.set_canceled(defer=self._run_user_code, reason="stopped")

    def _retry_task(self, task: TaskInfo, wait: float) -> bool:
        """Schedule the next attempt of a task that went back to DELAYED
        (called by the record, in the thread that may run user code).
        False if there is none: the supervisor stops."""
        if not self._active:
            return False
        try:
            # A process task keeps its payload: the pool tells the worker the
            # attempt's retry count apart.
            if task.tt == TT_COROUTINE and isinstance(task.handle, asyncio.Task):
                task.handle = task.handle.get_loop()
            return self._release(task, wait)
        except SupervisorNotRunningError:
            return False
        except Exception:  # a closed loop; a process pool that cannot start
            logger.exception("the next attempt of task %s could not be queued", task.id)
            return False


def when(options: TaskOptions) -> tuple[float | None, float | None, float | None]:
    """``(delay, due, expires_at)`` for a task submitted now: the seconds it
    waits (None: none), when it is due and when it expires (``time.time()``
    values, or None).

    Raises:
        ValueError: it would be due after it expires.
    """
    now = time.time()
    due = options.eta
    if due is None and options.delay:
        due = now + options.delay
    expires_at = options.expires_at(now)
    if expires_at is not None and due is not None and due > expires_at:
        raise ValueError(
            f"the task would be due at {due:.3f} (eta/delay), after it "
            f"expires at {expires_at:.3f} (expires)"
        )
    delay = None if due is None else max(0.0, due - now) or None
    return delay, due, expires_at
