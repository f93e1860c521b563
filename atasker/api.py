"""The functions most code uses: background_task and wait_completed."""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Iterable
from typing import Any, Callable, overload

from .core.constants import TASK_NORMAL, TT_COROUTINE, TT_MP, TT_THREAD
from .core.errors import WaitTimeoutError
from .core.task import TaskInfo
from .core.validation import (
    check_callable,
    check_delay,
    check_priority,
    check_task_type,
    check_time_limit,
    check_timeout,
)
from .pools.mpcodec import accepts_task_id
from .supervisor import TaskSupervisor, task_supervisor

TaskFactory = Callable[..., TaskInfo]


@overload
def background_task(
    f: Callable[..., Any],
    *,
    name: str | None = None,
    priority: int = TASK_NORMAL,
    delay: float | None = None,
    tt: int = TT_THREAD,
    callback: Callable[[Any], Any] | None = None,
    time_limit: float | None = None,
    loop: Any = None,
    supervisor: TaskSupervisor | None = None,
) -> TaskFactory: ...


@overload
def background_task(
    f: None = None,
    *,
    name: str | None = None,
    priority: int = TASK_NORMAL,
    delay: float | None = None,
    tt: int = TT_THREAD,
    callback: Callable[[Any], Any] | None = None,
    time_limit: float | None = None,
    loop: Any = None,
    supervisor: TaskSupervisor | None = None,
) -> Callable[[Callable[..., Any]], TaskFactory]: ...


def background_task(
    f: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    priority: int = TASK_NORMAL,
    delay: float | None = None,
    tt: int = TT_THREAD,
    callback: Callable[[Any], Any] | None = None,
    time_limit: float | None = None,
    loop: Any = None,
    supervisor: TaskSupervisor | None = None,
) -> TaskFactory | Callable[[Callable[..., Any]], TaskFactory]:
    """Make ``f`` run as a background task each time it is called.

    Used bare (``@background_task``), with options
    (``@background_task(priority=TASK_HIGH)``) or directly
    (``background_task(f, priority=TASK_HIGH)(x)``). Calling the result
    queues ``f(*args, **kwargs)`` and returns its :class:`TaskInfo` at once.

    Args:
        f: the function to run.
        name: the task name; default ``module.qualname`` of ``f``.
        priority: TASK_LOW, TASK_NORMAL, TASK_HIGH or TASK_CRITICAL.
        delay: seconds to wait before queueing; the task holds no slot then.
        tt: task type: TT_THREAD, or TT_MP to run in a worker process (the
            function must live at the top level of an importable module; its
            arguments are pickled at each call).
        callback: called with the result when the task completes (for a
            process task, in the parent, in a thread of the pool's own).
        time_limit: process tasks: seconds after which the worker process is
            killed and the task fails with TaskTimeoutError.
        loop: coroutine tasks: an aloop name, an ALoop, or a running asyncio
            loop; the default aloop if None. A coroutine function is always
            run as a coroutine task (``tt=TT_COROUTINE``).
        supervisor: the supervisor to use; the default one if None (looked
            up at each call).

    Raises:
        TypeError: ``f`` or ``callback`` is not callable; a process task's
            function or arguments cannot be pickled (at the call).
        ValueError: unknown priority or task type, bad delay or time limit.
    """
    priority = check_priority(priority)
    delay = check_delay(delay)
    tt = check_task_type(tt)
    time_limit = check_time_limit(time_limit, tt)
    check_callable(callback, "callback", allow_none=True)
    if supervisor is not None and not isinstance(supervisor, TaskSupervisor):
        raise TypeError(f"supervisor must be a TaskSupervisor; got {supervisor!r}")

    def decorate(target: Callable[..., Any]) -> TaskFactory:
        check_callable(target, "target")
        task_type = TT_COROUTINE if inspect.iscoroutinefunction(target) else tt
        if task_type == TT_COROUTINE and time_limit is not None:
            raise ValueError("time_limit needs tt=TT_MP; use asyncio.wait_for")
        task_name = name or _default_name(target)
        pass_task_id = tt == TT_MP and accepts_task_id(target)

        @functools.wraps(target)
        def start(*args: Any, **kwargs: Any) -> TaskInfo:
            return (supervisor or task_supervisor).submit(
                target,
                args,
                kwargs,
                priority=priority,
                delay=delay,
                tt=task_type,
                name=task_name,
                callback=callback,
                time_limit=time_limit,
                loop=loop,
                pass_task_id=pass_task_id,
                checked=True,
            )

        return start

    if f is None:
        return decorate
    return decorate(f)


