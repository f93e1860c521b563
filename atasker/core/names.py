"""Task names: one process-wide registry, name -> task function.

Every task function registers its name when it is made (``@background_task``);
``send_task`` and ``Signature.from_json`` find functions here and nowhere
else, so a name from a message never imports or calls an arbitrary path.

A name means one function, told apart by its ``module.qualname``: the same
function registered again (decorated again with other options, a module
reloaded, a local function defined anew by each call of its parent) replaces
the entry; another function under a taken name is an error.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from .errors import UnknownTaskError

_lock = threading.Lock()
_tasks: dict[str, Any] = {}


def default_name(target: Callable[..., Any]) -> str:
    """``module.qualname`` of ``target``: a task's default name, and what
    tells one function from another here."""
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None) or repr(target)
    return f"{module}.{qualname}" if module else qualname


def register(name: str, task_function: Any) -> None:
    """Register ``task_function`` (a TaskFunction) under ``name``.

    Raises:
        ValueError: another function is registered under ``name``.
    """
    path = default_name(task_function.run)
    with _lock:
        known = _tasks.get(name)
        if known is not None and known is not task_function:
            known_path = default_name(known.run)
            if known_path != path:
                raise ValueError(
                    f"task name {name!r} is taken by {known_path}: it cannot "
                    f"also name {path} (give one of them another name=)"
                )
        _tasks[name] = task_function


def lookup(name: Any) -> Any:
    """The task function registered under ``name``.

    Raises:
        UnknownTaskError: none is (also for a ``name`` that is not a str).
    """
    with _lock:
        found = _tasks.get(name) if isinstance(name, str) else None
    if found is None:
        raise UnknownTaskError(
            f"no task function is registered under the name {name!r} (a task "
            "function registers its name when it is made: import the module "
            "that defines it)"
        )
    return found


def registered() -> dict[str, Any]:
    """A copy of the registry: name -> task function."""
    with _lock:
        return dict(_tasks)
