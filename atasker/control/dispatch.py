"""Dispatch: from a call to a task record in the right queue, and back.

::

    submit / put_task / TaskFunction ──> TaskInfo ──> registry (look-up)
        depends_on? ── yes ──> wait for them (deps) ──┐
                                │ no                 ▼  all COMPLETED
        due later? ── yes ──> Timer ── due ──┐  (_task_due)
                                │ no         ▼
                                └──> thread pool | process pool | a loop
        expires? ──> a timer call cancels it ("expired") unless it started

    attempt failed, retry policy says again ──> _retry_task: DELAYED, then
        the same path (timer or pool), holding no slot meanwhile
    record final ──> _task_finished: registry   _task_failed: log

The supervisor inherits :class:`TaskDispatch`; the pools, the timer and the
loops it routes to are the supervisor's current ones. Tasks that wait for
their dependencies or their next attempt, and expiry, are release.py's.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import time
import types
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Callable, NoReturn

from ..aio.cotask import cancel_coroutine, schedule_coroutine
from ..core import deps, names
from ..core.constants import (
    TASK_NORMAL,
    TASK_STATUS_CANCELED,
    TASK_STATUS_STARTED,
    TT_COROUTINE,
    TT_MP,
    TT_THREAD,
)
from ..core.errors import SupervisorNotRunningError
from ..core.events import EventBus
from ..core.links import PENDING
from ..core.options import (
    DEFAULT_OPTIONS,
    TaskOptions,
    check_for_executor,
    options_from_defaults,
)
from ..core.registry import TaskRegistry
from ..core.task import TaskInfo
from ..core.timer import Timer
from ..core.validation import (
    check_args,
    check_callable,
    check_kwargs,
)
from ..pools.executors import payload_of
from ..pools.external import ExternalPool
from ..pools.mpcodec import accepts_task_id, wire_info
from ..pools.mpthreads import UserCodeThread
from ..pools.mpworker import SOFT_LIMITS
from ..pools.processpool import ProcessPool
from ..pools.threadpool import ThreadPool
from .lifecycle import RUNNING, Lifecycle
from .release import TaskRelease, when

logger = logging.getLogger("atasker")


class TaskDispatch(TaskRelease):
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
    _user_code: UserCodeThread  # see _run_user_code
    _events: EventBus
    _lifecycle: Lifecycle

    if TYPE_CHECKING:  # the supervisor's, and its other parts'

        @property
        def _active(self) -> bool: ...

        def _mp_submitter(self) -> Callable[[TaskInfo], bool]: ...

        def _external_pool(self, name: str | None, tt: int) -> ExternalPool | None: ...

        def _to_external(self, task: TaskInfo, pool: ExternalPool) -> bool: ...

        def resolve_loop(self, loop: Any) -> asyncio.AbstractEventLoop: ...

        def _task_emitted(self, task: TaskInfo, event: str, data: Any) -> None: ...

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
        check_callable(target, "target")
        # atasker 0.7's options, checked once per distinct values.
        options = options_from_defaults(
            {"priority": priority, "delay": delay, "tt": tt, "callback": callback}
        )
        return self._submit(
            target,
            check_args(args),
            check_kwargs(kwargs),  # a copy: _task_id is added
            options,
            task_type(target, options.tt),
            task_id=task_id,
            pass_task_id=tt != TT_MP or accepts_task_id(target),
        )

    def submit(
        self,
        target: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        options: TaskOptions | None = None,
        task_id: str | None = None,
        pass_task_id: bool = False,
        **option_values: Any,
    ) -> TaskInfo:
        """Queue ``target(*args, **kwargs)`` as a task; return its record.

        Takes every task option (``priority``, ``delay``, ``tt``,
        ``retries``, ``time_limit``, ``on_success``, ``depends_on``, ...; see
        docs/options.md), checked here, on top of ``options`` if given. A
        process task (``tt=TT_MP``) is pickled here, so what cannot be
        pickled is refused before a record exists. A coroutine function
        always runs as a coroutine task, on ``loop`` (an aloop name, an
        ALoop, an asyncio loop, or None for the default aloop).

        Args:
            target: what to run; a task function (made by
                ``background_task``) brings its own options, which these
                replace.
            args, kwargs: its arguments.
            options: a TaskOptions to start from (the defaults if None).
            task_id: the record's id (default: a new unique one).
            pass_task_id: add ``_task_id`` to the target's keyword arguments.
            option_values: options that replace those of ``options``.

        Raises:
            TypeError, ValueError: a bad argument or option (named in the
                message); an unknown ``depends_on`` id; an ``eta`` after
                ``expires``.
            SupervisorNotRunningError: the supervisor is not started.
            ProcessPoolStartError: the process pool, started by this first
                process task, could not start.
        """
        check_callable(target, "target")
        if (
            type(target) is not types.FunctionType  # a function is not one
            and getattr(target, "__atasker_function__", None) is not None
        ):
            # A task function (TaskFunction): its own options, then these.
            if options is not None:
                raise TypeError(
                    "options= cannot be given with a task function: give the "
                    "options as keywords"
                )
            record: TaskInfo = target.apply_async(  # type: ignore[attr-defined]
                args, kwargs, task_id=task_id, supervisor=self, **option_values
            )
            return record
        args = check_args(args)
        kwargs = check_kwargs(kwargs)  # a copy: _task_id may be added
        if options is None:
            resolved = (
                options_from_defaults(option_values)
                if option_values
                else DEFAULT_OPTIONS
            )
        elif isinstance(options, TaskOptions):
            resolved = options.replace(**option_values)
        else:
            raise TypeError(f"options must be a TaskOptions; got {options!r}")
        return self._submit(
            target,
            args,
            kwargs,
            resolved,
            task_type(target, resolved.tt),
            task_id=task_id,
            pass_task_id=pass_task_id,
        )

    def send_task(
        self,
        name: str,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> TaskInfo:
        """Queue a task by the name of its task function (celery's
        ``send_task``): its options, then these, on this supervisor.

        Raises:
            UnknownTaskError: no task function has that name in this process.
            TypeError, ValueError: a bad argument or option (named).
            SupervisorNotRunningError: the supervisor is not started.
        """
        task_function = names.lookup(name)
        options.setdefault("supervisor", self)
        record: TaskInfo = task_function.apply_async(args, kwargs, **options)
        return record

    def _submit(
        self,
        target: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: TaskOptions,
        tt: int,
        # Positional too: TaskFunction passes them so (keywords cost a call).
        plain: bool | None = None,
        task_id: str | None = None,
        pass_task_id: bool = False,
        pickle_as: Any = None,
        follow: deps.Follow | None = None,
        class_run: Any = None,
    ) -> TaskInfo:
        """:meth:`submit` with everything checked (the hot path).

        Args:
            options: the task's options.
            tt: its task type (a coroutine function's is TT_COROUTINE).
            plain: ``options.is_plain(tt)``, if the caller knows it.
            pickle_as: what to pickle as the target of a process task
                (default ``target``); see TaskFunction.
            follow: the tasks it follows in a chain or chord (workflows).
            class_run: a class task's ClassRun (classtasks/classrun.py).
        """
        pool, timer = self._pool, self._timer
        if pool is None or timer is None or self._lifecycle.state != RUNNING:
            raise SupervisorNotRunningError(
                f"supervisor {self.id} is not running: call start() first"
            )
        if task_id is None:
            task_id = f"{self._id_prefix}-{next(self._id_numbers)}"
        else:
            task_id = str(task_id)
        if pass_task_id:
            kwargs["_task_id"] = task_id
        if follow is not None:
            plain = False
        elif plain is None:
            plain = options.is_plain(tt)
        if plain and tt == TT_THREAD and not options.delay:
            # atasker 0.7's options, to the thread pool now: the hot path.
            task = TaskInfo(  # (positional: see TaskInfo.__init__)
                task_id,
                target,
                args,
                kwargs,
                tt,
                options.priority,
                options.name,
                None,
                options.callback,
                options.time_limit,
                self,
            )
            self._registry.add(task)
            if self._events.active:  # before the pool may start it
                self._events.publish(task_id, task.name, "queued", None)
            try:
                if pool.submit(task):
                    return task
            except BaseException:
                self._registry.remove(task)
                raise
            self._refuse(task)
        # Beyond atasker 0.7's options: when it is due and expires, what it
        # depends on, and the record keeps what its attempts need.
        if plain:
            delay, due, expires_at = options.delay, None, None
            dependencies: Sequence[TaskInfo] = ()
            record_options = None
        else:
            delay, due, expires_at = when(options)
            dependencies = self._dependencies(options.depends_on)
            # Without its dependencies: a record must not keep them alive.
            record_options = options.replace(depends_on=()) if dependencies else options
            if follow is not None:
                dependencies = [*dependencies, *follow.records]
        task = TaskInfo(  # (positional: see TaskInfo.__init__)
            task_id,
            target,
            args,
            kwargs,
            tt,
            options.priority,
            options.name,
            delay,
            options.callback,
            options.time_limit,
            self,
            record_options,
            bool(dependencies),
        )
        extra = task._extra
        if extra is not None:
            extra.eta, extra.expires = due, expires_at
            extra.class_run = class_run
            if follow is not None:
                extra.parent = follow.parent
                if follow.feed is not None:
                    follow.pickle_as = pickle_as
                    extra.feed = follow
        if tt != TT_THREAD or (not plain and options.pool is not None):
            self._prepare(task, pickle_as, options)
        self._registry.add(task)
        if not plain and (options.link or options.link_error):
            try:
                self._make_links(task, options)
            except BaseException:
                self._registry.remove(task)
                raise
        if expires_at is not None and expires_at <= time.time():
            task._expire()  # accepted, and will never run
            return task
        events = self._events
        if events.active:  # before a pool may start it
            events.publish(task_id, task.name, "queued", None)
        try:
            if dependencies:
                deps.watch(
                    task,
                    dependencies,
                    self._dependencies_met,
                    self._run_user_code,
                    None if follow is None else follow.kind,
                )
                accepted = True
            elif delay:
                accepted = timer.schedule(task, delay)
            elif tt == TT_THREAD and task.handle is None:  # _enqueue() inlined
                accepted = pool.submit(task)
            else:
                accepted = self._enqueue(task)
        except BaseException:
            self._registry.remove(task)
            _cancel_links(task.children)  # (all: it never ran)
            raise
        if not accepted:
            self._refuse(task)
        if expires_at is not None:
            self._arm_expiry(task, timer, expires_at - time.time())
        return task

    def _refuse(self, task: TaskInfo) -> NoReturn:
        """A pool or the timer refused ``task`` (the supervisor is stopping):
        it was never accepted."""
        self._registry.remove(task)
        _cancel_links(task.children)  # (all: it never ran)
        raise SupervisorNotRunningError(f"supervisor {self.id} is stopping")

    def _make_links(self, task: TaskInfo, options: TaskOptions) -> None:
        """The records of a task's links, made with it: DELAYED, following
        it (``link`` runs if it completes, ``link_error`` if it fails).

        Raises:
            Exception: a link could not be submitted (those made are
                canceled).
        """
        children: list[tuple[str, TaskInfo]] = []
        try:
            for kind, links in (
                ("link", options.link),
                ("link_error", options.link_error),
            ):
                for link in links:
                    children.append((kind, link._follow_task(task, kind, self)))
        except BaseException:
            _cancel_links(child for _, child in children)
            raise
        with task._lock:
            task._extra_locked().children = children

    def _prepare(self, task: TaskInfo, pickle_as: Any, options: TaskOptions) -> None:
        """What a task needs before it is queued: its external pool, if it
        goes to one; a process task's payload (pickled now: what cannot be
        is refused at the call); a coroutine task's loop.

        Raises:
            ValueError, TypeError: no such pool; what cannot be pickled.
        """
        external = task.handle
        if type(external) is not ExternalPool:  # (a chain's task: known)
            external = self._external_pool(options.pool, task.tt)
        if external is not None:
            if options.pool is None:  # a process task, to the mp_pool
                check_for_executor(options.mapping, "tt=TT_MP while mp_pool is set")
            task.handle = external
            if external.adapter.pickles:
                task.payload = payload_of(task, pickle_as)
            return
        if task.tt == TT_MP:
            if task.options.soft_time_limit is not None and not SOFT_LIMITS:
                raise ValueError(
                    "soft_time_limit: a process task's soft limit needs "
                    "SIGALRM, which this platform does not have"
                )
            task.payload = payload_of(task, pickle_as, wire_info(task))
        elif task.tt == TT_COROUTINE:
            task.handle = self.resolve_loop(options.loop)

    def _enqueue(self, task: TaskInfo) -> bool:
        """Hand a QUEUED task to its pool or loop; False if that refuses it."""
        if type(task.handle) is ExternalPool:
            return self._to_external(task, task.handle)
        if task.tt == TT_MP:
            return self._mp_submitter()(task)
        if task.tt == TT_COROUTINE:
            return self._start_coroutine(task)
        pool = self._pool
        return pool is not None and pool.submit(task)

    def _start_coroutine(self, task: TaskInfo) -> bool:
        """Schedule a coroutine task on its loop (``task.handle``).

        Raises:
            RuntimeError: the loop is closed (says which).
        """
        schedule_coroutine(task, task.handle)
        return True

    def _run_user_code(self, notify: Callable[[], None]) -> None:
        """Run a record's hooks and callbacks (they catch what they raise)
        off the calling internal thread (the timer, a process pool's
        manager): on the supervisor's callbacks thread, in order."""
        self._user_code.put(notify)

    def _takes_attempts(self) -> bool:
        """May a task that failed be retried? (Not once a stop began.)"""
        return self._active

    def _task_finished(self, task: TaskInfo, previous: int) -> None:
        """A record reached its final status (called under the record's lock:
        only bookkeeping here, no user code; the record has left its queue)."""
        self._registry.finish(task)

    def _cancel_running(self, task: TaskInfo, reason: str | None) -> bool:
        """Cancel a started task: a process or coroutine task is stopped; a
        thread task is asked to stop (its ``cancel_requested``), and False."""
        replacement = task._replacement()
        if replacement == PENDING:  # its replacement is not submitted yet
            return task._finish(
                TASK_STATUS_CANCELED,
                only_from=(TASK_STATUS_STARTED,),
                defer=self._run_user_code,
                reason=reason,
            )
        if replacement is not None:  # it ends as its replacement does
            return bool(replacement.cancel(reason))
        handle = task.handle
        if type(handle) is ExternalPool:
            return handle.cancel_running(task, reason)
        if task.tt == TT_MP:
            # The pool that runs it (set when it started), not the current
            # one: a restart may have made another.
            mp_pool = task.handle if isinstance(task.handle, ProcessPool) else None
            mp_pool = mp_pool or self._mp_pool
            if mp_pool is None:
                return False
            return mp_pool.cancel_running(task, reason)
        if not task._request_cancel(reason):
            return False  # no longer running (it may wait for a retry now)
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


def _cancel_links(children: Iterable[TaskInfo]) -> None:
    """The links of a task that was not submitted after all never run."""
    for child in children:
        child.cancel("link: the task it follows was not submitted")


def task_type(target: Callable[..., Any], tt: int) -> int:
    """A coroutine function always runs as a coroutine task."""
    if tt == TT_COROUTINE:
        return tt
    if type(target) is types.FunctionType:  # the common case, read directly
        coroutine = bool(target.__code__.co_flags & inspect.CO_COROUTINE)
    else:
        coroutine = inspect.iscoroutinefunction(target)
    return TT_COROUTINE if coroutine else tt
