"""TaskInfo: the task record.

The record owns its status, result and exception; every other component asks
it. Each transition is one method that changes the status under the record's
lock, and a final status is set once::

    DELAYED ──> QUEUED ──> STARTED ──> COMPLETED | ERROR | EXCEPTION
       │          │
       └──────────┴──> CANCELED

Waiting costs nothing until someone waits: the ``threading.Event`` and the
list of done callbacks are created on first use, so a queued record is a few
hundred bytes.

When a record reaches its final status it tells its owner (the supervisor:
look-up store, counters), wakes its waiters, has a failure logged, then calls
the ``callback`` option with the result and the done callbacks with the
record. Errors raised by a callback are logged and never reach the thread
that finished the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
import time
import traceback as traceback_module
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Callable

from .constants import (
    FINAL_STATUSES,
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TASK_STATUS_DELAYED,
    TASK_STATUS_ERROR,
    TASK_STATUS_EXCEPTION,
    TASK_STATUS_QUEUED,
    TASK_STATUS_STARTED,
    TT_THREAD,
)
from .errors import TaskCancelledError, TaskError

if TYPE_CHECKING:
    from .supervisor import TaskSupervisor

logger = logging.getLogger("atasker")

DoneCallback = Callable[["TaskInfo"], Any]
Defer = Callable[[Callable[[], None]], Any]

# The record running in the current thread, for mark_task_completed().
_running = threading.local()


def current_task() -> TaskInfo | None:
    """Return the record of the task running in this thread, or None."""
    return getattr(_running, "task", None)


class TaskInfo:
    """The record of one task: what to run, its status, its outcome.

    Attributes (atasker 0.7's): ``id, tt, priority, status, result,
    time_queued, time_started, callback, delay, args, kwargs, target``; and
    ``name, time_completed, exception, traceback`` (the traceback as text).
    Times are ``time.time()`` values. Read them freely; only the record's own
    methods change them.
    """

    __slots__ = (
        "id",
        "tt",
        "priority",
        "status",
        "result",
        "time_queued",
        "time_started",
        "time_completed",
        "callback",
        "delay",
        "args",
        "kwargs",
        "target",
        "name",
        "exception",
        "traceback",
        "time_limit",
        "payload",
        "handle",
        "in_heap",
        "_lock",
        "_done_event",
        "_done_callbacks",
        "_context",
        "_owner",
    )

    def __init__(
        self,
        task_id: str,
        target: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        tt: int,
        priority: int,
        name: str | None = None,
        delay: float | None = None,
        callback: Callable[[Any], Any] | None = None,
        time_limit: float | None = None,
        owner: TaskSupervisor | None = None,
    ) -> None:
        self.id = task_id
        self.tt = tt
        self.priority = priority
        self.status = TASK_STATUS_DELAYED if delay else TASK_STATUS_QUEUED
        self.result: Any = None
        self.time_queued = time.time()
        self.time_started: float | None = None
        self.time_completed: float | None = None
        self.callback = callback
        self.delay = delay
        self.args = args
        self.kwargs = kwargs
        self.target = target
        self.name = name
        self.exception: BaseException | None = None
        self.traceback: str | None = None
        self.time_limit = time_limit
        # Process tasks: (target, args, kwargs) pickled when submitted.
        self.payload: bytes | None = None
        # Coroutine tasks: the loop to run on, then the running asyncio.Task.
        self.handle: Any = None
        # Set by the heap that holds the record (ready or timer heap), under
        # that heap's lock; a record is in at most one heap at a time.
        self.in_heap = False
        self._lock = threading.Lock()
        self._done_event: threading.Event | None = None
        self._done_callbacks: list[DoneCallback] | None = None
        # Thread tasks run in a copy of the submitter's context variables
        # (process tasks are pickled, coroutines run in their loop's context).
        self._context: contextvars.Context | None = (
            contextvars.copy_context() if tt == TT_THREAD else None
        )
        self._owner = owner

    def __repr__(self) -> str:
        return (
            f"<TaskInfo id={self.id!r} name={self.name!r} "
            f"priority={self.priority} status={self.status}>"
        )

    # ------------------------------------------------------------------
    # Queries
    # ------------------------------------------------------------------

    def is_started(self) -> bool:
        """True once the task has started running (also after it finished)."""
        return self.time_started is not None

    def is_completed(self) -> bool:
        """True once the task is in a final state (any of them)."""
        return self.status in FINAL_STATUSES

    done = is_completed

    def cancelled(self) -> bool:
        """True if the task was canceled."""
        return self.status == TASK_STATUS_CANCELED

    # ------------------------------------------------------------------
    # Waiting
    # ------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the task is in a final state.

        Args:
            timeout: seconds to wait at most; None waits for ever.

        Returns:
            True if the task is final, False if the timeout passed first.
        """
        if self.status in FINAL_STATUSES:
            return True
        with self._lock:
            if self.status in FINAL_STATUSES:
                return True
            if self._done_event is None:
                self._done_event = threading.Event()
            event = self._done_event
        return event.wait(timeout)

    def get(self, timeout: float | None = None) -> Any:
        """Wait for the task and return its result.

        Args:
            timeout: seconds to wait at most; None waits for ever.

        Returns:
            What the task returned.

        Raises:
            TimeoutError: the task is not final within ``timeout``.
            TaskCancelledError: the task was canceled.
            BaseException: whatever the task raised.
        """
        if not self.wait(timeout):
            raise TimeoutError(
                f"task {self.id} ({self.name}) not completed within {timeout} s"
            )
        return self._outcome()

    def _outcome(self) -> Any:
        if self.status == TASK_STATUS_COMPLETED:
            return self.result
        if self.status == TASK_STATUS_CANCELED:
            raise TaskCancelledError(f"task {self.id} ({self.name}) was canceled")
        assert self.exception is not None
        raise self.exception

    def add_done_callback(self, fn: DoneCallback) -> None:
        """Call ``fn(record)`` when the task is final; at once if it already is.

        An exception raised by ``fn`` is logged, never propagated.
        """
        with self._lock:
            if self.status not in FINAL_STATUSES:
                if self._done_callbacks is None:
                    self._done_callbacks = []
                self._done_callbacks.append(fn)
                return
        _call_logged(fn, self)

    def __await__(self) -> Generator[Any, None, Any]:
        """Await the task from any running asyncio loop.

        Cancelling the awaiting coroutine cancels the task (as
        ``asyncio.wrap_future`` does for a future).
        """
        if self.status not in FINAL_STATUSES:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()

            def wake(_: TaskInfo) -> None:
                # A closed loop raises RuntimeError: nobody awaits there now.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_resolve, future)

            self.add_done_callback(wake)
            try:
                yield from future.__await__()
            except asyncio.CancelledError:
                self.cancel()
                raise
        return self._outcome()

    # ------------------------------------------------------------------
    # Transitions (called by the supervisor, the pools and the timer)
    # ------------------------------------------------------------------

    def cancel(self) -> bool:
        """Cancel the task.

        A queued or delayed task will never run. A running process task has
        its worker process terminated (and replaced). A running thread or
        coroutine task cannot be stopped from outside.

        Returns:
            True if the task is now canceled (or was already), False if it
            runs on or has finished otherwise.
        """
        if self.status == TASK_STATUS_CANCELED:
            return True
        if self._finish(
            TASK_STATUS_CANCELED, only_from=(TASK_STATUS_QUEUED, TASK_STATUS_DELAYED)
        ):
            return True
        if self.status == TASK_STATUS_STARTED and self._owner is not None:
            return self._owner._cancel_running(self)
        return False

    def set_queued(self) -> bool:
        """DELAYED -> QUEUED, when the due time comes; False if canceled."""
        with self._lock:
            if self.status != TASK_STATUS_DELAYED:
                return False
            self.status = TASK_STATUS_QUEUED
            self.time_queued = time.time()
            return True

    def set_started(self) -> bool:
        """QUEUED -> STARTED; False if the task was canceled meanwhile."""
        with self._lock:
            if self.status != TASK_STATUS_QUEUED:
                return False
            self.status = TASK_STATUS_STARTED
            self.time_started = time.time()
            return True

    def set_result(self, result: Any, defer: Defer | None = None) -> bool:
        """Final: COMPLETED with ``result``. False if already final.

        ``defer``, if given, is handed the function that runs the callbacks
        instead of running them in this thread (see :meth:`_finish`).
        """
        return self._finish(TASK_STATUS_COMPLETED, result=result, defer=defer)

    def set_exception(
        self, exception: BaseException, defer: Defer | None = None
    ) -> bool:
        """Final: ERROR for a TaskError, EXCEPTION for anything else."""
        status = (
            TASK_STATUS_ERROR
            if isinstance(exception, TaskError)
            else TASK_STATUS_EXCEPTION
        )
        return self._finish(status, exception=exception, defer=defer)

    def set_canceled(self, defer: Defer | None = None) -> bool:
        """Final: CANCELED, from any non-final status (supervisor stop)."""
        return self._finish(TASK_STATUS_CANCELED, defer=defer)

    def run(self) -> None:
        """Run the target in this thread and store its outcome.

        Does nothing if the task was canceled before it could start. Never
        raises: the task's exception goes on the record.
        """
        with self._lock:  # set_started(), inlined: this is the hot path
            if self.status != TASK_STATUS_QUEUED:
                return
            self.status = TASK_STATUS_STARTED
            self.time_started = time.time()
        context = self._context
        self._context = None
        _running.task = self
        try:
            if context is None:
                result = self.target(*self.args, **self.kwargs)
            else:
                result = context.run(self.target, *self.args, **self.kwargs)
        except BaseException as exc:
            self.set_exception(exc)
        else:
            self._finish(TASK_STATUS_COMPLETED, result)
        finally:
            _running.task = None

    def _finish(
        self,
        status: int,
        result: Any = None,
        exception: BaseException | None = None,
        only_from: tuple[int, ...] | None = None,
        defer: Defer | None = None,
    ) -> bool:
        """The one final transition; True if this call made it.

        The callback option and the done callbacks are user code: they run in
        this thread, or are handed to ``defer`` (the process pool's manager
        thread must not wait for them).
        """
        with self._lock:
            if self.status in FINAL_STATUSES:
                return False
            if only_from is not None and self.status not in only_from:
                return False
            previous = self.status
            self.result = result
            if exception is not None:
                self.exception = exception
                self.traceback = "".join(
                    traceback_module.format_exception(
                        type(exception), exception, exception.__traceback__
                    )
                )
            self.time_completed = time.time()
            self.status = status
            event = self._done_event
            callbacks = self._done_callbacks
            self._done_callbacks = None
            self._context = None
            self.payload = None
            self.handle = None
            owner = self._owner
            if owner is not None:
                # Under the lock, so whoever sees the final status also sees
                # the record counted and stored. The owner takes only its own
                # locks here and never a record's: the lock order is one-way.
                owner._task_finished(self, previous)
        if event is not None:
            event.set()
        if exception is not None and owner is not None:
            owner._task_failed(self)
        callback = self.callback if status == TASK_STATUS_COMPLETED else None
        if callback is not None or callbacks:

            def notify() -> None:
                if callback is not None:
                    try:
                        callback(result)
                    except Exception:
                        logger.exception("callback of task %s failed", self.id)
                for fn in callbacks or ():
                    _call_logged(fn, self)

            if defer is None:
                notify()
            else:
                defer(notify)
        return True


def _call_logged(fn: DoneCallback, task: TaskInfo) -> None:
    try:
        fn(task)
    except Exception:
        logger.exception("done callback %r of task %s failed", fn, task.id)


def _resolve(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)
