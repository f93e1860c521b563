"""TaskFunction: what ``@background_task`` makes of a function.

Called like the function, it queues a task and returns its record at once
(atasker 0.7's behaviour). It also carries the function's options and
celery's ways to call it::

    f(*args, **kwargs)                      queue with the decorator's options
    f.delay(*args, **kwargs)                the same (celery's name)
    f.apply_async(args, kwargs, **options)  options for this call only
    f.run(*args, **kwargs)                  the function itself, here and now
    f.name, f.options                       its task name; its options, read-only
    f.s(*args), f.si(*args)                 a signature (workflow/signature.py)
    f.map(items), f.starmap, f.chunks       many calls (workflow/mapping.py)
    f.apply(args, kwargs, **options)        run here, as a task (eager)

Each task function registers its name (core/names.py): ``send_task`` and
``Signature.from_json`` find it by that name.

The options are checked once, when the function is decorated; a plain call
reuses them as they are. A task function defined at the top level of a
module pickles by reference, so a process task (``tt=TT_MP``) can name it;
a worker process runs the function it wraps (``__atasker_function__``).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable, Mapping
from typing import Any, Callable

from .control.dispatch import task_type
from .core import names
from .core.constants import TT_MP
from .core.deps import Follow
from .core.names import default_name
from .core.options import TaskOptions
from .core.task import TaskInfo
from .core.validation import check_args, check_callable, check_kwargs
from .pools.mpcodec import accepts_task_id
from .supervisor import TaskSupervisor, task_supervisor
from .workflow import eager
from .workflow.mapping import map_chunks
from .workflow.results import MapResult
from .workflow.signature import Signature


class TaskFunction:
    """A function that runs as a background task each time it is called.

    Args:
        function: what each task runs.
        options: its options (checked).
    """

    __qualname__: str  # the function's, as functools.update_wrapper sets
    __module__: str

    def __init__(self, function: Callable[..., Any], options: TaskOptions) -> None:
        check_callable(function, "target")
        functools.update_wrapper(self, function)
        self._function = function
        self.name: str = options.name or default_name(function)
        """The name of its tasks (default: ``module.qualname``)."""
        named = options.name is not None
        if not named:
            options = options.replace(name=self.name)
        self._options = options
        self._routing = _routing(function, options)
        self._by_reference = False  # known to pickle by reference
        if named or "<lambda>" not in self.name:
            names.register(self.name, self)  # a lambda has no name to find

    def __repr__(self) -> str:
        return f"<TaskFunction {self.name}>"

    @property
    def options(self) -> Mapping[str, Any]:
        """Every option of its tasks, read-only."""
        return self._options.mapping

    @property
    def run(self) -> Callable[..., Any]:
        """The function itself: call it to run it here, not as a task."""
        return self._function

    # What a worker process runs when a payload names this object (a name
    # no other callable has, unlike ``run``).
    __atasker_function__ = run

    def __call__(self, *args: Any, **kwargs: Any) -> TaskInfo:
        """Queue ``function(*args, **kwargs)``; return its record at once.

        Raises:
            SupervisorNotRunningError: the supervisor is not started.
            TypeError: a process task's arguments cannot be pickled.
        """
        return self._queue(args, kwargs, self._options, self._routing)

    delay = __call__

    def apply_async(
        self,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        task_id: str | None = None,
        **options: Any,
    ) -> TaskInfo:
        """Queue one call with options of its own (celery's per-call form).

        Args:
            args, kwargs: the function's arguments.
            task_id: the record's id (default: a new unique one).
            options: any task option, replacing the decorator's for this
                call; a ``delay``, ``countdown`` or ``eta`` replaces all
                three.

        Raises:
            TypeError, ValueError: a bad argument or option, named.
            SupervisorNotRunningError: the supervisor is not started.
        """
        return self._apply(check_args(args), check_kwargs(kwargs), options, task_id)

    def _apply(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: Mapping[str, Any],
        task_id: str | None = None,
        follow: Follow | None = None,
    ) -> TaskInfo:
        """:meth:`apply_async` with the arguments checked (signatures')."""
        merged = self._options.replace(**options)
        routing = (
            self._routing
            if merged is self._options
            else _routing(self._function, merged)
        )
        return self._queue(args, kwargs, merged, routing, task_id, follow)

    def _task_type(self, options: TaskOptions) -> int:
        return task_type(self._function, options.tt)

    def _queue(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: TaskOptions,
        routing: Routing,
        task_id: str | None = None,
        follow: Follow | None = None,
    ) -> TaskInfo:
        tt, plain, pass_task_id = routing
        supervisor: TaskSupervisor = options.supervisor or task_supervisor
        return supervisor._submit(  # (positional: the hot path)
            self._function,
            args,
            kwargs,
            options,
            tt,
            plain,
            task_id,
            pass_task_id,
            (
                self._pickle_as()  # what a process or an executor unpickles
                if tt == TT_MP or (not plain and options.pool is not None)
                else None
            ),
            follow,
        )

    # ------------------------------------------------------------------
    # Workflows
    # ------------------------------------------------------------------

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A signature of a call (celery's ``s``): run it later, link it,
        chain it. Arguments given when it is applied go before these."""
        return Signature(self, args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """An immutable signature: a chain does not prepend its parent's
        result."""
        return Signature(self, args, kwargs, immutable=True)

    def map(
        self,
        iterable: Iterable[Any],
        chunksize: int = 1,
        *,
        buffersize: int | None = None,
        **options: Any,
    ) -> MapResult:
        """A task per item (or per chunk of ``chunksize`` items: a process
        task's chunk travels as one message); returns at once. Its ``get()``
        is the flat list of results in input order.

        Args:
            iterable: the items, read lazily.
            chunksize: items per task.
            buffersize: chunks in flight at most (default: 4 per worker of
                the pool, at least 8): the items are read as chunks finish.
            options: task options for every task.

        Raises:
            TypeError, ValueError: a bad argument or option (named).
            SupervisorNotRunningError: the supervisor is not started.
        """
        return map_chunks(self, iterable, chunksize, buffersize, False, True, options)

    def starmap(
        self,
        iterable: Iterable[Iterable[Any]],
        chunksize: int = 1,
        *,
        buffersize: int | None = None,
        **options: Any,
    ) -> MapResult:
        """:meth:`map`, each item a tuple of arguments (``f(*item)``)."""
        return map_chunks(self, iterable, chunksize, buffersize, True, True, options)

    def chunks(
        self,
        iterable: Iterable[Any],
        n: int,
        *,
        star: bool = False,
        buffersize: int | None = None,
        **options: Any,
    ) -> MapResult:
        """A task per ``n`` items; ``get()`` is a list of per-chunk lists
        (celery's ``chunks``). With ``star=True`` each item is a tuple of
        arguments (celery's form: ``add.chunks(zip(a, b), 10, star=True)``)."""
        return map_chunks(self, iterable, n, buffersize, star, False, options, "n")

    def apply(
        self,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        task_id: str | None = None,
        **options: Any,
    ) -> TaskInfo:
        """Run one call here, in this thread, as a task: its hooks, retries
        (the retry delay is waited here), context and links; time limits,
        when-options and ``depends_on`` do not apply. Returns the final
        record; what the task raised is on it (celery's ``apply``).

        Raises:
            TypeError, ValueError: a bad argument or option (named).
        """
        merged = self._options.replace(**options)
        args, kwargs = check_args(args), check_kwargs(kwargs)
        if self._routing[2] or (
            self._task_type(merged) == TT_MP and accepts_task_id(self._function)
        ):
            kwargs["_task_id"] = task_id = task_id or eager.new_id()
        return eager.apply(self._function, args, kwargs, merged, task_id)

    def _pickle_as(self) -> Any:
        """What a process task's payload names: this object, if it pickles by
        reference (a module-level name); else the function itself."""
        if self._by_reference:
            return self
        module = sys.modules.get(self.__module__)
        found: Any = module
        for part in self.__qualname__.split("."):
            found = getattr(found, part, None)
        if found is self:
            self._by_reference = True
            return self
        return None

    def __reduce__(self) -> str:
        # By reference: the worker imports the module and finds us there.
        return self.__qualname__

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        """A task function in a class body binds like a method: each way to
        call it gets the instance first."""
        if instance is None:
            return self
        return BoundTaskFunction(self, instance)


class BoundTaskFunction:
    """A task function bound to an instance (``obj.method``)."""

    __slots__ = ("__func__", "__self__")

    def __init__(self, function: TaskFunction, instance: Any) -> None:
        self.__func__ = function
        self.__self__ = instance

    def __repr__(self) -> str:
        return f"<bound {self.__func__!r} of {self.__self__!r}>"

    def __call__(self, *args: Any, **kwargs: Any) -> TaskInfo:
        return self.__func__(self.__self__, *args, **kwargs)

    delay = __call__

    def apply_async(
        self,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> TaskInfo:
        """The task function's ``apply_async``, the instance first."""
        return self.__func__.apply_async(
            (self.__self__, *check_args(args)), kwargs, **options
        )

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """The function itself, bound: ``obj.method.run(x)``."""
        return self.__func__.run(self.__self__, *args, **kwargs)

    @property
    def name(self) -> str:
        """The task function's name."""
        return self.__func__.name

    @property
    def options(self) -> Mapping[str, Any]:
        """The task function's options."""
        return self.__func__.options


# The task type, whether the options are atasker 0.7's only, and whether the
# function takes ``_task_id``.
Routing = tuple[int, bool, bool]


def _routing(function: Callable[..., Any], options: TaskOptions) -> Routing:
    """The task type, whether its options are atasker 0.7's only, and
    whether it takes ``_task_id`` (process tasks, as in 0.7)."""
    tt = task_type(function, options.tt)
    pass_task_id = tt == TT_MP and accepts_task_id(function)
    return tt, options.is_plain(tt), pass_task_id
