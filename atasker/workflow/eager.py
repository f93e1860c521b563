"""Eager apply: a task run in the caller's thread (celery's ``apply``).

::

    f.apply(args, kwargs, **options)
        record (owner: an EagerOwner, no supervisor) ──> attempt in this
        thread (hooks, bind, context) ──> failed and the policy says again?
        wait the retry delay here, attempt again ──> final record returned

Time limits, ``delay``/``eta``, ``expires`` and ``depends_on`` do not apply:
the caller waits for the task by calling it. The links its outcome calls
for are applied eagerly too, once it has ended. Nothing here raises what
the task raised: it is on the record (``record.get()`` raises it).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any, Callable

from ..core.attempts import failed_status
from ..core.constants import (
    TASK_NORMAL,
    TASK_STATUS_COMPLETED,
    TASK_STATUS_DELAYED,
    TT_THREAD,
)
from ..core.events import NO_EVENTS
from ..core.options import TaskOptions
from ..core.task import TaskInfo
from ..core.waiting import running
from ..pools.threadattempt import run_attempt

logger = logging.getLogger("atasker")


class EagerOwner:
    """What an eagerly run record reports to: the caller, not a supervisor."""

    eager = True  # links and replacements of its records run eagerly too
    _events = NO_EVENTS  # an eager task publishes nothing

    def __init__(self) -> None:
        self.wait = 0.0  # before the next attempt

    def _task_finished(self, task: TaskInfo, previous: int) -> None:
        pass

    def _task_emitted(self, task: TaskInfo, event: str, data: Any) -> None:
        """What an eager task emits goes nowhere: no supervisor publishes it."""

    def _task_failed(self, task: TaskInfo) -> None:
        pass  # the record, returned to the caller, holds it

    def _cancel_running(self, task: TaskInfo, reason: str | None) -> bool:
        return False

    def _takes_attempts(self) -> bool:
        return True

    def _retry_task(self, task: TaskInfo, wait: float) -> bool:
        self.wait = wait
        return True


def apply(
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    options: TaskOptions,
    task_id: str | None = None,
) -> TaskInfo:
    """Run ``function(*args, **kwargs)`` here with ``options``; the final
    record. A coroutine function runs to its end in a new event loop."""
    target = function
    if inspect.iscoroutinefunction(function):
        target = functools.partial(_run_coroutine, function)
    owner = EagerOwner()
    record = TaskInfo(
        task_id or new_id(),
        target,
        args,
        dict(kwargs),
        tt=TT_THREAD,
        priority=options.priority,
        name=options.name,
        owner=owner,
        options=options,
    )
    outer = getattr(running, "task", None)  # apply() from inside a task
    try:
        while True:
            run_attempt(record, None)
            if record.status != TASK_STATUS_DELAYED:
                break
            if owner.wait > 0:
                time.sleep(owner.wait)  # the retry delay, in the caller
            record.set_queued()
    finally:
        running.task = outer
    _apply_links(record, options)
    return record


def _apply_links(record: TaskInfo, options: TaskOptions) -> None:
    """Apply, eagerly, the links the outcome calls for: ``link`` with the
    result, ``link_error`` with the record. One that cannot even start is
    logged and gets a failed record."""
    if record.status == TASK_STATUS_COMPLETED:
        kind, links, value = "link", options.link, record.result
    elif record.failed():
        kind, links, value = "link_error", options.link_error, record
    else:
        return
    children = []
    for link in links:
        try:
            children.append((kind, link.apply((value,))))
        except Exception as exc:
            logger.exception("link %r of task %s could not run", link, record.id)
            children.append((kind, failed_record(link.name, exc)))
    with record._lock:
        record._extra_locked().children = children


def failed_record(name: str | None, exception: BaseException) -> TaskInfo:
    """A record that failed before it could be submitted (a link whose
    submit raised): it holds the error, as a task's record would."""
    record = TaskInfo(
        new_id(),
        _never,
        (),
        {},
        tt=TT_THREAD,
        priority=TASK_NORMAL,
        name=name,
    )
    record._finish(failed_status(exception), exception=exception)
    return record


def new_id() -> str:
    return uuid.uuid4().hex


def _run_coroutine(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return asyncio.run(function(*args, **kwargs))


def _never() -> None:  # pragma: no cover - the target of a record never run
    raise AssertionError("never run")
