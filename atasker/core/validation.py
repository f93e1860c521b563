"""Checks of user input, each raising at the call site with the argument's name."""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Mapping
from typing import Any

from .constants import PRIORITIES, TASK_TYPES


def check_priority(priority: Any, argument: str = "priority") -> int:
    """Return ``priority`` if it is one of the four priorities.

    Raises:
        ValueError: anything else.
    """
    if isinstance(priority, bool) or priority not in PRIORITIES:
        raise ValueError(
            f"{argument} must be one of TASK_CRITICAL (0), TASK_HIGH (50), "
            f"TASK_NORMAL (100), TASK_LOW (200); got {priority!r}"
        )
    return int(priority)


def check_delay(delay: Any, argument: str = "delay") -> float | None:
    """Return ``delay`` as seconds (None or 0 means none).

    Raises:
        TypeError: not a number.
        ValueError: negative, infinite or NaN.
    """
    if delay is None:
        return None
    if isinstance(delay, bool) or not isinstance(delay, (int, float)):
        raise TypeError(
            f"{argument} must be a number of seconds or None; got {delay!r}"
        )
    if not math.isfinite(delay) or delay < 0:
        raise ValueError(
            f"{argument} must be a finite number of seconds >= 0; got {delay!r}"
        )
    return float(delay) or None


def check_task_type(tt: Any, argument: str = "tt") -> int:
    """Return ``tt`` if it is TT_COROUTINE, TT_THREAD or TT_MP.

    Raises:
        ValueError: anything else.
    """
    if isinstance(tt, bool) or tt not in TASK_TYPES:
        raise ValueError(
            f"{argument} must be TT_THREAD (1), TT_MP (2) or TT_COROUTINE (0); "
            f"got {tt!r}"
        )
    return int(tt)


def check_callable(value: Any, argument: str, allow_none: bool = False) -> Any:
    """Return ``value`` if it is callable (or None when allowed).

    Raises:
        TypeError: not callable.
    """
    if value is None and allow_none:
        return None
    if not callable(value):
        expected = "a callable or None" if allow_none else "a callable"
        raise TypeError(f"{argument} must be {expected}; got {value!r}")
    return value


def check_count(value: Any, argument: str) -> int:
    """Return ``value`` if it is an int >= 0.

    Raises:
        TypeError: not an int.
        ValueError: negative.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argument} must be an int >= 0; got {value!r}")
    if value < 0:
        raise ValueError(f"{argument} must be an int >= 0; got {value!r}")
    return value


def check_timeout(value: Any, argument: str) -> float | None:
    """Return ``value`` as seconds, or None (no limit).

    Raises:
        TypeError: not a number.
        ValueError: negative or NaN.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{argument} must be a number of seconds or None; got {value!r}"
        )
    if math.isnan(value) or value < 0:
        raise ValueError(f"{argument} must be >= 0 seconds; got {value!r}")
    return float(value)


def check_limit(value: Any, argument: str) -> float | None:
    """Return ``value`` as seconds > 0, or None (no limit).

    Raises:
        TypeError: not a number.
        ValueError: not a finite number > 0.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{argument} must be a number of seconds; got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"{argument} must be a finite number of seconds > 0; got {value!r}"
        )
    return float(value)


def check_bool(value: Any, argument: str) -> bool:
    """Return ``value`` if it is True or False.

    Raises:
        TypeError: anything else.
    """
    if not isinstance(value, bool):
        raise TypeError(f"{argument} must be True or False; got {value!r}")
    return value


def check_epoch(value: Any, argument: str) -> float:
    """A point in time as ``time.time()`` seconds: ``value`` is a
    ``datetime`` (aware, or naive in local time) or epoch seconds.

    Raises:
        TypeError: neither.
        ValueError: not finite.
    """
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{argument} must be a datetime or epoch seconds; got {value!r}"
        )
    if not math.isfinite(value):
        raise ValueError(f"{argument} must be finite; got {value!r}")
    return float(value)


def check_exception_types(value: Any, argument: str) -> tuple[type[BaseException], ...]:
    """An exception class, or a tuple (list) of them, as a tuple.

    Raises:
        TypeError: anything that is not an exception class.
    """
    classes = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise TypeError(
                f"{argument} must be an exception class or a tuple of them; "
                f"got {value!r}"
            )
    return classes


def check_wait(wait: Any, argument: str = "wait") -> float | None:
    """A ``time.monotonic()`` deadline for ``stop(wait=...)``: True (or None)
    waits without limit, False not at all, a number that many seconds.

    Raises:
        TypeError, ValueError: not a bool, None or seconds >= 0.
    """
    if wait is True or wait is None:
        return None
    if wait is False:
        return time.monotonic()
    seconds = check_timeout(wait, argument)
    assert seconds is not None
    return time.monotonic() + seconds


def check_args(args: Any) -> tuple[Any, ...]:
    """The positional arguments of a task as a tuple.

    Raises:
        TypeError: not a tuple or a list.
    """
    if isinstance(args, tuple):
        return args
    if isinstance(args, list):
        return tuple(args)
    raise TypeError(
        f"args must be a tuple (or list) of positional arguments; got {args!r}"
    )


def check_kwargs(kwargs: Any) -> dict[str, Any]:
    """The keyword arguments of a task as a new dict (None: none).

    Raises:
        TypeError: not a mapping with string keys.
    """
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise TypeError(
            f"kwargs must be a dict of keyword arguments (str keys); got {kwargs!r}"
        )
    return dict(kwargs)
