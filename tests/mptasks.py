"""Targets of process tasks: top-level functions of an importable module."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import threading
import time
from pathlib import Path

from atasker import (
    TT_MP,
    BackgroundQueueWorker,
    TaskError,
    background_task,
    current_context,
)


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


# Targets whose attempts remember each other: ``path`` names a file that
# outlives each attempt (and each worker process), counting the calls.

FAILURES = {"ValueError": ValueError, "KeyError": KeyError, "TaskError": TaskError}


def attempt_number(path):
    """This call's number among the calls made with ``path``, from 1."""
    counter = Path(path)
    number = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(number))
    return number


def fail_times(path, times, kind="ValueError", log=None, label="done"):
    """Raise ``kind`` on the first ``times`` calls, then return the call's
    number (and append ``label`` to the file ``log``, if given)."""
    number = attempt_number(path)
    if number <= times:
        raise FAILURES[kind](f"attempt {number}")
    if log is not None:
        record(log, label)
    return number


def crash_first(path, how="kill"):
    """The first call's worker process dies (SIGKILL or os._exit); later
    calls return their number."""
    number = attempt_number(path)
    if number == 1:
        if how == "kill":
            kill_self()
        exit_now(5)
    return number


def block_first(path):
    """The first call sleeps (its time limit ends it); later calls return
    their number."""
    number = attempt_number(path)
    if number == 1:
        time.sleep(600)
    return number


def retry_until(ctx, wanted, countdown=None, max_retries=None, exc=None):
    """Ask ``ctx.retry()`` while fewer than ``wanted`` retries were made;
    return the retries made. ``exc``: the message of a ValueError to retry
    with (and to re-raise once the retries run out)."""
    if ctx.retries < wanted:
        ctx.retry(
            exc=None if exc is None else ValueError(f"{exc} {ctx.retries}"),
            countdown=countdown,
            max_retries=max_retries,
        )
    return ctx.retries


def retry_until_current(wanted, countdown=None, max_retries=None, exc=None):
    """:func:`retry_until` with the context from ``current_context()``."""
    return retry_until(current_context(), wanted, countdown, max_retries, exc)


# --- Task function objects, context, gates (test_options_*.py) ---

# Seconds a task may block at a ProcessGate (conftest.WAIT: a worker process
# does not import conftest).
GATE_WAIT = 10.0


@background_task(tt=TT_MP)
def pid_and_sum(a, b):
    """A task function at the top level of a module: a process task that
    pickles by reference."""
    return os.getpid(), a + b


class ProcessGate:
    """A gate that thread and process tasks block at (:func:`wait_at_gate`):
    a Unix socket the test listens on.

    ``wait_arrived()`` returns once a task is at the gate; ``release()``
    lets every task through, and later ones pass at once. Nothing blocks
    for more than GATE_WAIT seconds, in the test or in the task.
    """

    def __init__(self, path):
        self.path = str(path)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        self._listener.listen(16)
        self._listener.settimeout(GATE_WAIT)
        self._arrived = []

    def wait_arrived(self):
        try:
            connection, _ = self._listener.accept()
        except socket.timeout:
            raise AssertionError("no task arrived at the gate") from None
        self._arrived.append(connection)

    def release(self):
        for connection in self._arrived:
            connection.close()
        self._arrived = []
        self._listener.close()  # connections not accepted yet are reset


def wait_at_gate(path, label="released"):
    """Block until the test releases the ProcessGate at ``path``; ``label``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(GATE_WAIT)
        try:
            connection.connect(path)
            connection.recv(1)  # b"" (or a reset) once released
        except (ConnectionRefusedError, ConnectionResetError, FileNotFoundError):
            pass  # released before this task came
    return label


def context_fields(context=None):
    """What a task's context tells (None outside a task)."""
    if context is None:
        return None
    return {
        "id": context.id,
        "name": context.name,
        "priority": context.priority,
        "retries": context.retries,
        "args": context.args,
        "kwargs": dict(context.kwargs),
        "eta": context.eta,
        "expires": context.expires,
    }


def current_fields(*args, k=None):
    """An unbound task: the fields of ``current_context()``."""
    return context_fields(current_context())


def bound_fields(ctx, *args, k=None):
    """A bound task (``bind=True``): the fields of the context it is given,
    which is ``current_context()`` too."""
    assert ctx is current_context()
    return context_fields(ctx)


def fail_first_attempt():
    """Raise on the first attempt; later, return the retries made."""
    retries = current_context().retries
    if retries == 0:
        raise ValueError("first attempt")
    return retries


def progress_then_wait(path, meta):
    """Report progress, then block at the ProcessGate at ``path``."""
    current_context().update_state("PROGRESS", meta)
    return wait_at_gate(path, "done")


def raise_task_error(message):
    raise TaskError(message)


class Progress:
    """A meta of a user's class: the parent decodes it where user code runs."""

    def __init__(self, done):
        self.done = done

    def __eq__(self, other):
        return isinstance(other, Progress) and other.done == self.done

    def __repr__(self):
        return f"Progress({self.done})"


def progress_then_return(done):
    """Report Progress(done), then return at once."""
    current_context().update_state("PROGRESS", Progress(done))
    return done


# --- Time limits (test_options_time_limits.py) ---


def sleep_catching_soft_limit(seconds):
    """The soft limit's signal interrupts the sleep; clean up and return."""
    from atasker import SoftTimeLimitExceeded

    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "slept"


def sleep_past_soft_limit(path, seconds):
    """Catch the soft limit, note it in ``path``, then sleep into the hard one."""
    from atasker import SoftTimeLimitExceeded

    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        record(path, "soft limit")
        time.sleep(seconds)
    return "slept"


def sleep_catching_soft_limit_on_retry(path, seconds):
    """The first attempt (no file at ``path`` yet) lets its soft limit fail
    it; the next catches its own and returns."""
    from atasker import SoftTimeLimitExceeded

    first = not Path(path).exists()
    Path(path).touch()
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        if first:
            raise
        return "cleaned up in a retry"
    return "slept"


def raise_retry(path, times):
    """Raise the Retry signal itself (not through ctx.retry()) on the first
    ``times`` calls; then return the call's number."""
    from atasker import Retry

    number = attempt_number(path)
    if number <= times:
        raise Retry(f"attempt {number}")
    return number


def fail_after_gate(path):
    """Wait at the ProcessGate at ``path``, then fail."""
    wait_at_gate(path)
    raise ValueError("failed after the gate")
