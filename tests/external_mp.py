"""Targets of external-pool tasks (test_external_pools.py): top-level
functions of an importable module, so a ProcessPoolExecutor or a
multiprocessing Pool that does not fork this process can unpickle them; and the
:class:`Gate` they block at, in a thread or in a worker process."""

from __future__ import annotations

import concurrent.futures
import os
import socket
from pathlib import Path

from atasker import TaskError

# Seconds a task may block at a gate, and the test wait for one (conftest's
# WAIT: a worker process does not import conftest).
GATE_WAIT = 10.0


def add(a, b):
    return a + b


def square(x):
    return x * x


def pid():
    return os.getpid()


def remote_failure(message):
    """Raise in the executor: the record's traceback names this frame."""
    raise ValueError(message)


def remote_task_error(message):
    raise TaskError(message)


def raise_cancelled(message):
    """Raise what waiting on a cancelled future raises (a TaskCancelledError
    from ``record.get()`` of a canceled record is one)."""
    raise concurrent.futures.CancelledError(message)


def fail_first(path):
    """Raise on the first call made with ``path`` (a file that outlives each
    call and each worker process); later calls return their number."""
    counter = Path(path)
    number = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(number))
    if number == 1:
        raise ValueError("first attempt")
    return number


def wait_at_gate(path, result="released"):
    """Tell the :class:`Gate` at ``path`` this process's pid, then block
    until it is released; return ``result``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(GATE_WAIT)
        try:
            connection.connect(path)
            connection.sendall(f"{os.getpid()}\n".encode())
            connection.recv(1)  # b"" (or a reset) once released
        except (ConnectionRefusedError, ConnectionResetError, FileNotFoundError):
            pass  # released before this task came
    return result


class Gate:
    """Tasks block at it (:func:`wait_at_gate`) until :meth:`release`: a
    Unix socket the test listens on, so threads and worker processes alike.

    ``arrived()`` returns the pid of the next task to reach the gate;
    ``release()`` lets every task through, and later ones pass at once.
    Nothing blocks for more than GATE_WAIT seconds, in the test or a task.
    """

    def __init__(self, path):
        self.path = str(path)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        self._listener.listen(64)
        self._listener.settimeout(GATE_WAIT)
        self._arrived = []
        self.released = False

    def arrived(self):
        """Wait for the next task to reach the gate; its pid."""
        try:
            connection, _ = self._listener.accept()
        except socket.timeout:
            raise AssertionError("no task arrived at the gate") from None
        self._arrived.append(connection)
        connection.settimeout(GATE_WAIT)
        data = b""
        while not data.endswith(b"\n"):
            chunk = connection.recv(64)
            assert chunk, "a task left the gate before saying its pid"
            data += chunk
        return int(data)

    def release(self):
        if self.released:
            return
        self.released = True
        for connection in self._arrived:
            connection.close()
        self._arrived = []
        self._listener.close()  # connections not accepted yet are reset


class ShutdownRecorder(concurrent.futures.Executor):
    """A ThreadPoolExecutor (threads named ``prefix``...) behind an Executor
    that notes its shutdowns."""

    def __init__(self, prefix):
        self.inner = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix=prefix)
        self.shutdowns = []

    def submit(self, fn, /, *args, **kwargs):
        return self.inner.submit(fn, *args, **kwargs)

    def shutdown(self, wait=True, **kwargs):
        self.shutdowns.append(wait)
        self.inner.shutdown(wait=wait)
