"""Task: the base class of class tasks (pytask's model), and what
registration checks of a class.

A class task is a named class whose instances take JSON data, start, may be
stopped, and emit events::

    class Poller(Task):
        NAME = "myapp/poller"
        PRIORITY = TASK_HIGH                    # any task option, upper case
        def __init__(self, url, interval=5): ...
        def start(self): ...                    # required: the task's result
        def stop(self): ...                     # optional

Its options are the class's upper-case attributes, checked once, at
registration, into the task's TaskOptions. How an instance runs is run.py's;
how the supervisor starts, stops and reloads it, control.py's.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import threading
from typing import Any, Callable, ClassVar, Union

from ..core.constants import TT_COROUTINE
from ..core.errors import TaskError
from ..core.options import DEFAULTS, TaskOptions

# Options a class may not set: its NAME is its name, it is never bound
# (self is its context), its supervisor is the one it is registered on, and
# it runs where its stop and reload requests reach it (not an executor's).
NOT_CLASS_OPTIONS = frozenset(("name", "bind", "supervisor", "pool"))
CLASS_OPTIONS = {
    option.upper(): option for option in DEFAULTS if option not in NOT_CLASS_OPTIONS
}

Stopping = Union[threading.Event, asyncio.Event]


class Task:
    """The base class of class tasks; see docs/class-tasks.md.

    Set before ``__init__`` runs: ``id`` (the record's), ``name`` (NAME) and
    ``stopping`` (a ``threading.Event``, or an ``asyncio.Event`` for an
    ``async def start``), set once a stop is asked.

    Attributes:
        NAME: the name it is registered and started by (required).
        Error: raise it for an expected failure: the task ends with status
            ERROR (anything else raised: EXCEPTION).
    """

    NAME: ClassVar[str | None] = None
    Error: ClassVar[type[TaskError]] = TaskError

    id: str
    name: str
    stopping: Stopping
    _emit_to: Callable[[str, Any], None]

    def __init__(self, **data: Any) -> None:
        """The task's data (JSON values), kept as ``self.data``."""
        self.data = data

    def start(self) -> Any:
        """Run the task; what it returns is the task's result. Required."""
        raise NotImplementedError

    def stop(self) -> Any:
        """Asked once when a stop (or reload) is requested, while ``start``
        runs, from the thread that asked (a process task: a thread of its
        worker; an async task: on its loop). ``stopping`` is set first."""

    def emit(self, event: str, data: Any = None) -> None:
        """Publish ``event`` with ``data`` (JSON values) on the supervisor's
        event bus, as this task's.

        Raises:
            TypeError: ``event`` is not a str, or ``data`` is not JSON (the
                message names the value).
            ValueError: ``event`` is empty or a lifecycle event's name.
        """
        self._emit_to(event, data)

    @classmethod
    def _check(cls, data: dict[str, Any]) -> None:
        """``start_task``: refuse data ``__init__`` cannot take, at the call.

        Raises:
            TypeError: an unknown or missing argument.
        """
        if cls.__init__ is Task.__init__:
            return
        try:
            inspect.signature(cls.__init__).bind(None, **data)
        except TypeError as exc:
            raise TypeError(f"data for {cls.__qualname__}: {exc}") from None

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} {getattr(self, 'id', None)!r}>"


def class_options(task_class: Any) -> TaskOptions:
    """Check a class for registration; its options.

    Raises:
        TypeError: not a Task subclass; no ``start``; a bad option value
            (the message names the attribute: ``Poller.PRIORITY: ...``).
        ValueError: no NAME; an async ``start`` with ``TT = TT_MP``.
    """
    if not isinstance(task_class, type) or not issubclass(task_class, Task):
        raise TypeError(
            f"task_class must be a subclass of atasker.Task; got {task_class!r}"
        )
    where = task_class.__name__
    name = task_class.NAME
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"{where}.NAME must be a non-empty str (the name it is started by); "
            f"got {name!r}"
        )
    if task_class.start is Task.start:
        raise TypeError(f"{where} must define start(): the task itself")
    values: dict[str, Any] = {"name": name}
    for attribute, option in CLASS_OPTIONS.items():
        if hasattr(task_class, attribute):
            values[option] = getattr(task_class, attribute)
    try:
        options = TaskOptions(**values)
    except (TypeError, ValueError) as exc:
        attribute = _attribute_of(str(exc), values)
        raise type(exc)(f"{where}{attribute}: {exc}") from None
    return task_type_of(task_class, options, hasattr(task_class, "TT"), f"{where}.TT")


def task_type_of(
    task_class: type[Task], options: TaskOptions, explicit: bool, where: str
) -> TaskOptions:
    """``options`` with the task type its ``start`` runs as: an async start
    runs on a loop (TT_COROUTINE), a plain one in a thread or a worker.

    Raises:
        ValueError: ``tt`` (given if ``explicit``) says otherwise (``where``
            names it).
    """
    is_async = inspect.iscoroutinefunction(task_class.start)
    if is_async and options.tt != TT_COROUTINE:
        if explicit:
            raise ValueError(
                f"{where}: an async start() runs on an asyncio loop "
                "(TT_COROUTINE), not in a thread or a worker process"
            )
        return options.replace(tt=TT_COROUTINE)
    if not is_async and options.tt == TT_COROUTINE:
        raise ValueError(f"{where}: TT_COROUTINE needs an async start()")
    return options


def _attribute_of(message: str, given: Any) -> str:
    """``".PRIORITY"`` for a TaskOptions error about ``priority``;
    ``".ETA/DELAY"`` for one about options given together."""
    option = message.split(" ", 1)[0].rstrip(":")
    if option in DEFAULTS:
        return f".{option.upper()}"
    words = set(re.findall(r"[a-z_]+", message))
    named = [o.upper() for o in given if o in words and o != "name"]
    return f".{'/'.join(named)}" if named else ""
