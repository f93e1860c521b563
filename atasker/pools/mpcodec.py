"""The process pool's wire format, and pickling that never kills a thread.

A worker owns one end of a duplex connection; the pool holds the other.
Messages are pickled bytes; per task, one payload goes to the worker and one
outcome comes back, with a few optional messages (tagged by their first
byte: a pickle starts with b"\x80")::

    pool   -> worker  the worker's setup (subprocess workers only, first):
                      pickle({"sys_path", "main_path", "main_name",
                              "initializer", "initargs"})
    worker -> pool    READY | pickle((INIT_FAILED, traceback text))   once
    pool   -> worker  [RETRIES + b"<n> <eta>": this attempt follows n retries,
                       and was due at eta]
                      payload = pickle((target, args, kwargs, info))
    worker -> pool    [STATE + pickle((state, meta)): update_state(), any number]
                      [EVENT + json([event, data]): emit(), any number]
    pool   -> worker  [CONTROL + json({"reload": data}?): stop (or reload) the
                       running class task; read by the task's control thread,
                       skipped if it arrives after the task ended]
                      pickle((True, result, None, True))
                      | pickle((False, exception, text, retryable))
    pool closes its end                      -> the worker exits

``info`` (:func:`wire_info`) is what the task's context needs in the worker:
its id, name, priority, eta, expiry, the retries its context allows, its
soft time limit, and whether it is bound.

Pickling runs user code both ways (``__reduce__``, ``__setstate__``, imports
of the user's modules). Every function here turns whatever that code raises,
``SystemExit`` and ``KeyboardInterrupt`` included, into an ordinary error
for the one task concerned: no thread of ours ever sees it.
"""

from __future__ import annotations

import io
import json
import pickle
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..core.errors import safe_repr
from .mpchannel import Message

READY = b"ready"
INIT_FAILED = "init-failed"
RETRIES = b"R"
STATE = b"S"
EVENT = b"E"
CONTROL = b"C"

# A payload's info: (id, name, priority, eta, expires, max_retries,
# soft_time_limit, bind).
WireInfo = tuple[
    str, "str | None", int, "float | None", "float | None", int, "float | None", bool
]


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


def wire_info(task: Any) -> WireInfo:
    """The ``info`` of a process task's payload (``task``: its TaskInfo)."""
    options = task.options
    return (
        task.id,
        task.name,
        task.priority,
        task.eta,
        task.expires,
        options.retries,
        options.soft_time_limit,
        options.bind,
    )


def pickle_payload(
    target: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    info: WireInfo | None,
) -> bytes:
    """Pickle a process task, or raise a TypeError that says what cannot be.

    Raises:
        TypeError: the target is not importable by reference, or an argument
            cannot be pickled (whatever its ``__reduce__`` raised, even
            ``SystemExit``, is the ``__cause__``).
    """
    try:
        return pickle.dumps((target, args, kwargs, info), pickle.HIGHEST_PROTOCOL)
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


def encode_outcome(
    ok: bool, value: Any, traceback_text: str | None = None, retryable: bool = True
) -> bytes:
    """Pickle a task's outcome (worker side); never raises.

    A result or exception that cannot be pickled becomes a TypeError that
    says so, sent in its place. ``retryable`` False: the attempt asked for
    no automatic retry.
    """
    if ok and value is None and traceback_text is None and retryable:
        return _RETURNED_NONE
    try:
        return pickle.dumps(
            (ok, value, traceback_text, retryable), pickle.HIGHEST_PROTOCOL
        )
    except BaseException as exc:  # __reduce__ is user code
        what = "result" if ok else f"exception {safe_repr(value)}"
        error = TypeError(
            f"the task's {what} cannot be pickled to return it from the worker "
            f"process: {_describe(exc)}"
        )
        return pickle.dumps(
            (False, error, traceback_text or _describe(exc) + "\n", retryable),
            pickle.HIGHEST_PROTOCOL,
        )


# The outcome of a task that returned None (what most procedures do),
# pickled once.
_NONE_OUTCOME: Outcome = (True, None, None, True)
_RETURNED_NONE = pickle.dumps(_NONE_OUTCOME, pickle.HIGHEST_PROTOCOL)


