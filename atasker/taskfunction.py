"""TaskFunction: what ``@background_task`` makes of a function.

Called like the function, it queues a task and returns its record at once
(atasker 0.7's behaviour). It also carries the function's options and
celery's ways to call it::

    f(*args, **kwargs)                      queue with the decorator's options
    f.delay(*args, **kwargs)                the same (celery's name)
    f.apply_async(args, kwargs, **options)  options for this call only
    f.run(*args, **kwargs)                  the function itself, here and now
    f.name, f.options                       its task name; its options, read-only

The options are checked once, when the function is decorated; a plain call
reuses them as they are. A task function defined at the top level of a
module pickles by reference, so a process task (``tt=TT_MP``) can name it;
a worker process runs the function it wraps (``__atasker_function__``).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from typing import Any, Callable

from .control.dispatch import task_type
from .core.constants import TT_MP
from .core.options import TaskOptions
from .core.task import TaskInfo
from .core.validation import check_args, check_callable, check_kwargs
from .pools.mpcodec import accepts_task_id
from .supervisor import TaskSupervisor, task_supervisor


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
        if options.name is None:
            options = options.replace(name=self.name)
        self._options = options
        self._routing = _routing(function, options)
        self._by_reference = False  # known to pickle by reference

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
        merged = self._options.replace(**options)
        routing = (
            self._routing
            if merged is self._options
            else _routing(self._function, merged)
        )
        return self._queue(
            check_args(args), check_kwargs(kwargs), merged, routing, task_id
        )

    def _queue(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: TaskOptions,
        routing: Routing,
        task_id: str | None = None,
    ) -> TaskInfo:
        tt, plain, pass_task_id = routing
        supervisor: TaskSupervisor = options.supervisor or task_supervisor
        return supervisor._submit(
            self._function,
            args,
            kwargs,
            options,
            tt,
            plain=plain,
            task_id=task_id,
            pass_task_id=pass_task_id,
            pickle_as=self._pickle_as() if tt == TT_MP else None,
        )

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


def default_name(target: Callable[..., Any]) -> str:
    """``module.qualname`` of ``target``."""
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None) or repr(target)
    return f"{module}.{qualname}" if module else qualname
