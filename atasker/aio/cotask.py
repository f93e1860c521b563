"""Coroutine tasks: a record whose target returns an awaitable runs as an
asyncio task on its loop; cancel() of a started one cancels that task."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from ..core.task import TaskInfo

# asyncio tasks of coroutine tasks whose cancel() was asked: such a record
# ends CANCELED even if its coroutine swallows the CancelledError.
_cancel_requested: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()


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
    task.handle = asyncio.current_task()
    # Read before the start: a final record has dropped them (target None).
    target, args, kwargs = task.target, task.args, task.kwargs
    if not task.set_started():
        task.handle = None  # canceled before it could start (and closed)
        return
    try:
        assert target is not None
        result = await target(*args, **kwargs)
    except asyncio.CancelledError:
        task.set_canceled()
        raise
    except BaseException as exc:
        task.set_exception(exc)
    else:
        if task.handle in _cancel_requested:
            task.set_canceled()  # cancel() said True: it swallowed the cancel
        else:
            task.set_result(result)


def cancel_coroutine(task: TaskInfo) -> bool:
    """Cancel the asyncio task of a started coroutine task.

    Returns:
        True: the record will end CANCELED (even if the coroutine swallows
        the CancelledError and returns).
    """
    handle = task.handle
    if not isinstance(handle, asyncio.Task):
        return False
    _cancel_requested.add(handle)
    try:
        handle.get_loop().call_soon_threadsafe(handle.cancel)
    except RuntimeError:  # the loop is closed
        _cancel_requested.discard(handle)
        return False
    return True
