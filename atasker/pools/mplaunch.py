"""Starting worker processes, and the descriptors that must not leak.

The default launcher starts each worker as a fresh interpreter (fork+exec of
``sys.executable``, as loky does): a supervisor always runs threads, and
forking a multi-threaded process can deadlock the child; a fresh interpreter
also does not re-run the user's main script. The worker gets::

    one end of a socketpair   the task connection (mpcodec's wire format)
    a lifeline pipe's read end    EOF: the parent died, exit at once
    its setup, sent first     sys.path, where __main__ lives, the initializer

The parent watches a worker's death with a pidfd (Linux) and with EOF on the
connection. ``mp_context="fork" | "spawn" | "forkserver"`` starts workers
with multiprocessing instead (:class:`ContextLauncher`).

Every descriptor a pool keeps on the parent side (connection ends, the
lifeline's write end, wake-up pipes) is recorded in a process-wide set. A
process forked from the parent (``mp_context="fork"`` or the user's own
``os.fork()``) closes all of them at once (``os.register_at_fork``): a
retired worker sees EOF only when no other process holds its pipe, and a
forked child must never talk to its parent's workers.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import pickle
import socket
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import Any, Protocol

from .mpworker import worker_main

# ----------------------------------------------------------------------
# Parent-side descriptors, closed in every forked child
# ----------------------------------------------------------------------

_parent_fds: set[int] = set()
_fds_lock = threading.Lock()
_fork_listeners: weakref.WeakSet[Any] = weakref.WeakSet()


def keep_from_children(*fds: int) -> None:
    """Record parent-side descriptors that a forked child must close."""
    with _fds_lock:
        _parent_fds.update(fds)


def release_fd(fd: int) -> None:
    """Close a recorded descriptor and forget it."""
    with _fds_lock:
        _parent_fds.discard(fd)
    with contextlib.suppress(OSError):
        os.close(fd)


def watch_pool(pool: Any) -> None:
    """Call ``pool.forked()`` in a child made by ``os.fork()``, and
    ``pool.end_at_exit()`` when the interpreter exits."""
    _fork_listeners.add(pool)


def forget_pool(pool: Any) -> None:
    """Undo :func:`watch_pool` (the pool has ended)."""
    _fork_listeners.discard(pool)


@atexit.register
def _at_exit() -> None:
    # Registered after multiprocessing's own exit hook (imported above), so
    # it runs before it: pools stop replacing workers and reporting them
    # lost before multiprocessing terminates its children.
    for pool in list(_fork_listeners):
        pool.end_at_exit()


def after_fork_in_child() -> None:
    """Close every parent-side descriptor of every pool and tell each pool
    that it is a copy. Runs in the child of every ``os.fork()``; exposed for
    callers that must run it themselves."""
    global _fds_lock
    # Only this thread exists now; the lock may have been held at the fork.
    _fds_lock = threading.Lock()
    fds = list(_parent_fds)
    _parent_fds.clear()
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    for listener in list(_fork_listeners):
        listener.forked()
    _fork_listeners.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=after_fork_in_child)


# ----------------------------------------------------------------------
# Start methods
# ----------------------------------------------------------------------


def default_context() -> BaseContext:
    """``forkserver`` where the platform has it, else ``spawn``: the start
    method of a multiprocessing pool that does not fork a threaded parent."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("spawn")


def resolve_context(context: Any) -> BaseContext | None:
    """A multiprocessing context from a start-method name or a context;
    None for None (atasker's own launcher).

    Raises:
        ValueError: an unknown start method.
        TypeError: neither a name nor a context.
    """
    if context is None:
        return None
    if isinstance(context, str):
        if context not in multiprocessing.get_all_start_methods():
            raise ValueError(
                f"context must be one of {multiprocessing.get_all_start_methods()}; "
                f"got {context!r}"
            )
        return multiprocessing.get_context(context)
    if isinstance(context, BaseContext):
        return context
    raise TypeError(
        "context must be a start-method name or a multiprocessing context; "
        f"got {context!r}"
    )


# ----------------------------------------------------------------------
# Launchers
# ----------------------------------------------------------------------


class WorkerProcess(Protocol):
    """What the pool needs of a started worker."""

    pid: int
    conn: Connection
    # Objects multiprocessing.connection.wait() accepts, ready when it exits.
    sentinels: list[Any]

    def exitcode(self) -> int | None: ...
    def kill(self) -> None: ...
    def join(self, timeout: float | None = None) -> bool: ...
    def close(self) -> None: ...


class Launcher(Protocol):
    """Starts worker processes (see the module docstring)."""

    def launch(self, name: str) -> WorkerProcess: ...
    def close(self) -> None: ...


# The worker imports the whole atasker package before it says READY: task
# modules import atasker (workers, errors), and a first task that paid for
# that import (about 100 ms) would be slow; a worker's start pays instead.
_BOOTSTRAP = (
    "import sys; sys.path.insert(0, {path!r}); "
    "from atasker.pools.mpworker import bootstrap; bootstrap({sock}, {lifeline})"
)


