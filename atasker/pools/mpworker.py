"""The worker process side of the process pool (wire format: mpcodec).

A worker started by the default launcher is a fresh interpreter that runs
:func:`bootstrap`: it imports only this module (and what atasker's package
imports), reads its setup from the parent, runs the initializer, says READY,
then runs one task at a time. A worker started by a multiprocessing context
(``mp_context="fork"``, ``"spawn"``, ``"forkserver"``) runs
:func:`worker_main` with the same loop.

The user's main script is imported in a worker only when a payload refers to
something defined there (``find_class("__main__", ...)``), as
``__mp_main__``, the name multiprocessing's spawn gives it: its
``if __name__ == "__main__":`` block does not run. A script without that
guard that starts a process pool at import would recurse; it gets an error
that says what to do instead.

A worker exits as soon as its parent dies, even in the middle of a task: the
parent holds the write end of a "lifeline" pipe and never writes; EOF on the
read end means the parent is gone.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import pickle
import runpy
import socket
import sys
import threading
import types
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

from ..core.errors import format_exception
from .mpcodec import INIT_FAILED, READY, RemoteTraceback, encode_outcome

__all__ = ["RemoteTraceback", "bootstrap", "importing_main", "worker_main"]

# Exit code of a worker whose parent died.
ORPHAN_EXIT_CODE = 70

# Where the user's main module comes from, set from the parent's setup.
_main_path: str | None = None
_main_name: str | None = None
_main_loaded = False
_importing_main = False

UNGUARDED_MAIN_HINT = (
    'guard the script\'s start-up code with `if __name__ == "__main__":` '
    "(worker processes import the script to find the task's function), or "
    "move the function to a module of its own"
)


def importing_main() -> bool:
    """True while this worker process imports the user's main script.

    A supervisor that starts a process pool then would start workers from
    workers: the script has no ``if __name__ == "__main__":`` guard.
    """
    return _importing_main


def _load_main() -> None:
    """Import the user's main module as ``__mp_main__`` (once)."""
    global _main_loaded, _importing_main
    if _main_loaded:
        return
    if _main_path is None and _main_name is None:
        raise RuntimeError(
            "the task refers to a function or class defined in __main__, and "
            "the parent's __main__ is an interactive session or `python -c`: "
            "a worker process cannot import it. Define the function in a "
            "module (a .py file) and import it."
        )
    module = types.ModuleType("__mp_main__")
    sys.modules["__mp_main__"] = module
    _importing_main = True
    try:
        if _main_name is not None:
            namespace = runpy.run_module(
                _main_name, run_name="__mp_main__", alter_sys=False
            )
        else:
            assert _main_path is not None
            namespace = runpy.run_path(_main_path, run_name="__mp_main__")
    except BaseException as exc:  # the script is user code
        del sys.modules["__mp_main__"]
        where = _main_name or _main_path
        raise RuntimeError(
            f"the task refers to something defined in the main script "
            f"{where!r}, and importing that script in a worker process failed "
            f"({type(exc).__qualname__}): {UNGUARDED_MAIN_HINT}"
        ) from exc
    finally:
        _importing_main = False
    module.__dict__.update(namespace)
    sys.modules["__mp_main__"] = module
    _main_loaded = True


class _PayloadUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module in ("__main__", "__mp_main__"):
            _load_main()
            module = "__mp_main__"
        return super().find_class(module, name)
        return super().find_class(module, name)


def _run_tasks(conn: Connection) -> None:
    """Answer payloads one at a time until the parent closes its end."""
    while True:
        try:
            payload = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the pool closed its end: stop
        try:
            if b"__main__" in payload or b"__mp_main__" in payload:
                # It may name something of the user's main script.
                target, args, kwargs = _PayloadUnpickler(io.BytesIO(payload)).load()
            else:
                target, args, kwargs = pickle.loads(payload)
            del payload
            message = encode_outcome(True, target(*args, **kwargs))
        except BaseException as exc:  # the task's outcome, whatever it is
            message = encode_outcome(False, exc, format_exception(exc))
        try:
            conn.send_bytes(message)
        except (EOFError, OSError):
            return


def _initialize(
    conn: Connection,
    initializer: Callable[..., Any] | None,
    initargs: tuple[Any, ...],
) -> bool:
    try:
        if initializer is not None:
            try:
                initializer(*initargs)
            except BaseException as exc:  # the initializer is user code
                conn.send_bytes(pickle.dumps((INIT_FAILED, format_exception(exc))))
                return False
        conn.send_bytes(READY)
    except OSError:
        return False  # the pool closed our connection while we started
    return True


def _watch(fd_or_sentinel: Any) -> None:
    def watch() -> None:
        try:
            wait([fd_or_sentinel])
        finally:
            os._exit(ORPHAN_EXIT_CODE)

    threading.Thread(target=watch, name="atasker-parent-watch", daemon=True).start()


def worker_main(
    conn: Connection,
    initializer: Callable[..., Any] | None,
    initargs: tuple[Any, ...],
) -> None:
    """Entry point of a worker started by a multiprocessing context."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        _watch(parent.sentinel)
    if _initialize(conn, initializer, initargs):
        _run_tasks(conn)


def bootstrap(sock_fd: int, lifeline_fd: int) -> None:
    """Entry point of a worker started by the default launcher (a fresh
    interpreter): ``python -c "...; bootstrap(sock_fd, lifeline_fd)"``."""
    global _main_path, _main_name
    # The lifeline first: a parent that dies during set-up ends us too.
    _watch(lifeline_fd)
    sock = socket.socket(fileno=sock_fd)
    conn = Connection(sock.detach())
    try:
        setup = pickle.loads(conn.recv_bytes(), fix_imports=False)
    except (EOFError, OSError):
        return
    sys.path[:] = setup["sys_path"]
    _main_path = setup["main_path"]
    _main_name = setup["main_name"]
    # The initializer is pickled apart: unpickling it may import user code.
    try:
        initializer, initargs = _PayloadUnpickler(io.BytesIO(setup["init"])).load()
    except BaseException as exc:  # unpickling may import user code
        with contextlib.suppress(OSError):
            conn.send_bytes(pickle.dumps((INIT_FAILED, format_exception(exc))))
        return
    if _initialize(conn, initializer, initargs):
        _run_tasks(conn)
