"""Dispatch: from a call to a task record in the right queue, and back.

::

    put_task / submit / background_task ──> TaskInfo ──> registry (look-up)
                                      │
                 delay? ── yes ──> Timer ── due ──┐  (_task_due)
                                      │ no        ▼
                                      └──> thread pool | process pool | a loop
    record final ──> _task_finished: registry   _task_failed: log

The supervisor inherits :class:`TaskDispatch`; the pools, the timer and the
loops it routes to are the supervisor's current ones.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import uuid
from typing import TYPE_CHECKING, Any, Callable

from ..aio.cotask import cancel_coroutine, schedule_coroutine
from ..core.constants import TASK_NORMAL, TT_COROUTINE, TT_MP, TT_THREAD
from ..core.errors import SupervisorNotRunningError
from ..core.registry import TaskRegistry
from ..core.task import TaskInfo
from ..core.timer import Timer
from ..core.validation import (
    check_args,
    check_callable,
    check_delay,
    check_kwargs,
    check_priority,
    check_task_type,
    check_time_limit,
)
from ..pools.mpcodec import accepts_task_id, pickle_payload
from ..pools.processpool import ProcessPool
from ..pools.threadpool import ThreadPool

logger = logging.getLogger("atasker")


class TaskDispatch:
    """Submitting tasks and the records' calls back (mixed into the
    supervisor).

    Attributes:
        log_exceptions: log every failed task at ERROR with its traceback.
    """

    id: str
    _registry: TaskRegistry
    _pool: ThreadPool | None
    _timer: Timer | None
    _mp_pool: ProcessPool | None

    if TYPE_CHECKING:  # the supervisor's, and its other parts'

        @property
        def _active(self) -> bool: ...

        def _mp_submitter(self) -> Callable[[TaskInfo], bool]: ...

        def resolve_loop(self, loop: Any) -> asyncio.AbstractEventLoop: ...

    def __init__(self) -> None:
        super().__init__()
        self.log_exceptions = True
        # Task ids: a random prefix per supervisor and a counter, cheaper
        # than a uuid4 per task and unique across supervisors and restarts.
        self._id_prefix = uuid.uuid4().hex[:12]
        self._id_numbers = itertools.count(1)

    def put_task(
        self,
        target: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        callback: Callable[[Any], Any] | None = None,
        priority: int = TASK_NORMAL,
        delay: float | None = None,
        tt: int = TT_THREAD,
        task_id: str | None = None,
        worker: Any = None,
    ) -> TaskInfo:
        """Run ``target(*args, _task_id=<id>, **kwargs)`` as a task (atasker's call).

        A thread target always gets ``_task_id``; a process target
        (``tt=TT_MP``) only if its signature takes it (a ``_task_id``
        parameter or ``**kwargs``). The task is marked completed when the
        target returns or raises; an explicit :meth:`mark_task_completed` is
        accepted too. ``worker`` is accepted for compatibility.

        Returns:
            The task record.

        Raises:
            TypeError, ValueError: a bad argument (named in the message).
            SupervisorNotRunningError: the supervisor is not started.
        """
        return self.submit(
            target,
            args,
            {} if kwargs is None else kwargs,
            priority=priority,
            delay=delay,
            tt=tt,
            callback=callback,
            task_id=task_id,
            pass_task_id=tt != TT_MP or accepts_task_id(target),
        )

    def submit(
        self,
        target: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        priority: int = TASK_NORMAL,
        delay: float | None = None,
        tt: int = TT_THREAD,
        name: str | None = None,
        callback: Callable[[Any], Any] | None = None,
        time_limit: float | None = None,
        loop: Any = None,
        task_id: str | None = None,
        pass_task_id: bool = False,
        checked: bool = False,
    ) -> TaskInfo:
        """Create a task record and queue it (or delay it).

        ``pass_task_id=True`` adds ``_task_id`` to the target's kwargs;
        ``checked=True`` skips argument checks already made (by
        ``background_task`` when it decorated the target). A process task
        (``tt=TT_MP``) is pickled here, so what cannot be pickled is refused
        before a record exists. A coroutine task (``tt=TT_COROUTINE``: the
        target returns an awaitable) runs on ``loop``: an aloop name, an
        ALoop, an asyncio loop, or None for the default aloop.

        Raises:
            TypeError, ValueError: a bad argument (named in the message).
            SupervisorNotRunningError: the supervisor is not started.
            ProcessPoolStartError: the process pool, started by this first
                process task, could not start.
        """
        if not checked:
            check_callable(target, "target")
            args = check_args(args)
            kwargs = check_kwargs(kwargs)  # a copy: _task_id is added below
            priority = check_priority(priority)
            delay = check_delay(delay)
            tt = check_task_type(tt)
            check_callable(callback, "callback", allow_none=True)
            time_limit = check_time_limit(time_limit, tt)
        pool, timer = self._pool, self._timer
        if pool is None or timer is None or not self._active:
            raise SupervisorNotRunningError(
                f"supervisor {self.id} is not running: call start() first"
            )
        if task_id is None:
            task_id = f"{self._id_prefix}-{next(self._id_numbers)}"
        else:
            task_id = str(task_id)
        if pass_task_id:
            kwargs["_task_id"] = task_id
        task = TaskInfo(
            task_id,
            target,
            args,
            kwargs,
            tt=tt,
            priority=priority,
            name=name,
            delay=delay,
            callback=callback,
            time_limit=time_limit,
            owner=self,
        )
        if tt == TT_MP:
            task.payload = pickle_payload(target, args, kwargs)
            submit = self._mp_submitter()
        elif tt == TT_COROUTINE:
            task.handle = self.resolve_loop(loop)
            submit = self._start_coroutine
        else:
            submit = pool.submit
        self._registry.add(task)
        try:
            accepted = timer.schedule(task, delay) if delay else submit(task)
        except BaseException:
            self._registry.remove(task)
            raise
        if not accepted:
            self._registry.remove(task)
            raise SupervisorNotRunningError(f"supervisor {self.id} is stopping")
        return task

    @staticmethod
    def _start_coroutine(task: TaskInfo) -> bool:
        """Schedule a coroutine task on its loop (``task.handle``).

        Raises:
            RuntimeError: the loop is closed (says which).
        """
        schedule_coroutine(task, task.handle)
        return True

    def _task_due(self, task: TaskInfo) -> None:
        """Timer thread: a delayed task is due."""
        if not task.set_queued():
            return  # canceled meanwhile
        # The timer's thread must not run user code: done callbacks of a task
        # that ends here run on a thread of their own (this is rare).
        if task.tt == TT_COROUTINE:
            try:
                self._start_coroutine(task)
            except RuntimeError as exc:
                task.set_exception(exc, defer=self._run_user_code)
            return
        pool: ThreadPool | ProcessPool | None = (
            self._mp_pool if task.tt == TT_MP else self._pool
        )
        if pool is None or not pool.submit(task):
            # Stopping: accepted, so it must end.
            task.set_canceled(defer=self._run_user_code)

    def _run_user_code(self, notify: Callable[[], None]) -> None:
        """Run a record's callbacks (they catch what they raise) off the
        calling internal thread."""
        threading.Thread(
            target=notify, name=f"supervisor_{self.id}_callbacks", daemon=True
        ).start()

    def _task_finished(self, task: TaskInfo, previous: int) -> None:
        """A record reached its final status (called under the record's lock:
        only bookkeeping here, no user code; the record has left its queue)."""
        self._registry.finish(task)

    def _cancel_running(self, task: TaskInfo) -> bool:
        """Cancel a started task: a process or coroutine task, not a thread."""
        if task.tt == TT_MP:
            # The pool that runs it (set when it started), not the current
            # one: a restart may have made another.
            mp_pool = task.handle if isinstance(task.handle, ProcessPool) else None
            mp_pool = mp_pool or self._mp_pool
            return mp_pool.cancel_running(task) if mp_pool is not None else False
        if task.tt == TT_COROUTINE:
            return cancel_coroutine(task)
        return False

    def _task_failed(self, task: TaskInfo) -> None:
        """A record ended with an exception (called by the record, no lock held)."""
        if task.exception is not None and self.log_exceptions:
            logger.error(
                "task %s (%s) failed",
                task.id,
                task.name,
                exc_info=(
                    type(task.exception),
                    task.exception,
                    task.exception.__traceback__,
                ),
            )