def main_location() -> tuple[str | None, str | None]:
    """``(path, module name)`` of the user's main module, as a worker finds
    it: the module name when run with ``-m``, the file when run as a script,
    neither for an interactive session or ``python -c``."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None)
    if isinstance(name, str) and name not in ("__main__", "__mp_main__"):
        # ``python -m pkg`` runs pkg.__main__: import that, not the package.
        return None, name
    path = getattr(main, "__file__", None)
    if isinstance(path, str) and os.path.exists(path):
        return os.path.abspath(path), None
    return None, None


class _Subprocess:
    """A worker started as a fresh interpreter."""

    def __init__(self, popen: subprocess.Popen[bytes], conn: Connection) -> None:
        self._popen = popen
        self.pid = popen.pid
        self.conn = conn
        self._pidfd: int | None = None
        # Without a pidfd, death shows as EOF on the connection.
        self.sentinels: list[Any] = []
        if hasattr(os, "pidfd_open"):
            try:
                self._pidfd = os.pidfd_open(popen.pid)
            except OSError:  # an old kernel
                self._pidfd = None
            else:
                keep_from_children(self._pidfd)
                self.sentinels = [self._pidfd]

    def exitcode(self) -> int | None:
        return self._popen.poll()

    def kill(self) -> None:
        if self._popen.returncode is None:
            with contextlib.suppress(OSError):
                self._popen.kill()

    def join(self, timeout: float | None = None) -> bool:
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def close(self) -> None:
        if self._pidfd is not None:
            release_fd(self._pidfd)
            self._pidfd = None


class SubprocessLauncher:
    """The default: each worker a fresh ``sys.executable`` (see the module
    docstring)."""

    def __init__(
        self, initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]
    ) -> None:
        main_path, main_name = main_location()
        self._setup = pickle.dumps(
            {
                "sys_path": list(sys.path),
                "main_path": main_path,
                "main_name": main_name,
                "init": pickle.dumps((initializer, initargs), pickle.HIGHEST_PROTOCOL),
            },
            pickle.HIGHEST_PROTOCOL,
        )
        self._package_dir = os.path.dirname(
            os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        )
        self._lifeline_r, self._lifeline_w = os.pipe()
        keep_from_children(self._lifeline_r, self._lifeline_w)
        flags: list[str] = getattr(subprocess, "_args_from_interpreter_flags", list)()
        self._flags = flags

    def launch(self, name: str) -> WorkerProcess:
        parent_sock, child_sock = socket.socketpair()
        parent_fd = parent_sock.detach()
        keep_from_children(parent_fd)
        conn = Connection(parent_fd)
        child_fd = child_sock.fileno()
        code = _BOOTSTRAP.format(
            path=self._package_dir, sock=child_fd, lifeline=self._lifeline_r
        )
        try:
            popen = subprocess.Popen(
                [sys.executable, *self._flags, "-c", code],
                pass_fds=(child_fd, self._lifeline_r),
                stdin=subprocess.DEVNULL,
            )
        except BaseException:  # forget the descriptors, then re-raise
            child_sock.close()
            conn.close()
            with _fds_lock:
                _parent_fds.discard(parent_fd)
            raise
        finally:
            child_sock.close()
        worker = _Subprocess(popen, conn)
        with contextlib.suppress(OSError):  # it died already: its sentinel says so
            conn.send_bytes(self._setup)
        return worker

    def close(self) -> None:
        """Close the lifeline: every worker of this launcher exits."""
        release_fd(self._lifeline_w)
        release_fd(self._lifeline_r)


class _ContextProcess:
    """A worker started by a multiprocessing context."""

    def __init__(self, process: Any, conn: Connection) -> None:
        self._process = process
        self.pid: int = process.pid
        self.conn = conn
        self.sentinels: list[Any] = [process.sentinel]

    def exitcode(self) -> int | None:
        code: int | None = self._process.exitcode
        return code

    def kill(self) -> None:
        if self._process.exitcode is None:
            with contextlib.suppress(OSError):
                self._process.kill()

    def join(self, timeout: float | None = None) -> bool:
        self._process.join(timeout)
        return self._process.exitcode is not None

    def close(self) -> None:
        pass


class ContextLauncher:
    """Workers started by a multiprocessing context (``mp_context=``)."""

    def __init__(
        self,
        context: BaseContext,
        initializer: Callable[..., Any] | None,
        initargs: tuple[Any, ...],
    ) -> None:
        self._context = context
        self._initializer = initializer
        self._initargs = initargs

    def launch(self, name: str) -> WorkerProcess:
        parent_conn, child_conn = self._context.Pipe()
        # Recorded before the fork: a forked worker closes it (and its
        # siblings' ends) at once, in os.register_at_fork's hook.
        keep_from_children(parent_conn.fileno())
        process = self._context.Process(  # type: ignore[attr-defined]
            target=worker_main,
            args=(child_conn, self._initializer, self._initargs),
            name=name,
            daemon=True,
        )
        try:
            process.start()
        except BaseException:  # forget the descriptor, then re-raise
            with _fds_lock:
                _parent_fds.discard(parent_conn.fileno())
            parent_conn.close()
            raise
        finally:
            child_conn.close()
        return _ContextProcess(process, parent_conn)

    def close(self) -> None:
        pass


def close_connection(conn: Connection) -> None:
    """Close a parent-side connection and forget its descriptor."""
    try:
        fd = conn.fileno()
    except OSError:
        return  # closed already
    with _fds_lock:
        _parent_fds.discard(fd)
    conn.close()
