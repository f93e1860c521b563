"""Where a class task's instance lives: its runs, and stop and reload requests.

The record's target is :func:`run_class` (or :func:`run_class_async` for an
``async def start``), in a pool thread, on a loop, or in a worker process::

    run:  provide_context() entered ─> instance made (id, name, stopping set)
          ─> __init__(**data) ─> start() ─> (stop() calls in flight return)
          ─> context exited
    then: a reload was asked?  acknowledge(data), and a new run with its data
          a stop was asked?    TaskCancelledError (the record: CANCELED "stopped")
          else                 start()'s result is the task's

A request (:meth:`LocalRun.request`) comes from the supervisor's thread (a
thread or coroutine task) or from the worker's control thread (a process
task, mpworker.control_messages). It sets ``stopping`` and calls ``stop()``
once per instance. A request that comes before ``__init__`` returned is kept:
the instance is made with ``stopping`` set (if it came before ``__init__``)
and its ``stop()`` is called, in the run's thread, as soon as ``__init__``
returns; never on a half-built instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
from collections.abc import Mapping
from typing import Any, Callable

from ..core.context import TaskContext, current_context
from ..core.errors import TaskCancelledError
from ..core.task import TaskInfo, current_task
from ..pools import mpworker
from .base import Task

logger = logging.getLogger("atasker")

NOTHING: Any = object()  # no reload asked

Acknowledge = Callable[[Any], None]


class LocalRun:
    """The runs of one record's instance, where it runs (see the module
    docstring). ``acknowledge(data)`` is told of each reload as its new run
    begins."""

    def __init__(self, task_class: type[Task], acknowledge: Acknowledge) -> None:
        self.task_class = task_class
        self._acknowledge = acknowledge
        self._lock = threading.Condition()
        self._instance: Task | None = None
        self._stop_asked = False
        self._reload: Any = NOTHING
        self._ended = False
        self._stop_called = False
        self._calls = 0  # stop() calls of a thread task that have not returned
        self._scheduled = 0  # an async task's stop() calls not begun on its loop
        self._no_scheduled: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stops: list[asyncio.Future[Any]] = []  # an async task's, on its loop

    def request(self, reload: Any = NOTHING) -> bool:
        """Stop the instance; with ``reload`` (data), then start a new one
        with it. False if the runs have ended (nothing to stop)."""
        with self._lock:
            if self._ended:
                return False
            if reload is NOTHING:
                self._stop_asked = True
            else:
                self._reload = reload
            instance = self._instance
            if instance is None or self._stop_called:
                return True  # the run sees the request as it makes one
            self._stop_called = True
            loop = self._loop
            if loop is None:
                self._calls += 1
            else:
                self._scheduled += 1
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._stop_on_loop, instance)
            except RuntimeError:  # its loop is closed: the task has ended
                with self._lock:
                    self._scheduled -= 1
            return True
        try:
            _stop_instance(instance)
        finally:
            with self._lock:
                self._calls -= 1
                self._lock.notify_all()
        return True

    def _made(
        self, context: TaskContext, stopping: Any, data: Mapping[str, Any]
    ) -> tuple[Task, bool]:
        """A new instance, its ``__init__`` run; and True if a request came
        first (its ``stop()`` is due now, before ``start``)."""
        instance = _make(self.task_class, context, stopping)
        if self._asked():
            stopping.set()
        instance.__init__(**data)  # type: ignore[misc]
        return instance, self._ready(instance)

    def _asked(self) -> bool:
        """True if a stop or reload was asked (an instance that is made sees
        ``stopping`` set)."""
        with self._lock:
            return self._stop_asked or self._reload is not NOTHING

    def _ready(self, instance: Task) -> bool:
        """``__init__`` returned: requests go to the instance from now on.
        True if one came first: the caller calls ``stop()`` now."""
        with self._lock:
            self._instance = instance
            asked = self._stop_asked or self._reload is not NOTHING
            self._stop_called = asked
            return asked

    def _end(self) -> Any:
        """The instance's start returned or raised: the data of a reload, or
        NOTHING (the runs end). Waits for stop() calls in flight first."""
        with self._lock:
            self._instance = None
            while self._calls:
                self._lock.wait()
            reload, self._reload = self._reload, NOTHING
            if self._stop_asked or reload is NOTHING:
                self._ended = True
                return NOTHING
            return reload

    def run(self, data: Mapping[str, Any], context: TaskContext) -> Any:
        """Run instances until one ends without a reload (a thread or a
        worker process)."""
        while True:
            stopping = threading.Event()
            reload = NOTHING
            try:
                with _entered(self.task_class):
                    try:
                        instance, stop_now = self._made(context, stopping, data)
                        if stop_now:
                            _stop_instance(instance)
                        result = instance.start()
                    finally:
                        reload = self._end()
            except BaseException:
                if reload is NOTHING:
                    raise
                # Asked to reload: how the old instance ended does not matter.
            if reload is NOTHING:
                return self._outcome(result)
            data = reload
            self._acknowledge(data)

    async def run_async(self, data: Mapping[str, Any], context: TaskContext) -> Any:
        """:meth:`run` for an ``async def start``, on the running loop."""
        self._loop = asyncio.get_running_loop()
        while True:
            stopping = asyncio.Event()
            reload = NOTHING
            try:
                async with _entered_async(self.task_class):
                    try:
                        instance, stop_now = self._made(context, stopping, data)
                        if stop_now:
                            self._stop_async(instance)
                        result = await instance.start()
                    finally:
                        reload = self._end()
                        if self._scheduled:  # stop() calls due on this loop
                            await self._scheduled_done()
                        stops, self._stops = self._stops, []
                        if stops:
                            await asyncio.gather(*stops, return_exceptions=True)
            except BaseException:
                if reload is NOTHING:
                    raise
            if reload is NOTHING:
                return self._outcome(result)
            data = reload
            self._acknowledge(data)

    @property
    def stop_asked(self) -> bool:
        """True once a stop (not a reload) was asked."""
        return self._stop_asked

    def _outcome(self, result: Any) -> Any:
        if self._stop_asked:
            raise TaskCancelledError("stopped")
        return result

    def _scheduled_done(self) -> asyncio.Future[None]:
        """A future of the loop, done once no stop() call is due on it."""
        assert self._loop is not None
        self._no_scheduled = self._loop.create_future()
        return self._no_scheduled

    def _stop_on_loop(self, instance: Task) -> None:
        """The loop's thread: a request from another thread."""
        with self._lock:
            self._scheduled -= 1
            left = self._scheduled
        self._stop_async(instance)
        waiter = self._no_scheduled
        if not left and waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _stop_async(self, instance: Task) -> None:
        """The loop's thread: set ``stopping``, start ``stop()`` (the run
        awaits it before it leaves the context)."""
        instance.stopping.set()
        try:
            stopped = instance.stop()
        except BaseException:  # user code
            logger.exception("stop() of task %s failed", instance.id)
            return
        if inspect.isawaitable(stopped):
            future = asyncio.ensure_future(stopped)
            future.add_done_callback(_log_failed_stop(instance))
            self._stops.append(future)