def encode_retries(retries: int, eta: float | None) -> bytes:
    """The header of a retried task's payload (pool side)."""
    return RETRIES + f"{retries} {eta!r}".encode()


def decode_retries(data: Message) -> tuple[int, float | None]:
    """``(retries, eta)`` from :func:`encode_retries`'s header (worker side)."""
    count, eta = data[1:].split(b" ")
    return int(count), None if eta == b"None" else float(eta)


def encode_state(state: str | None, meta: Any) -> bytes:
    """An ``update_state`` message (worker side).

    Raises:
        TypeError: ``meta`` cannot be pickled (in the task that gave it).
    """
    try:
        return STATE + pickle.dumps((state, meta), pickle.HIGHEST_PROTOCOL)
    except BaseException as exc:  # __reduce__ is user code
        raise TypeError(
            f"update_state: meta cannot be pickled to send it to the parent: "
            f"{_describe(exc)}"
        ) from exc


def encode_json(tag: bytes, value: Any) -> bytes:
    """An EVENT or CONTROL message (its values were checked to be JSON)."""
    return tag + json.dumps(value, separators=(",", ":")).encode()


def decode_json(data: Message) -> Any:
    """The value of an EVENT or CONTROL message (raises ValueError if it
    is not one)."""
    return json.loads(bytes(memoryview(data)[1:]))


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


Outcome = tuple[bool, Any, "str | None", bool]

# Opcodes by which a pickle names a global (a class or function to import):
# the worker pickles with the highest protocol, which names them only with
# STACK_GLOBAL or the copyreg extension codes (GLOBAL, INST and OBJ are
# protocol 0-1). A pickle without these bytes refers to no global at all;
# one with them (maybe inside a string) goes through find_class.
_GLOBAL_OPCODES = re.compile(rb"[\x82-\x84\x93]")


def _names_globals(data: Message | memoryview) -> bool:
    return _GLOBAL_OPCODES.search(data) is not None


def _unpickle(data: Message | memoryview, user_code: bool) -> Any:
    if not user_code and not _names_globals(data):
        return pickle.loads(data)  # nothing to resolve: faster
    unpickler = _UserUnpickler if user_code else _ManagerUnpickler
    return unpickler(io.BytesIO(data)).load()


def decode_outcome(data: Message, user_code: bool) -> Outcome:
    """Unpickle a worker's answer into ``(ok, value, traceback_text, retryable)``.

    Never raises: an answer that cannot be unpickled, or an "exception" that
    is not one, becomes a failed outcome with a TypeError that says so.

    Args:
        data: the bytes the worker sent.
        user_code: False on the manager thread: raise :class:`NeedsUserCode`
            (the only exception let out) if decoding needs more than builtin
            types; True on a thread that may run user code.
    """
    if data == _RETURNED_NONE:
        return _NONE_OUTCOME
    try:
        ok, value, text, retryable = _unpickle(data, user_code)
    except NeedsUserCode:  # only _ManagerUnpickler raises it: decode elsewhere
        raise
    except BaseException as exc:  # __setstate__ and imports are user code
        error = TypeError(
            f"the task's outcome cannot be unpickled in the parent: {_describe(exc)}"
        )
        error.__cause__ = exc
        return False, error, None, True
    if not ok and not isinstance(value, BaseException):
        error = TypeError(
            "the task failed with an object that is not an exception: "
            f"{safe_repr(value)}"
        )
        return False, error, text if isinstance(text, str) else None, True
    return (
        bool(ok),
        value,
        text if isinstance(text, str) else None,
        retryable is not False,
    )


def decode_state(data: Message, user_code: bool) -> tuple[str | None, Any]:
    """Unpickle an ``update_state`` message into ``(state, meta)``.

    Raises:
        NeedsUserCode: see :func:`decode_outcome`.
        TypeError: not a state message.
        BaseException: whatever unpickling raised (user code; the caller
            logs it).
    """
    state, meta = _unpickle(memoryview(data)[1:], user_code)
    if state is not None and not isinstance(state, str):
        raise TypeError(f"a state must be a str; got {safe_repr(state)}")
    return state, meta


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
