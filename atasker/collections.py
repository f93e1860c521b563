"""Collections of functions run together, e.g. at start-up or shutdown.

Functions run in priority order (a lower number first; ``TASK_*`` constants
or any number), first added first within a priority. A
:class:`FunctionCollection` calls them one after another in the calling
thread; a :class:`TaskCollection` starts each as a thread task and returns
when all have finished.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, overload

from .constants import PRIORITIES, TASK_NORMAL
from .supervisor import TaskSupervisor, task_supervisor
from .task import TaskInfo
from .validation import check_callable

logger = logging.getLogger("atasker")

Function = Callable[[], Any]


class FunctionCollection:
    """Functions to run together; use as ``@fc`` or ``@fc(priority=...)``.

    Args:
        on_error: called as ``on_error(exception, **on_error_kwargs)`` when a
            function raises (the exception is logged otherwise).
        on_error_kwargs: extra keyword arguments for ``on_error``.
        include_exceptions: put a failed function's exception in the results
            (otherwise it has no entry).
    """

    def __init__(
        self,
        on_error: Callable[..., Any] | None = None,
        on_error_kwargs: dict[str, Any] | None = None,
        include_exceptions: bool = False,
        **options: Any,
    ) -> None:
        check_callable(on_error, "on_error", allow_none=True)
        if options:
            raise TypeError(f"unexpected options: {', '.join(sorted(options))}")
        self.on_error = on_error
        self.on_error_kwargs = dict(on_error_kwargs or {})
        self.include_exceptions = include_exceptions
        self._functions: list[tuple[float, int, Function]] = []
        self._added = 0

    @overload
    def __call__(self, f: Function) -> Function: ...

    @overload
    def __call__(
        self, f: None = None, *, priority: float | None = None
    ) -> Callable[[Function], Function]: ...

    def __call__(
        self, f: Function | None = None, *, priority: float | None = None
    ) -> Function | Callable[[Function], Function]:
        """Add ``f`` (the decorator form); returns ``f`` unchanged."""
        if f is None:

            def add(function: Function) -> Function:
                self.append(function, priority=priority)
                return function

            return add
        self.append(f, priority=priority)
        return f

    def append(self, f: Function, priority: float | None = None) -> None:
        """Add ``f`` with ``priority`` (default TASK_NORMAL; lower runs first).

        Raises:
            TypeError: ``f`` is not callable or ``priority`` not a number.
        """
        check_callable(f, "f")
        if priority is None:
            priority = TASK_NORMAL
        if isinstance(priority, bool) or not isinstance(priority, (int, float)):
            raise TypeError(f"priority must be a number; got {priority!r}")
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
        """Run every function; return ``(results, all_ok)``."""
        results: dict[str, Any] = {}
        all_ok = True
        for _, function in self._ordered():
            try:
                results[_name(function)] = function()
            except Exception as exc:
                all_ok = False
                self._failed(function, exc, results)
        return results, all_ok

    def _failed(
        self, function: Function, exc: BaseException, results: dict[str, Any]
    ) -> None:
        if self.include_exceptions:
            results[_name(function)] = exc
        if self.on_error is not None:
            try:
                self.on_error(exc, **self.on_error_kwargs)
            except Exception:
                logger.exception("on_error of the collection failed")
        else:
            logger.error("%s failed", _name(function), exc_info=exc)


class TaskCollection(FunctionCollection):
    """A :class:`FunctionCollection` whose functions run as thread tasks.

    All are submitted at once, in priority order, each with its priority when
    that is one of the four task priorities (else TASK_NORMAL);
    ``run()``/``execute()`` return when every task has finished.

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
        started: list[tuple[Function, TaskInfo]] = []
        for priority, function in self._ordered():
            task_priority = int(priority) if priority in PRIORITIES else TASK_NORMAL
            task = supervisor.submit(
                function, (), {}, priority=task_priority, name=_name(function)
            )
            started.append((function, task))
        results: dict[str, Any] = {}
        all_ok = True
        for function, task in started:
            task.wait()
            if task.exception is None and not task.cancelled():
                results[_name(function)] = task.result
                continue
            all_ok = False
            error = task.exception or _cancelled(task)
            self._failed(function, error, results)
        return results, all_ok


def _cancelled(task: TaskInfo) -> BaseException:
    from .errors import TaskCancelledError

    return TaskCancelledError(f"task {task.id} ({task.name}) was canceled")


def _name(function: Function) -> str:
    module = getattr(function, "__module__", None)
    name = getattr(function, "__qualname__", None) or repr(function)
    return f"{module}.{name}" if module else name
