"""The functions most code uses: background_task and wait_completed."""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Iterable
from typing import Any, Callable, overload

from .constants import TASK_NORMAL, TT_THREAD
from .supervisor import TaskSupervisor, task_supervisor
from .task import TaskInfo
from .validation import (
    check_callable,
    check_delay,
    check_priority,
    check_task_type,
    check_timeout,
)

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
        tt: task type; TT_THREAD.
        callback: called with the result when the task completes.
        loop: reserved for coroutine tasks.
        supervisor: the supervisor to use; the default one if None (looked
            up at each call).

    Raises:
        TypeError: ``f`` or ``callback`` is not callable.
        ValueError: unknown priority or task type, bad delay.
    """
    priority = check_priority(priority)
    delay = check_delay(delay)
    tt = check_task_type(tt)
    check_callable(callback, "callback", allow_none=True)
    if supervisor is not None and not isinstance(supervisor, TaskSupervisor):
        raise TypeError(f"supervisor must be a TaskSupervisor; got {supervisor!r}")

    def decorate(target: Callable[..., Any]) -> TaskFactory:
        check_callable(target, "target")
        if inspect.iscoroutinefunction(target):
            raise TypeError(
                f"target {target!r} is a coroutine function: coroutine tasks are "
                "not supported by this version; use a plain function"
            )
        task_name = name or _default_name(target)

        @functools.wraps(target)
        def start(*args: Any, **kwargs: Any) -> TaskInfo:
            return (supervisor or task_supervisor).submit(
                target,
                args,
                kwargs,
                priority=priority,
                delay=delay,
                tt=tt,
                name=task_name,
                callback=callback,
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

    Raises:
        TimeoutError: not all finished within ``timeout``.
        TaskCancelledError: a task was canceled (the first, in order).
        BaseException: what the first failed task (in order) raised.
        TypeError: ``tasks`` holds something that is not a task record.
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
            raise TimeoutError(
                f"{sum(not r.done() for r in records)} of {len(records)} tasks "
                f"not completed within {timeout} s"
            )
    return [record.get() for record in records]
