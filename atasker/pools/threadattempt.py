"""One attempt of a thread task with options beyond atasker 0.7's, in a pool
thread: hooks, bind, and time limits on a thread that cannot be killed.

::

    begin ──> arm limits ──> on_start, target ──> disarm ──> outcome, hooks
                 │
    soft limit (timer thread): SoftTimeLimitExceeded raised in the thread
    hard limit (timer thread): the attempt fails now with TaskTimeoutError
        (waiters wake; its hooks run on a thread of their own), then
        TaskTimeoutError is raised in the thread
    time_limit_grace later, the thread still in the task: it is abandoned
        (the pool stops counting it and may start another); what it returns
        is dropped

A thread cannot be stopped from outside: the exceptions are asynchronous
(``PyThreadState_SetAsyncExc``), delivered when the thread next runs Python
code, so a thread blocked in C (a lock, a socket) gets them only when the
call returns.

How the exceptions are sent, and kept out of atasker's own code, is
threadlimits.py's business: this module arms and disarms its guard inside
the two nested handlers that rule relies on.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from ..core.attempts import AttemptStart
from ..core.constants import TASK_STATUS_CANCELED
from ..core.context import context_of, retries_spent
from ..core.errors import SoftTimeLimitExceeded, TaskTimeoutError, time_limit_error
from ..core.options import TaskOptions
from ..core.task import TaskInfo
from ..core.timer import Timer
from ..core.waiting import Defer, running
from .threadlimits import EXPECTING, LimitGuard

if TYPE_CHECKING:
    from .threadpool import ThreadPool

logger = logging.getLogger("atasker")


class ThreadLimits:
    """What the time limits of thread tasks need from the supervisor.

    Args:
        timer: the supervisor's timer (its thread fires the limits).
        grace: returns the current ``time_limit_grace``.
        defer: runs user code (hooks) off the timer thread.
    """

    def __init__(self, timer: Timer, grace: Callable[[], float], defer: Defer) -> None:
        self.timer = timer
        self.grace = grace
        self.defer = defer


def run_attempt(task: TaskInfo, limits: ThreadLimits | None) -> None:
    """Run one attempt of ``task`` in this pool thread; never raises."""
    begun = task._begin()
    if begun is None:
        return  # canceled before it could start
    options = task._options
    assert options is not None
    running.task = task
    try:
        guard = _limits(task, begun.attempt, options, limits)
        if guard is None:
            ok, value = _call(task, options, begun, None)
        else:
            ok, value = _call_guarded(guard, task, options, begun)
            if not ok and guard.timeout is not None and guard.is_limit(value):
                value = guard.timeout  # the bare class it got: say what it was
        if ok:
            task.set_result(value, attempt=begun.attempt)
        else:
            task.set_exception(
                value, retryable=not retries_spent(task), attempt=begun.attempt
            )
    finally:
        running.task = None


def _call(
    task: TaskInfo, options: TaskOptions, begun: AttemptStart, guard: LimitGuard | None
) -> tuple[bool, Any]:
    """on_start, then the target: (True, result) or (False, exception)."""
    try:
        if options.on_start is not None:
            try:
                options.on_start(task)
            except BaseException as exc:
                if guard is not None and guard.is_limit(exc):
                    raise  # a limit passed during the hook: the attempt ends
                logger.exception(
                    "on_start hook %r of task %s failed", options.on_start, task.id
                )
        args = begun.args
        if options.bind:
            args = (context_of(task), *args)
        context = begun.context
        if context is None:
            return True, begun.target(*args, **begun.kwargs)
        if begun.attempt > 1:
            # An abandoned earlier attempt may still be inside the context.
            context = context.copy()
        return True, context.run(begun.target, *args, **begun.kwargs)
    except BaseException as exc:
        return False, exc


def _call_guarded(
    guard: LimitGuard, task: TaskInfo, options: TaskOptions, begun: AttemptStart
) -> tuple[bool, Any]:
    """Arm, :func:`_call`, disarm; absorbing the (at most two) time-limit
    exceptions that may arrive outside the call before the disarm takes
    effect: everything from the arming on is inside both handlers."""
    outcome: tuple[bool, Any] | None = None
    try:
        try:
            guard.arm()
            outcome = _call(task, options, begun, guard)
            guard.disarm()
        except BaseException as late:
            if outcome is None:
                outcome = (False, late)
            guard.disarm()
    except BaseException as late:
        if outcome is None:
            outcome = (False, late)
        guard.disarm()
    return outcome


def _limits(
    task: TaskInfo, attempt: int, options: TaskOptions, limits: ThreadLimits | None
) -> LimitGuard | None:
    """The attempt's guard, its limits set on the timer (not armed yet)."""
    hard, soft = options.time_limit, options.soft_time_limit
    if limits is None or (hard is None and soft is None):
        return None
    guard = LimitGuard(threading.current_thread(), limits.timer)
    pool: ThreadPool | None = getattr(running, "pool", None)
    start = time.monotonic()
    timer = limits.timer
    if soft is not None:
        guard.add(
            timer.call_at(
                start + soft, lambda: guard.raise_in_thread(SoftTimeLimitExceeded)
            )
        )
    if hard is not None:
        guard.add(
            timer.call_at(
                start + hard,
                lambda: _hard_limit(task, attempt, hard, guard, limits, pool),
                # The supervisor stopped first: the attempt ends all the same.
                lambda: task._finish(
                    TASK_STATUS_CANCELED,
                    defer=limits.defer,
                    reason="stopped",
                    attempt=attempt,
                ),
            )
        )
    return guard


def _hard_limit(
    task: TaskInfo,
    attempt: int,
    seconds: float,
    guard: LimitGuard,
    limits: ThreadLimits,
    pool: ThreadPool | None,
) -> None:
    """Timer thread: the attempt ran past its hard limit.

    The exception goes to the thread first: ending the record wakes its
    waiters, who may well release the thread, which must not then return as
    if nothing had happened.
    """
    error = guard.timeout = time_limit_error(task, seconds)
    sent = guard.raise_in_thread(TaskTimeoutError)
    task.set_exception(error, defer=limits.defer, attempt=attempt)
    if sent:
        grace = limits.grace()
        guard.add(
            limits.timer.call_at(
                time.monotonic() + grace,
                lambda: _abandon(task, guard, pool, seconds + grace),
            )
        )


def _abandon(
    task: TaskInfo, guard: LimitGuard, pool: ThreadPool | None, seconds: float
) -> None:
    """Timer thread: the grace after the hard limit passed too."""
    if not guard.abandon(pool):
        return  # it came back
    logger.warning(
        "thread %s still runs task %s (%s) %.3f s after it started, past its "
        "time limit and grace: abandoned (what it returns is dropped); the "
        "pool may start another thread",
        guard.thread.name,
        task.id,
        task.name,
        seconds,
    )


# A limit's exception may land in these: they catch it.
EXPECTING.update((_call.__code__, _call_guarded.__code__))
