"""JSON values: what a signature's arguments and options may hold to travel
as text (``Signature.to_json``), checked with the path of the first value
that may not, so the error names it (``kwargs['when']: datetime is not
JSON``)."""

from __future__ import annotations

import math
from typing import Any


def check_json(value: Any, path: str) -> Any:
    """``value`` as JSON holds it (a tuple becomes a list).

    Raises:
        TypeError: a value JSON cannot hold, named by its ``path``.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{path}: {value!r} is not JSON (not a finite number)")
        return value
    if isinstance(value, (list, tuple)):
        return [
            check_json(item, f"{path}[{index}]") for index, item in enumerate(value)
        ]
    if isinstance(value, dict):
        checked = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path}: the key {key!r} is not JSON (keys are str)")
            checked[key] = check_json(item, f"{path}[{key!r}]")
        return checked
    raise TypeError(f"{path}: {type(value).__name__} is not JSON")


def expect(value: Any, kind: type | tuple[type, ...], path: str) -> Any:
    """A field of a parsed signature, of the type it must have.

    Raises:
        ValueError: it has another (the text is not a signature).
    """
    if not isinstance(value, kind):
        names = (
            kind.__name__
            if isinstance(kind, type)
            else "/".join(k.__name__ for k in kind)
        )
        raise ValueError(f"not a signature: {path} must be a {names}; got {value!r}")
    return value
