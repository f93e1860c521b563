"""The worker process side of the process pool, and the wire format.

A worker owns one end of a duplex pipe; the pool holds the other. Messages
are pickled bytes, one in each direction per task::

    worker -> pool   READY | (INIT_FAILED, traceback text)   once, at start-up
    pool   -> worker payload = pickle((target, args, kwargs))
    worker -> pool   (True, result) | (False, exception, traceback text)
    pool closes its end                      -> the worker exits

Exactly one task is in flight per worker: the pool sends a payload only to a
worker that has answered the previous one. A worker also exits as soon as
its parent dies, even in the middle of a task, so a parent killed with
SIGKILL does not leave workers running.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

READY = b"ready"
INIT_FAILED = "init-failed"

# Exit code of a worker whose parent died.
ORPHAN_EXIT_CODE = 70


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


def encode_outcome(ok: bool, value: Any, traceback_text: str | None = None) -> bytes:
    """Pickle a task's outcome; an unpicklable one becomes a clear error."""
    try:
        return pickle.dumps((ok, value, traceback_text), pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        what = "result" if ok else f"exception {value!r}"
        error = TypeError(
            f"the task's {what} cannot be pickled to return it from the worker "
            f"process: {exc!r}"
        )
        text = traceback_text or "".join(
            traceback.format_exception_only(type(exc), exc)
        )
        return pickle.dumps((False, error, text), pickle.HIGHEST_PROTOCOL)


def _exit_when_parent_dies() -> None:
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    sentinel = parent.sentinel

    def watch() -> None:
        wait([sentinel])
        os._exit(ORPHAN_EXIT_CODE)

    threading.Thread(target=watch, name="atasker-parent-watch", daemon=True).start()


def worker_main(
    conn: Connection,
    initializer: Callable[..., Any] | None,
    initargs: tuple[Any, ...],
) -> None:
    """Entry point of a worker process."""
    _exit_when_parent_dies()
    if initializer is not None:
        try:
            initializer(*initargs)
        except BaseException as exc:
            text = "".join(
                traceback.format_exception(type(exc), exc, exc.__traceback__)
            )
            conn.send_bytes(pickle.dumps((INIT_FAILED, text)))
            return
    conn.send_bytes(READY)
    while True:
        try:
            payload = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the pool closed its end: stop
        try:
            target, args, kwargs = pickle.loads(payload)
            message = encode_outcome(True, target(*args, **kwargs))
        except BaseException as exc:
            text = "".join(
                traceback.format_exception(type(exc), exc, exc.__traceback__)
            )
            message = encode_outcome(False, exc, text)
        del payload
        try:
            conn.send_bytes(message)
        except (EOFError, OSError):
            return
