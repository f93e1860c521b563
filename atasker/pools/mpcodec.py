"""The process pool's wire format, and pickling that never kills a thread.

A worker owns one end of a duplex connection; the pool holds the other.
Messages are pickled bytes, one in each direction per task::

    pool   -> worker  the worker's setup (subprocess workers only, first):
                      pickle({"sys_path", "main_path", "main_name",
                              "initializer", "initargs"})
    worker -> pool    READY | pickle((INIT_FAILED, traceback text))   once
    pool   -> worker  payload = pickle((target, args, kwargs))
    worker -> pool    pickle((True, result)) | pickle((False, exception, text))
    pool closes its end                      -> the worker exits

Pickling runs user code both ways (``__reduce__``, ``__setstate__``, imports
of the user's modules). Every function here turns whatever that code raises,
``SystemExit`` and ``KeyboardInterrupt`` included, into an ordinary error
for the one task concerned: no thread of ours ever sees it.
"""

from __future__ import annotations

import io
import pickle
import re
from collections.abc import Callable
from typing import Any

READY = b"ready"
INIT_FAILED = "init-failed"


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process, as text.

    Set as ``__cause__`` of the exception re-raised in the parent, so the
    printed traceback shows where the task failed.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


def safe_repr(value: object) -> str:
    """``repr(value)``, or a placeholder if that raises (user code)."""
    try:
        return repr(value)
    except BaseException:  # a user __repr__ may raise anything
        return f"<{type(value).__qualname__} object (repr failed)>"


def pickle_payload(
    target: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> bytes:
    """Pickle a process task, or raise a TypeError that says what cannot be.

    Raises:
        TypeError: the target is not importable by reference, or an argument
            cannot be pickled (whatever its ``__reduce__`` raised, even
            ``SystemExit``, is the ``__cause__``).
    """
    try:
        return pickle.dumps((target, args, kwargs), pickle.HIGHEST_PROTOCOL)
    except BaseException as exc:  # __reduce__ is user code
        try:
            pickle.dumps(target, pickle.HIGHEST_PROTOCOL)
        except BaseException:  # the same user code again
            raise TypeError(
                f"target {safe_repr(target)} cannot be pickled for a process "
                f"task: it must be a function defined at the top level of an "
                f"importable module (not a lambda, a nested function or a bound "
                f"method of an unpicklable object); {_describe(exc)}"
            ) from exc
        raise TypeError(
            f"the arguments of process task {safe_repr(target)} cannot be "
            f"pickled: {_describe(exc)}"
        ) from exc


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except BaseException:  # user __str__
        text = ""
    return f"{type(exc).__qualname__}: {text}" if text else type(exc).__qualname__


def encode_outcome(ok: bool, value: Any, traceback_text: str | None = None) -> bytes:
    """Pickle a task's outcome (worker side); never raises.

    A result or exception that cannot be pickled becomes a TypeError that
    says so, sent in its place.
    """
    try:
        return pickle.dumps((ok, value, traceback_text), pickle.HIGHEST_PROTOCOL)
    except BaseException as exc:  # __reduce__ is user code
        what = "result" if ok else f"exception {safe_repr(value)}"
        error = TypeError(
            f"the task's {what} cannot be pickled to return it from the worker "
            f"process: {_describe(exc)}"
        )
        return pickle.dumps(
            (False, error, traceback_text or _describe(exc) + "\n"),
            pickle.HIGHEST_PROTOCOL,
        )


# Globals the pool's manager thread may resolve while unpickling an outcome:
# builtin and standard containers and atasker's own errors. Constructing them
# runs no user code. Anything else (a user's class, whose module may have to
# be imported and whose __setstate__ may do anything) is decoded on a thread
# that may run user code.
_SAFE_MODULES = {
    "builtins",
    "collections",
    "datetime",
    "decimal",
    "fractions",
    "atasker.core.errors",
    "atasker.pools.mpcodec",
}
_UNSAFE_BUILTINS = {"eval", "exec", "compile", "open", "getattr", "__import__"}


class NeedsUserCode(Exception):
    """The outcome refers to a global that only user code can provide."""


class _ManagerUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module in _SAFE_MODULES and name not in _UNSAFE_BUILTINS:
            value = super().find_class(module, name)
            if isinstance(value, type):
                return value
        raise NeedsUserCode(f"{module}.{name}")


class _UserUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        # A worker defines the user's script as __mp_main__ (see mpworker);
        # here it is __main__.
        if module == "__mp_main__":
            module = "__main__"
        return super().find_class(module, name)


Outcome = tuple[bool, Any, "str | None"]

# Opcodes by which a pickle names a global (a class or function to import):
# the worker pickles with the highest protocol, which names them only with
# STACK_GLOBAL or the copyreg extension codes (GLOBAL, INST and OBJ are
# protocol 0-1). A pickle without these bytes refers to no global at all;
# one with them (maybe inside a string) goes through find_class.
_GLOBAL_OPCODES = re.compile(rb"[\x82-\x84\x93]")


def _names_globals(data: bytes) -> bool:
    return _GLOBAL_OPCODES.search(data) is not None


def decode_outcome(data: bytes, user_code: bool) -> Outcome:
    """Unpickle a worker's answer into ``(ok, value, traceback_text)``.

    Never raises: an answer that cannot be unpickled, or an "exception" that
    is not one, becomes a failed outcome with a TypeError that says so.

    Args:
        data: the bytes the worker sent.
        user_code: False on the manager thread: raise :class:`NeedsUserCode`
            (the only exception let out) if decoding needs more than builtin
            types; True on a thread that may run user code.
    """
    try:
        if not user_code and not _names_globals(data):
            ok, value, text = pickle.loads(data)  # nothing to resolve: faster
        else:
            unpickler = _UserUnpickler if user_code else _ManagerUnpickler
            ok, value, text = unpickler(io.BytesIO(data)).load()
    except NeedsUserCode:  # only _ManagerUnpickler raises it: decode elsewhere
        raise
    except BaseException as exc:  # __setstate__ and imports are user code
        error = TypeError(
            f"the task's outcome cannot be unpickled in the parent: {_describe(exc)}"
        )
        error.__cause__ = exc
        return False, error, None
    if not ok and not isinstance(value, BaseException):
        error = TypeError(
            "the task failed with an object that is not an exception: "
            f"{safe_repr(value)}"
        )
        return False, error, text if isinstance(text, str) else None
    return bool(ok), value, text if isinstance(text, str) else None


def accepts_task_id(target: Callable[..., Any]) -> bool:
    """True if ``target`` takes a ``_task_id`` keyword (by name or ``**kwargs``)."""
    import inspect

    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.kind is p.VAR_KEYWORD
        or (
            p.name == "_task_id" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        )
        for p in parameters
    )
