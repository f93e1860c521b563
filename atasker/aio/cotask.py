"""Coroutine tasks: a record whose target returns an awaitable runs as an
asyncio task on its loop; cancel() of a started one cancels that task.

An attempt runs in a runner coroutine of ours, in the loop's thread::

    runner: begin the attempt ──> on_start ──> await target(*args) ──> outcome
            time_limit       loop.call_later: the attempt fails with
                             TaskTimeoutError at once, then its task is cancelled
            soft_time_limit  loop.call_later: its task is cancelled, and that
                             cancellation reaches the coroutine as
                             SoftTimeLimitExceeded (see _SoftLimit)

Its hooks run in the loop's thread, like the coroutine itself; an outcome
that comes after its attempt is over (a coroutine that ignored a hard limit)
is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Generator
from typing import Any

from ..core.constants import TASK_STATUS_CANCELED
from ..core.context import context_of, coroutine_task, retries_spent
from ..core.errors import soft_limit_error, time_limit_error
from ..core.options import TaskOptions
from ..core.task import TaskInfo
from ..core.waiting import call_logged


def schedule_coroutine(task: TaskInfo, loop: asyncio.AbstractEventLoop) -> None:
    """Run the coroutine task ``task`` on ``loop`` (from any thread).

    Raises:
        RuntimeError: the loop is closed.
    """
    runner = _run_coroutine(task)
    try:
        asyncio.run_coroutine_threadsafe(runner, loop)
    except RuntimeError:
        runner.close()
        raise


async def _run_coroutine(task: TaskInfo) -> None:
    # The asyncio task is the handle cancel() uses once the record is STARTED.
    handle = task.handle = asyncio.current_task()
    assert handle is not None
    begun = task._begin()
    if begun is None:
        task.handle = None  # canceled before it could start (and closed)
        return
    attempt = begun.attempt
    coroutine_task.set(task)  # current_context() inside the coroutine
    options = task._options
    limits: list[asyncio.TimerHandle] = []
    args = begun.args
    try:
        try:
            awaitable: Awaitable[Any]
            if options is None:
                awaitable = begun.target(*args, **begun.kwargs)
            else:
                soft = None
                if options.soft_time_limit is not None:
                    soft = _SoftLimit(options.soft_time_limit, handle)
                limits = _arm_limits(task, attempt, options, handle, soft)
                if options.on_start is not None:
                    call_logged("on_start hook", options.on_start, task)
                if options.bind:
                    args = (context_of(task), *args)
                awaitable = begun.target(*args, **begun.kwargs)
                if soft is not None:
                    awaitable = soft.wrap(awaitable)
            result = await awaitable
        finally:
            for limit in limits:
                limit.cancel()
    except asyncio.CancelledError:
        # Not by cancel(): by the stop (its loop's tasks are cancelled), as
        # a thread or process task the stop cancels says.
        owner = task._owner
        stopping = not task.cancel_requested and not (
            owner is None or owner._takes_attempts()
        )
        reason = "stopped" if stopping else None
        task._finish(TASK_STATUS_CANCELED, attempt=attempt, reason=reason)
        raise
    except BaseException as exc:
        if task.cancel_requested:  # cancel() said True: it ends so
            task._finish(TASK_STATUS_CANCELED, attempt=attempt)
        else:
            task.set_exception(exc, retryable=not retries_spent(task), attempt=attempt)
    else:
        if task.cancel_requested:
            # cancel() said True: the coroutine swallowed the cancel
            task._finish(TASK_STATUS_CANCELED, attempt=attempt)
        else:
            task.set_result(result, attempt=attempt)


def _arm_limits(
    task: TaskInfo,
    attempt: int,
    options: TaskOptions,
    handle: asyncio.Task[Any],
    soft: _SoftLimit | None,
) -> list[asyncio.TimerHandle]:
    """The loop's timers of the attempt's time limits."""
    loop = asyncio.get_running_loop()
    limits = []
    if options.time_limit is not None:
        limits.append(
            loop.call_later(
                options.time_limit,
                _hard_limit,
                task,
                attempt,
                options.time_limit,
                handle,
            )
        )
    if soft is not None:
        limits.append(loop.call_later(soft.seconds, soft.ring))
    return limits


def _hard_limit(
    task: TaskInfo, attempt: int, seconds: float, handle: asyncio.Task[Any]
) -> None:
    """The attempt fails now (its waiters wake), then its coroutine is cancelled."""
    task.set_exception(time_limit_error(task, seconds), attempt=attempt)
    handle.cancel()


class _SoftLimit:
    """The soft limit of one attempt: when it rings, the attempt's asyncio
    task is cancelled, and the awaitable it wraps turns that one
    cancellation into SoftTimeLimitExceeded, thrown in where the coroutine
    awaits (which may catch it, clean up, and go on). Every other
    cancellation passes."""

    __slots__ = ("seconds", "_handle", "_rung", "_awaitable")

    def __init__(self, seconds: float, handle: asyncio.Task[Any]) -> None:
        self.seconds = seconds
        self._handle = handle
        self._rung = False  # rang, and its cancellation is not converted yet
        self._awaitable: Awaitable[Any] | None = None

    def ring(self) -> None:
        self._rung = True
        self._handle.cancel()

    def wrap(self, awaitable: Awaitable[Any]) -> _SoftLimit:
        """``await soft.wrap(x)`` awaits ``x``, converting as above."""
        self._awaitable = awaitable
        return self

    def __await__(self) -> Generator[Any, Any, Any]:
        assert self._awaitable is not None
        inner = self._awaitable.__await__()
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            try:
                yielded = inner.send(sent) if thrown is None else inner.throw(thrown)
            except StopIteration as stop:
                return stop.value
            sent, thrown = None, None
            try:
                sent = yield yielded
            except GeneratorExit:
                close = getattr(inner, "close", None)
                if close is not None:
                    close()
                raise
            except asyncio.CancelledError as cancelled:
                thrown = self._converted(cancelled)
            except BaseException as exc:
                thrown = exc

    def _converted(self, cancelled: asyncio.CancelledError) -> BaseException:
        if not self._rung:
            return cancelled
        self._rung = False
        uncancel = getattr(self._handle, "uncancel", None)  # 3.11+: undo its count
        if uncancel is not None:
            uncancel()
        return soft_limit_error(self.seconds)


def cancel_coroutine(task: TaskInfo) -> bool:
    """Cancel the asyncio task of a started coroutine task, whose
    ``cancel_requested`` is set: its runner ends it CANCELED whatever the
    coroutine does with the CancelledError.

    Returns:
        True if the cancellation was sent to its loop.
    """
    handle = task.handle
    if not isinstance(handle, asyncio.Task):
        return False
    try:
        handle.get_loop().call_soon_threadsafe(handle.cancel)
    except RuntimeError:  # the loop is closed
        return False
    return True