def _default_name(target: Callable[..., Any]) -> str:
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None) or repr(target)
    return f"{module}.{qualname}" if module else qualname


@overload
def wait_completed(tasks: TaskInfo, timeout: float | None = None) -> Any: ...


@overload
def wait_completed(
    tasks: Iterable[TaskInfo], timeout: float | None = None
) -> list[Any]: ...


def wait_completed(
    tasks: TaskInfo | Iterable[TaskInfo], timeout: float | None = None
) -> Any:
    """Wait for tasks and return their results.

    Args:
        tasks: one record, or a list (tuple, iterable) of records.
        timeout: seconds to wait at most for all of them; None: no limit.

    Returns:
        The task's result for one record; a list of results, in order, for
        several.

    A pool thread that waits for tasks of its own pool lends its slot while
    it waits (see :meth:`TaskInfo.wait`).

    Raises:
        WaitTimeoutError: not all finished within ``timeout`` (both the
            builtin TimeoutError and concurrent.futures.TimeoutError).
        TaskCancelledError: a task was canceled (the first, in order).
        BaseException: what the first failed task (in order) raised.
        TypeError: ``tasks`` holds something that is not a task record, or
            ``timeout`` is not a number.
        ValueError: ``timeout`` is negative or NaN.
    """
    timeout = check_timeout(timeout, "timeout")
    if isinstance(tasks, TaskInfo):
        return tasks.get(timeout)
    if not isinstance(tasks, Iterable):
        raise TypeError(f"tasks must be a TaskInfo or a list of them; got {tasks!r}")
    records = list(tasks)
    for record in records:
        if not isinstance(record, TaskInfo):
            raise TypeError(f"tasks must hold TaskInfo records; got {record!r}")
    deadline = None if timeout is None else time.monotonic() + timeout
    for record in records:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not record.wait(remaining):
            raise WaitTimeoutError(
                f"{sum(not r.done() for r in records)} of {len(records)} tasks "
                f"not completed within {timeout} s"
            )
    return [record.get() for record in records]


async def co_mp_apply(
    f: Callable[..., Any],
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    priority: int = TASK_NORMAL,
    delay: float | None = None,
    supervisor: TaskSupervisor | None = None,
    time_limit: float | None = None,
) -> Any:
    """Run ``f(*args, **kwargs)`` in the process pool and await its result.

    Awaitable from any running asyncio loop. Cancelling the awaiting
    coroutine cancels the task (a running one has its worker process
    terminated). As with :func:`background_task`, ``f`` gets the task's id
    in ``_task_id`` if its signature takes it (by name or ``**kwargs``).

    Args:
        f: a function at the top level of an importable module.
        args, kwargs: its arguments; pickled now.
        priority, delay, time_limit: as for :func:`background_task`.
        supervisor: the supervisor to use; the default one if None.

    Returns:
        What ``f`` returned.

    Raises:
        BaseException: what ``f`` raised, WorkerLostError if its process
            died, TaskTimeoutError past the time limit.
        TypeError, ValueError: bad arguments (before anything runs).
    """
    return await _apply(f, args, kwargs, priority, delay, supervisor, TT_MP, time_limit)


async def co_apply(
    f: Callable[..., Any],
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    priority: int = TASK_NORMAL,
    delay: float | None = None,
    supervisor: TaskSupervisor | None = None,
) -> Any:
    """Run ``f(*args, **kwargs)`` in the thread pool and await its result.

    The thread-pool twin of :func:`co_mp_apply`; cancelling the awaiting
    coroutine cancels the task if it has not started.
    """
    return await _apply(f, args, kwargs, priority, delay, supervisor, TT_THREAD)


async def _apply(
    f: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None,
    priority: int,
    delay: float | None,
    supervisor: TaskSupervisor | None,
    tt: int,
    time_limit: float | None = None,
) -> Any:
    task = (supervisor or task_supervisor).submit(
        f,
        tuple(args),
        dict(kwargs) if kwargs else {},
        priority=priority,
        delay=delay,
        tt=tt,
        time_limit=time_limit,
        name=_default_name(f) if callable(f) else None,
        pass_task_id=tt == TT_MP and callable(f) and accepts_task_id(f),
    )
    return await task