def _make(task_class: type[Task], context: TaskContext, stopping: Any) -> Task:
    instance = task_class.__new__(task_class)
    instance.id = context.id
    instance.name = context.name or ""
    instance.stopping = stopping
    instance._emit_to = context.emit
    return instance


def _stop_instance(instance: Task) -> None:
    instance.stopping.set()
    try:
        instance.stop()
    except BaseException:  # user code
        logger.exception("stop() of task %s failed", instance.id)


def _log_failed_stop(instance: Task) -> Callable[[asyncio.Future[Any]], None]:
    def done(future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None:
            logger.error(
                "stop() of task %s failed",
                instance.id,
                exc_info=future.exception(),
            )

    return done


def _entered(task_class: type[Task]) -> contextlib.AbstractContextManager[Any]:
    provide = getattr(task_class, "provide_context", None)
    if provide is None:
        return contextlib.nullcontext()
    manager: contextlib.AbstractContextManager[Any] = provide()
    return manager


@contextlib.asynccontextmanager
async def _entered_async(task_class: type[Task]) -> Any:
    provide = getattr(task_class, "provide_context", None)
    manager = None if provide is None else provide()
    if manager is None:
        yield None
    elif hasattr(manager, "__aenter__"):
        async with manager as value:
            yield value
    else:
        with manager as value:
            yield value


def run_class(task_class: type[Task], /, **data: Any) -> Any:
    """The target of a thread or process class task."""
    context = current_context()
    assert context is not None
    record = current_task()
    if record is not None:  # a thread of the supervisor's process
        control = _control_of(record)
        local = LocalRun(task_class, control.acknowledged)
        try:
            # The last data given (a retry after a reload runs with it).
            return local.run(control.attach(local), context)
        finally:
            control.detach(local)
    # A worker process: the parent's requests come over the pipe.
    local = LocalRun(task_class, lambda new: mpworker.send_event("reloaded", new))

    def on_message(message: Any) -> None:
        if isinstance(message, dict):
            local.request(message.get("reload", NOTHING))

    with mpworker.control_messages(on_message):
        return local.run(data, context)


async def run_class_async(task_class: type[Task], /, **data: Any) -> Any:
    """The target of a class task whose ``start`` is a coroutine function.

    A stop is no cancel of the coroutine (cotask.py ends a task whose
    cancel was requested CANCELED, whatever it raised): it is noted on the
    record only once ``start`` returned; a failure after a stop is final
    (no retry) and is the task's status.
    """
    context = current_context()
    assert context is not None
    record = context._record
    assert record is not None
    control = _control_of(record)
    local = LocalRun(task_class, control.acknowledged)
    try:
        return await local.run_async(control.attach(local), context)
    except TaskCancelledError:
        if local.stop_asked:
            record._request_cancel("stopped")
        raise
    except asyncio.CancelledError:
        raise
    except BaseException:
        if local.stop_asked:
            context.retries_spent = True
        raise
    finally:
        control.detach(local)


def _control_of(record: TaskInfo) -> Any:
    """The record's ClassRun (classrun.py)."""
    control = record._class_run()
    assert control is not None
    return control
