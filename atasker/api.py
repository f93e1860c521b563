"""The functions most code uses: background_task, wait_completed, co_apply."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable, overload

from .core.constants import TT_MP, TT_THREAD
from .core.names import default_name
from .core.options import TaskOptions
from .core.task import TaskInfo
from .core.validation import check_timeout
from .core.waiting import wait_all
from .pools.mpcodec import accepts_task_id
from .supervisor import TaskSupervisor, task_supervisor
from .taskfunction import TaskFunction


@overload
def background_task(f: Callable[..., Any], **options: Any) -> TaskFunction: ...


@overload
def background_task(
    f: None = None, **options: Any
) -> Callable[[Callable[..., Any]], TaskFunction]: ...


def background_task(
    f: Callable[..., Any] | None = None, **options: Any
) -> TaskFunction | Callable[[Callable[..., Any]], TaskFunction]:
    """Make ``f`` run as a background task each time it is called.

    Used bare (``@background_task``), with options
    (``@background_task(priority=TASK_HIGH)``) or directly
    (``background_task(f, priority=TASK_HIGH)(x)``). The result is a
    :class:`~atasker.taskfunction.TaskFunction`: calling it queues
    ``f(*args, **kwargs)`` and returns its :class:`TaskInfo` at once;
    ``apply_async`` gives options for one call.

    Options (all keyword-only; docs/options.md has each with an example):
        name: the task name; default ``module.qualname`` of ``f``.
        priority: TASK_LOW, TASK_NORMAL, TASK_HIGH or TASK_CRITICAL.
        tt: TT_THREAD, TT_MP (a worker process: ``f`` must live at the top
            level of an importable module) or TT_COROUTINE; a coroutine
            function is always TT_COROUTINE.
        delay (or countdown), eta: when the task is due; expires: when a
            task not started yet is canceled instead.
        time_limit, soft_time_limit: seconds an attempt may run.
        retries, retry_for, retry_delay, retry_backoff, retry_backoff_max,
            retry_jitter: the retry policy.
        on_start, on_success, on_error, on_retry, after_return: hooks;
            callback: called with the result (atasker 0.7's).
        bind: pass the task's context as the first argument.
        depends_on: records or task ids that must complete first.
        loop: coroutine tasks: an aloop name, an ALoop, or an asyncio loop.
        supervisor: the supervisor to use; the default one if None.

    Raises:
        TypeError: ``f`` is not callable; an unknown option or a value of
            the wrong type (named).
        ValueError: a value out of range (named).
    """
    task_options = TaskOptions(**options)

    def decorate(target: Callable[..., Any]) -> TaskFunction:
        if isinstance(target, TaskFunction):  # again: its options, then these
            return TaskFunction(target.run, target._options.replace(**options))
        return TaskFunction(target, task_options)

    if f is None:
        return decorate
    return decorate(f)


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
    wait_all(records, timeout, "tasks")
    return [record.get() for record in records]


async def co_mp_apply(
    f: Callable[..., Any],
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    priority: int | None = None,
    delay: float | None = None,
    supervisor: TaskSupervisor | None = None,
    time_limit: float | None = None,
    **options: Any,
) -> Any:
    """Run ``f(*args, **kwargs)`` in the process pool and await its result.

    Awaitable from any running asyncio loop. Cancelling the awaiting
    coroutine cancels the task (a running one has its worker process
    terminated). As with :func:`background_task`, ``f`` gets the task's id
    in ``_task_id`` if its signature takes it (by name or ``**kwargs``).

    Args:
        f: a function at the top level of an importable module (or a task
            function: its options apply, then these).
        args, kwargs: its arguments; pickled now.
        priority, delay, time_limit: as for :func:`background_task`
            (None: the default, TASK_NORMAL, or the task function's).
        supervisor: the supervisor to use; the default one if None.
        options: any other task option (``retries``, ``on_success``, ...).

    Returns:
        What ``f`` returned.

    Raises:
        BaseException: what ``f`` raised, WorkerLostError if its process
            died, TaskTimeoutError past the time limit.
        TypeError, ValueError: bad arguments (before anything runs).
    """
    given = _given(priority=priority, delay=delay, time_limit=time_limit)
    return await _submit(f, args, kwargs, supervisor, TT_MP, **given, **options)


async def co_apply(
    f: Callable[..., Any],
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    priority: int | None = None,
    delay: float | None = None,
    supervisor: TaskSupervisor | None = None,
    **options: Any,
) -> Any:
    """Run ``f(*args, **kwargs)`` in the thread pool and await its result.

    The thread-pool twin of :func:`co_mp_apply`; takes any task option.
    Cancelling the awaiting coroutine cancels the task if it has not
    started (a running thread task gets ``cancel_requested``).
    """
    given = _given(priority=priority, delay=delay)
    return await _submit(f, args, kwargs, supervisor, TT_THREAD, **given, **options)


def _given(**options: Any) -> dict[str, Any]:
    """The options a caller gave (None: not given)."""
    return {key: value for key, value in options.items() if value is not None}


def _submit(
    f: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None,
    supervisor: TaskSupervisor | None,
    tt: int,
    **options: Any,
) -> TaskInfo:
    if isinstance(f, TaskFunction):  # its own options (supervisor too), then these
        if supervisor is not None:
            options["supervisor"] = supervisor
        return f.apply_async(args, kwargs, tt=tt, **options)
    if callable(f):
        options.setdefault("name", default_name(f))
        options["pass_task_id"] = tt == TT_MP and accepts_task_id(f)
    return (supervisor or task_supervisor).submit(
        f, tuple(args), dict(kwargs) if kwargs else {}, tt=tt, **options
    )
