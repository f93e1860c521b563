"""Targets of process tasks: top-level functions of an importable module."""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from pathlib import Path

from atasker import BackgroundQueueWorker


def add(a, b, x=0):
    return a + b + x


def fail(message):
    raise ValueError(message)


def exit_now(code=3):
    os._exit(code)


def kill_self():
    os.kill(os.getpid(), signal.SIGKILL)


def segfault():
    ctypes.string_at(0)


def sleep(seconds):
    time.sleep(seconds)
    return seconds


def pid():
    return os.getpid()


def unpicklable_result():
    return lambda: None


def with_task_id(a, _task_id=None):
    return (a, _task_id)


def with_kwargs(a, **kwargs):
    return (a, sorted(kwargs))


def without_task_id(a):
    return a


def record(path, label):
    with Path(path).open("a") as f:
        f.write(f"{label}\n")
    return label


def failing_initializer():
    raise RuntimeError("initializer refused")


def maybe_die(i, every):
    if i % every == 0:
        os._exit(9)
    return i


def read_fifo(path):
    """Block until the test opens the FIFO for writing and closes it."""
    with Path(path).open() as f:
        return f.read()


class SquareWorker(BackgroundQueueWorker):
    """A queue worker whose static run executes in the process pool."""

    @staticmethod
    def run(item, **kwargs):
        return item * item, sorted(kwargs)

    def process_result(self, result):
        self.results.append(result)
        if len(self.results) == self.expected:
            self.done.set()
            return False
        return None

    def prepare(self, expected):
        self.results = []
        self.expected = expected
        self.done = threading.Event()


def _raise(kind):
    raise {"SystemExit": SystemExit, "KeyboardInterrupt": KeyboardInterrupt}[kind]()


class ExplodesInParent:
    """Pickles fine in the worker; unpickling it raises ``kind``."""

    def __init__(self, kind):
        self.kind = kind

    def __reduce__(self):
        return (_raise, (self.kind,))


def result_exploding_in_parent(kind):
    return ExplodesInParent(kind)


class ExceptionExplodingInParent(Exception):
    def __reduce__(self):
        return (_raise, ("SystemExit",))


def raise_exploding_in_parent():
    raise ExceptionExplodingInParent("boom")


class NotAnException(Exception):
    """Unpickles to an int in the parent."""

    def __reduce__(self):
        return (int, (5,))


def raise_non_exception():
    raise NotAnException("no")


class BadRepr(Exception):
    def __repr__(self):
        raise RuntimeError("repr refused")

    def __str__(self):
        raise RuntimeError("str refused")


def raise_bad_repr():
    raise BadRepr()


class ReduceRaises:
    def __reduce__(self):
        raise SystemExit("reduce refused")


def hang_initializer():
    time.sleep(600)


def exit_initializer():
    os._exit(4)


class UnpicklableBadRepr(BadRepr):
    def __reduce__(self):
        raise TypeError("this exception cannot be pickled")


def raise_unpicklable_bad_repr():
    raise UnpicklableBadRepr()
