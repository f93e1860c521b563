"""Class tasks of TT_MP (test_classtasks.py): top-level classes of an
importable module, so that a worker process finds them.

A task in a worker tells the test what it does through a :class:`Listener`
(a Unix socket the test listens on): :func:`tell` sends one JSON message
per connection.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time

from atasker import TT_MP, Task

# Seconds anything may block (conftest.WAIT: a worker process does not
# import conftest).
WAIT = 10.0


def read_message(connection):
    """The JSON value a task sent on ``connection`` (until it shut its side)."""
    chunks = []
    while True:
        chunk = connection.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
    return json.loads(b"".join(chunks))


class Listener:
    """Where the test hears from tasks: each :func:`tell` is one message,
    received in the order the tasks sent them."""

    def __init__(self, path):
        self.path = str(path)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.bind(self.path)
        self._socket.listen(16)
        self._socket.settimeout(WAIT)

    def receive(self):
        """The next message (a JSON value); AssertionError after WAIT."""
        with self.accept("told") as connection:
            return read_message(connection)

    def accept(self, what):
        """The next task's connection; AssertionError after WAIT."""
        try:
            connection, _ = self._socket.accept()
        except socket.timeout:
            raise AssertionError(f"no task {what} anything") from None
        connection.settimeout(WAIT)
        return connection

    def close(self):
        self._socket.close()


def tell(path, message):
    """Send ``message`` (JSON) to the Listener at ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(WAIT)
        connection.connect(path)
        connection.sendall(json.dumps(message).encode())


def wait_stopping(task):
    """Loop until the task is asked to stop (at most WAIT seconds); whether
    it was."""
    deadline = time.monotonic() + WAIT
    while not task.stopping.wait(0.01):
        if time.monotonic() > deadline:
            return False
    return True


def announce(task):
    """Tell ``task.data["socket"]`` that ``task`` started, and with what."""
    tell(
        task.data["socket"],
        {
            "event": "started",
            "id": task.id,
            "name": task.name,
            "data": task.data,
            "pid": os.getpid(),
        },
    )


def announce_stop(task):
    """Tell ``task.data["socket"]`` that ``task.stop()`` was called."""
    tell(task.data["socket"], {"event": "stop", "data": task.data})


class Poller(Task):
    """Runs until stopped; tells ``socket`` when it started, and when its
    stop() was called. Returns a value even when stopped."""

    NAME = "classtasks/poller"
    TT = TT_MP

    def start(self):
        announce(self)
        return "stopped" if wait_stopping(self) else "never stopped"

    def stop(self):
        announce_stop(self)


class Outcome(Task):
    """Ends at once as ``data["outcome"]`` says: "return", "error" (raises
    self.Error) or "exception" (raises ValueError)."""

    NAME = "classtasks/outcome"
    TT = TT_MP

    def start(self):
        outcome = self.data["outcome"]
        if outcome == "error":
            raise self.Error("refused in a process")
        if outcome == "exception":
            raise ValueError("broken in a process")
        return {"outcome": outcome}


# What the context, __init__, start and stop of ContextOrder did in this
# worker, in order; sent to the test when the context exits.
_order = []
_order_lock = threading.Lock()
_order_socket = []


def _note(step):
    with _order_lock:
        _order.append(step)


class ContextOrder(Task):
    """Notes enter, init, start, stop and exit in order (and in which
    thread); the context's exit sends the whole list to ``data["socket"]``."""

    NAME = "classtasks/context-order"
    TT = TT_MP

    @staticmethod
    @contextlib.contextmanager
    def provide_context():
        with _order_lock:
            _order.clear()
            _order_socket.clear()
        _note(("enter", threading.get_ident()))
        try:
            yield
        finally:
            _note(("exit", threading.get_ident()))
            with _order_lock:
                steps = list(_order)
                path = _order_socket[0] if _order_socket else None
            if path is not None:
                tell(path, {"event": "order", "steps": steps})

    def __init__(self, socket, stop=True):
        _note(("init", threading.get_ident()))
        with _order_lock:
            _order_socket.append(socket)
        self.socket = socket
        self.wait_for_stop = stop

    def start(self):
        _note(("start", threading.get_ident()))
        tell(self.socket, {"event": "started", "id": self.id})
        if self.wait_for_stop:
            return "stopped" if wait_stopping(self) else "never stopped"
        return "done"

    def stop(self):
        _note(("stop", threading.get_ident()))


class Emitter(Task):
    """Emits ``tick`` ``data["ticks"]`` times, then runs until stopped and
    emits ``bye`` once stopping is set."""

    NAME = "classtasks/emitter"
    TT = TT_MP

    def start(self):
        for n in range(self.data["ticks"]):
            self.emit("tick", {"n": n})
        stopped = wait_stopping(self)
        self.emit("bye", {"stopped": stopped})
        return "done"


class BadEmits(Task):
    """Tries emits that must be refused, in the worker; returns what each
    raised (its type's name and message), after one good emit."""

    NAME = "classtasks/bad-emits"
    TT = TT_MP

    def start(self):
        refused = {}
        for event, data in (
            ("", None),
            ("started", None),
            ("success", None),
            ("reloaded", None),
            ("fine", {"s": {1}}),
        ):
            try:
                self.emit(event, data)
            except Exception as exc:
                refused[event] = [type(exc).__name__, str(exc)]
        self.emit("fine", {"n": 1})
        return refused
