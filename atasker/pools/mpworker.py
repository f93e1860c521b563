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
import queue
import runpy
import signal
import socket
import sys
import threading
import types
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection, wait
from typing import Any

from ..core.context import TaskContext, set_process_context
from ..core.errors import SoftTimeLimitExceeded, format_exception, soft_limit_error
from .mpchannel import Channel, Message
from .mpcodec import (
    CONTROL,
    EVENT,
    INIT_FAILED,
    READY,
    RETRIES,
    RemoteTraceback,
    WireInfo,
    decode_json,
    decode_retries,
    encode_json,
    encode_outcome,
    encode_state,
)

__all__ = [
    "RemoteTraceback",
    "bootstrap",
    "control_messages",
    "importing_main",
    "worker_main",
]

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


# The channel to the parent, and what serialises the messages sent on it
# (a task may emit from threads of its own; a class task's stop() runs on its
# control thread).
_channel: Channel | None = None
_send_lock = threading.Lock()


def _send(message: bytes) -> None:
    assert _channel is not None
    with _send_lock:
        _channel.send(message)


def send_event(event: str, data: Any) -> None:
    """The running task emitted ``event`` (checked): tell the parent."""
    _send(encode_json(EVENT, [event, data]))


@contextlib.contextmanager
def control_messages(on_message: Callable[[Any], None]) -> Iterator[None]:
    """While the block runs (a class task), a control thread reads what the
    parent sends and hands each CONTROL message's value to ``on_message``
    on a thread of its own, in order (user code: ``stop()``), so that it always reads
    on and the parent's manager never waits to write.

    Only the control thread reads the connection meanwhile; on exit it is
    told to stop and joined (so are the handlers), and the main loop reads
    again, skipping a CONTROL message that came too late.
    """
    channel = _channel
    assert channel is not None
    wake_r, wake_w = os.pipe()
    requests: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def listen() -> None:
        while True:
            # What the main loop's last read brought in is read first.
            if not channel.buffered():
                ready = wait([channel.conn, wake_r])
                if wake_r in ready:
                    return
            try:
                message = channel.recv()
            except (EOFError, OSError):
                return  # the parent is gone: the lifeline ends us
            if message[:1] == CONTROL:
                requests.put(decode_json(message))

    def handle() -> None:  # in the order they came
        while (request := requests.get()) is not _END:
            on_message(request)

    threads = [
        threading.Thread(target=listen, name="atasker-control", daemon=True),
        threading.Thread(target=handle, name="atasker-control-requests", daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        try:
            # A soft time limit that rings now must not skip what follows
            # (two readers of the connection would lose the next payload).
            _disarm_soft_limit()
        finally:
            os.write(wake_w, b"\0")
            threads[0].join()
            requests.put(_END)
            threads[1].join()
            os.close(wake_r)
            os.close(wake_w)


_END = object()  # no more control requests


def _run_tasks(conn: Connection) -> None:
    """Answer payloads one at a time until the parent closes its end."""
    global _channel
    _channel = channel = Channel(conn)
    if SOFT_LIMITS:
        signal.signal(signal.SIGALRM, _soft_limit_reached)
    retries, eta = 0, None
    while True:
        try:
            payload = channel.recv()
        except (EOFError, OSError):
            return  # the pool closed its end: stop
        if payload[:1] == RETRIES:
            retries, eta = decode_retries(payload)
            continue
        if payload[:1] == CONTROL:
            continue  # for a class task that has ended: too late
        try:
            message = _run_task(payload, retries, eta)
        except SoftTimeLimitExceeded as exc:  # the alarm rang as the task ended
            _disarm_soft_limit()
            message = encode_outcome(False, exc, format_exception(exc))
        del payload
        retries, eta = 0, None
        try:
            _send(message)
        except (EOFError, OSError):
            return


def _run_task(payload: Message, retries: int, eta: float | None) -> bytes:
    """Run one payload; its outcome, encoded."""
    context = None
    try:
        if b"__main__" in payload or b"__mp_main__" in payload:
            # It may name something of the user's main script.
            target, args, kwargs, info = _PayloadUnpickler(io.BytesIO(payload)).load()
        else:
            target, args, kwargs, info = pickle.loads(payload)
        # A task function object (TaskFunction) travels by reference: run
        # the function it wraps, not another submit.
        target = getattr(target, "__atasker_function__", target)
        context = _context(info, retries, eta, args, kwargs)
        set_process_context(context)
        if info[7]:  # bind
            args = (context, *args)
        _arm_soft_limit(info[6])
        try:
            result = target(*args, **kwargs)
        finally:
            _disarm_soft_limit()
        return encode_outcome(True, result)
    except BaseException as exc:  # the task's outcome, whatever it is
        retryable = context is None or not context.retries_spent
        return encode_outcome(False, exc, format_exception(exc), retryable)
    finally:
        set_process_context(None)


def _context(
    info: WireInfo,
    retries: int,
    retry_eta: float | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> TaskContext:
    task_id, name, priority, eta, expires, max_retries, _, _ = info
    if retries:
        eta = retry_eta  # when this attempt was due
    return TaskContext(
        task_id=task_id,
        name=name,
        priority=priority,
        retries=retries,
        args=args,
        kwargs=kwargs,
        eta=eta,
        expires=expires,
        max_retries=max_retries,
        send_state=send_state,
        send_event=send_event,
    )


def send_state(state: str | None, meta: Any) -> None:
    """The running task called update_state(): tell the parent."""
    _send(encode_state(state, meta))


# The soft time limit: SIGALRM, raised as SoftTimeLimitExceeded in the task
# (tasks run in the worker's main thread, where signal handlers run). The
# handler raises only while a task runs, and the alarm rings once per task.
# Where there is no SIGALRM (Windows), a soft limit is refused at the call.
SOFT_LIMITS = hasattr(signal, "SIGALRM") and hasattr(signal, "setitimer")
_soft_limit: float | None = None


def _arm_soft_limit(seconds: float | None) -> None:
    global _soft_limit
    if seconds is not None:
        _soft_limit = seconds
        signal.setitimer(signal.ITIMER_REAL, seconds)


def _disarm_soft_limit() -> None:
    global _soft_limit
    if _soft_limit is not None:
        _soft_limit = None
        signal.setitimer(signal.ITIMER_REAL, 0)


def _soft_limit_reached(signum: int, frame: Any) -> None:
    if _soft_limit is not None:
        limit = _soft_limit
        _disarm_soft_limit()
        raise soft_limit_error(limit)


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
