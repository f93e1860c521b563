"""Collections of functions run together, e.g. at start-up or shutdown.

Functions run in priority order (a lower number first; ``TASK_*`` constants
or any number), first added first within a priority. A
:class:`FunctionCollection` calls them one after another in the calling
thread; a :class:`TaskCollection` starts each as a thread task and returns
when all have finished. A function that raises gets ``None`` (or, with
``include_exceptions``, ``(exception, traceback_text)``) as its result, and
:meth:`FunctionCollection.error` is called inside the ``except`` block, in
the thread that ran it, as atasker 0.7 did.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any, Callable, overload

from ..core.constants import PRIORITIES, TASK_NORMAL
from ..core.errors import TaskCancelledError
from ..core.task import TaskInfo
from ..core.validation import check_callable
from ..supervisor import TaskSupervisor, task_supervisor

logger = logging.getLogger("atasker")

Function = Callable[[], Any]


class _Unset:
    """``fc()`` runs the collection; ``fc(priority=None)`` is a decorator."""


_UNSET = _Unset()


class FunctionCollection:
    """Functions to run together; use as ``@fc`` or ``@fc(priority=...)``;
    ``fc()`` runs them.

    Args:
        on_error: called as ``on_error(**on_error_kwargs)`` inside the
            ``except`` block when a function raises (``sys.exc_info()`` tells
            what), as atasker 0.7's ``def error(**kwargs)``; without it the
            exception is logged. See :meth:`error`.
        on_error_kwargs: keyword arguments for ``on_error``.
        include_exceptions: a failed function's result is
            ``(exception, traceback_text)`` instead of None.
        **options: accepted and kept in :attr:`options` (0.7 accepted any).
    """

    def __init__(
        self,
        on_error: Callable[..., Any] | None = None,
        on_error_kwargs: dict[str, Any] | None = None,
        include_exceptions: bool = False,
        **options: Any,
    ) -> None:
        check_callable(on_error, "on_error", allow_none=True)
        self.on_error = on_error
        self.on_error_kwargs = dict(on_error_kwargs or {})
        self.include_exceptions = bool(include_exceptions)
        self.options: dict[str, Any] = dict(options)
        self._functions: list[tuple[float, int, Function]] = []
        self._added = 0

    @overload
    def __call__(self, f: Function) -> Function: ...

    @overload
    def __call__(self, *, priority: float | None) -> Callable[[Function], Function]: ...

    @overload
    def __call__(self) -> dict[str, Any]: ...

    def __call__(
        self,
        f: Function | None = None,
        *,
        priority: float | _Unset | None = _UNSET,
    ) -> Function | Callable[[Function], Function] | dict[str, Any]:
        """``fc(f)`` adds ``f`` and returns it; ``fc(priority=p)`` returns a
        decorator that adds with ``p``; ``fc()`` runs the collection and
        returns :meth:`run`'s results."""
        if f is not None:
            self.append(f)
            return f
        if isinstance(priority, _Unset):
            return self.run()
        given: float | None = priority

        def add(function: Function) -> Function:
            self.append(function, priority=given)
            return function

        return add

    def append(self, f: Function, priority: float | None = None) -> None:
        """Add ``f`` with ``priority`` (default TASK_NORMAL; lower runs first);
        a function already in the collection is not added again.

        Raises:
            TypeError: ``f`` is not callable or ``priority`` not a number.
        """
        check_callable(f, "f")
        if priority is None:
            priority = TASK_NORMAL
        if isinstance(priority, bool) or not isinstance(priority, (int, float)):
            raise TypeError(f"priority must be a number; got {priority!r}")
        if any(entry[2] == f for entry in self._functions):
            return
        self._functions.append((priority, self._added, f))
        self._added += 1

    def remove(self, f: Function) -> None:
        """Remove ``f``.

        Raises:
            ValueError: ``f`` is not in the collection.
        """
        for entry in self._functions:
            if entry[2] == f:
                self._functions.remove(entry)
                return
        raise ValueError(f"{f!r} is not in the collection")

    def _ordered(self) -> list[tuple[float, Function]]:
        return [(p, f) for p, _, f in sorted(self._functions, key=lambda e: e[:2])]

    def run(self) -> dict[str, Any]:
        """Run every function; return ``{'module.name': result}``."""
        return self.execute()[0]

    def execute(self) -> tuple[dict[str, Any], bool]:
        """Run every function; return ``(results, all_ok)``, ``all_ok`` being
        False if any raised."""
        results: dict[str, Any] = {}
        all_ok = True
        for _, function in self._ordered():
            ok, results[_name(function)] = self._call(function)
            all_ok = all_ok and ok
        return results, all_ok

    def _call(self, function: Function) -> tuple[bool, Any]:
        """Run ``function``: ``(True, result)``, or ``(False, its entry)``."""
        try:
            return True, function()
        except Exception:
            return False, self._failed(_name(function))

    def _failed(self, name: str) -> Any:
        """Inside the ``except`` block of a failed function: call
        :meth:`error`; return the function's entry in the results."""
        exc = sys.exc_info()[1]
        entry = (exc, traceback.format_exc()) if self.include_exceptions else None
        try:
            self.error()
        except Exception:
            logger.exception("%s failed", name)
        return entry

    def error(self) -> None:
        """Called inside the ``except`` block when a function raises.

        The default calls ``on_error(**on_error_kwargs)`` if set, else
        re-raises, and the exception is logged (the other functions still
        run). Override it to handle errors; ``sys.exc_info()`` holds the
        exception.
        """
        if self.on_error is None:
            raise
        self.on_error(**self.on_error_kwargs)


class TaskCollection(FunctionCollection):
    """A :class:`FunctionCollection` whose functions run as thread tasks.

    All are submitted at once, in priority order, each with its priority when
    that is one of the four task priorities (else TASK_NORMAL);
    ``run()``/``execute()`` return when every task has finished. ``on_error``
    runs in the task's thread, inside its ``except`` block.

    Args:
        supervisor: the supervisor; the default one if None.
        poll_delay: accepted for compatibility; nothing polls.
    """

    def __init__(
        self,
        supervisor: TaskSupervisor | None = None,
        poll_delay: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.supervisor = supervisor
        self.poll_delay = poll_delay

    def execute(self) -> tuple[dict[str, Any], bool]:
        """Run every function as a task; return ``(results, all_ok)``."""
        supervisor = self.supervisor or task_supervisor
        started: list[tuple[str, TaskInfo]] = []
        for priority, function in self._ordered():
            task_priority = int(priority) if priority in PRIORITIES else TASK_NORMAL
            name = _name(function)
            task = supervisor.submit(
                self._call, (function,), {}, priority=task_priority, name=name
            )
            started.append((name, task))
        results: dict[str, Any] = {}
        all_ok = True
        for name, task in started:
            task.wait()
            if task.exception is None and not task.cancelled():
                ok, results[name] = task.result
            else:
                ok, results[name] = False, self._lost(name, task)
            all_ok = all_ok and ok
        return results, all_ok

    def _lost(self, name: str, task: TaskInfo) -> Any:
        """A task that did not report back (canceled, or a BaseException)."""
        error = task.exception or TaskCancelledError(
            f"task {task.id} ({name}) was canceled"
        )
        try:
            raise error
        except BaseException:
            return self._failed(name)


def _name(function: Function) -> str:
    """``module.name``, as atasker 0.7 keyed the results."""
    module = getattr(function, "__module__", None)
    name = getattr(function, "__name__", None) or repr(function)
    return f"{module}.{name}" if module else name
