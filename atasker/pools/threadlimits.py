"""Exceptions sent into a running thread: the time limits of a thread task.

A thread cannot be stopped from outside. Its limits arrive as asynchronous
exceptions (``PyThreadState_SetAsyncExc``), delivered when the thread next
runs Python code: a thread blocked in C (a lock, a socket) gets one only
when that call returns.

One :class:`LimitGuard` per attempt, a small state machine::

    NEW ──arm()──> ARMED ──disarm()──> DISARMED
     │               │
     limit passes:   limit passes: sent now, or later if the thread is
     raised by arm() inside atasker's own code (see below)

Two rules keep an exception out of atasker's own code:

- Sending happens under the guard's lock and only while it is ARMED; the
  disarm takes the same lock and clears an exception sent but not yet
  delivered. The attempt's runner arms and disarms inside two nested
  handlers, and at most two exceptions (soft, hard) are ever sent, so one
  that lands between the task's return and the disarm is absorbed there.
- A thread inside an atasker call (a task submitting, waiting for, or
  cancelling another task; stdlib code that call runs counts as its) would
  take the exception there, half-way through changing shared state. The
  limit then waits: the timer looks again after 1 ms, then 2, 4, ... at
  most 50 ms, until the thread is back in its own code or out of the
  attempt. This is the one place something is looked at again instead of
  signalled: nothing tells us when a thread leaves a call, and it ends with
  the attempt. (The look and the send are two steps: a thread that enters
  an atasker call in the microseconds between them can still take it
  there. The window is that short; it cannot be closed from outside.)
"""

from __future__ import annotations

import ctypes
import os
import sys
import sysconfig
import threading
import time
import types
from typing import TYPE_CHECKING

from ..core.timer import Timer, TimerCall

if TYPE_CHECKING:
    from .threadpool import ThreadPool

_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc

# The first wait before a limit is looked at again, and the longest.
RECHECK_FIRST = 0.001
RECHECK_MAX = 0.05

# Frames of atasker's own code that expect a limit's exception (the
# attempt's runner adds its own): one may land there.
EXPECTING: set[types.CodeType] = set()


class LimitGuard:
    """The time limits of one attempt in one thread (see the module docstring).

    Args:
        thread: the thread that runs the attempt (the calling one).
        timer: fires the limits, and looks again at a thread found inside
            atasker's code.

    Attributes:
        sent: the exception types raised in the thread so far.
        timeout: the hard limit's error, with its message (the thread gets
            the bare class).
        abandoned: the thread ran on past its grace and was abandoned.
    """

    __slots__ = (
        "_lock",
        "_state",
        "_ident",
        "_timer",
        "_calls",
        "_early",
        "sent",
        "timeout",
        "thread",
        "abandoned",
    )

    NEW, ARMED, DISARMED = "new", "armed", "disarmed"

    def __init__(self, thread: threading.Thread, timer: Timer) -> None:
        self._lock = threading.Lock()
        self._state = self.NEW
        ident = thread.ident
        assert ident is not None
        self._ident = ident
        self._timer = timer
        self._calls: list[TimerCall] = []
        self._early: list[type[BaseException]] = []  # passed before arm()
        self.sent: list[type[BaseException]] = []
        self.timeout: BaseException | None = None
        self.thread = thread
        self.abandoned = False

    def add(self, call: TimerCall | None) -> None:
        """Cancel ``call`` when the attempt disarms."""
        if call is None:
            return
        with self._lock:
            if self._state != self.DISARMED:
                self._calls.append(call)
                return
        call.cancel()

    def arm(self) -> None:
        """The thread enters the attempt: exceptions may be sent from now on.

        Raises:
            BaseException: a limit that passed before (the attempt ends
                before its function runs).
        """
        with self._lock:
            if self._state == self.NEW:
                self._state = self.ARMED
            early, self._early = self._early, []
            self.sent += early
        if early:
            raise early[-1]

    def raise_in_thread(self, exc_type: type[BaseException]) -> bool:
        """Raise ``exc_type`` in the thread, now or as soon as it is back in
        its own code; False if it is out of the attempt."""
        return self._send(exc_type, RECHECK_FIRST)

    def _send(self, exc_type: type[BaseException], recheck: float) -> bool:
        with self._lock:
            if self._state == self.DISARMED:
                return False
            if self._state == self.NEW:
                self._early.append(exc_type)
                return True
            if inside_atasker(self._ident):
                later = min(recheck * 2, RECHECK_MAX)
                call = self._timer.call_at(
                    time.monotonic() + recheck, lambda: self._send(exc_type, later)
                )
                if call is not None:
                    self._calls.append(call)
                return True
            _set_async_exc(ctypes.c_ulong(self._ident), ctypes.py_object(exc_type))
            self.sent.append(exc_type)
            return True

    def is_limit(self, exc: BaseException) -> bool:
        """True if ``exc`` is (of) a kind this guard raised in the thread."""
        return any(type(exc) is sent for sent in self.sent)

    def disarm(self) -> None:
        """The thread is out of the attempt: no exception is sent from now
        on, and one sent but not delivered yet is cleared."""
        with self._lock:
            if self._state == self.DISARMED:
                return
            armed = self._state == self.ARMED
            self._state = self.DISARMED
            if armed and self.sent:
                _set_async_exc(ctypes.c_ulong(self._ident), None)
            calls, self._calls = self._calls, []
        for call in calls:
            call.cancel()

    def abandon(self, pool: ThreadPool | None) -> bool:
        """Abandon the thread if it still runs the attempt; True if so.

        Decided under the guard's lock, which the thread's disarm takes too:
        either the thread is out (and frees its own slot) or the pool frees
        it here, never both. (The pool never takes a guard's lock.)
        """
        with self._lock:
            if self._state != self.ARMED or self.abandoned:
                return False
            self.abandoned = True
            if pool is not None:
                pool.abandon(self.thread)
            return True


def _package_dir() -> str:
    # As the interpreter names this package's files in its code objects.
    here = _package_dir.__code__.co_filename
    return os.path.dirname(os.path.dirname(here)) + os.sep


_PACKAGE = _package_dir()
_PATHS = sysconfig.get_paths()
_STDLIB = tuple({os.path.join(_PATHS[k], "") for k in ("stdlib", "platstdlib")})
_SITE = tuple({os.path.join(_PATHS[k], "") for k in ("purelib", "platlib")})


def _is_stdlib(filename: str) -> bool:
    if filename.startswith("<frozen"):
        return True
    return filename.startswith(_STDLIB) and not filename.startswith(_SITE)


def inside_atasker(ident: int) -> bool:
    """Does the thread run atasker's own code now (its innermost frame that
    is not the standard library's is atasker's, and not one that expects a
    limit)?"""
    frame = sys._current_frames().get(ident)
    while frame is not None:
        code = frame.f_code
        if code.co_filename.startswith(_PACKAGE):
            return code not in EXPECTING
        if not _is_stdlib(code.co_filename):
            return False  # the task's own code
        frame = frame.f_back
    return False
