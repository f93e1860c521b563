"""Ctrl-C: taken by the main thread only, at its waits, and never by the
demo's other threads or its worker processes."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C


class Interrupts:
    """Ctrl-C (SIGINT) as the demo takes it: a KeyboardInterrupt raised only
    while the main thread waits (``wait``), so that it never cuts a frame or
    a call into the supervisor in half; one that comes at another moment is
    raised at the next wait. (A handler that set an Event instead could
    deadlock: it runs in the main thread, maybe inside that Event's wait.)"""

    def __init__(self) -> None:
        self.received = 0
        self._raised = 0
        self._waiting = False

    def handle(self, signum: int, frame: object) -> None:
        self.received += 1
        if self._waiting:
            self._raise_pending()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """``event.wait(timeout)``; KeyboardInterrupt at a Ctrl-C, even one
        that came before."""
        self._waiting = True
        try:
            self._raise_pending()
            return event.wait(timeout)
        finally:
            self._waiting = False

    def _raise_pending(self) -> None:
        if self.received > self._raised:
            self._raised = self.received
            raise KeyboardInterrupt


@contextlib.contextmanager
def handling_interrupts() -> Iterator[Interrupts]:
    """SIGINT goes to an Interrupts while the block runs, if Python's own
    handler had it (not in a thread, nor where SIGINT is ignored)."""
    interrupts = Interrupts()
    take = (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )
    if take:
        signal.signal(signal.SIGINT, interrupts.handle)
    try:
        yield interrupts
    finally:
        if take:
            signal.signal(signal.SIGINT, signal.default_int_handler)


@contextlib.contextmanager
def threads_deaf_to_ctrl_c() -> Iterator[None]:
    """Threads started in the block start with SIGINT blocked, and so do the
    worker processes they start: a signal mask survives fork and exec, and
    Python never unblocks it. A Ctrl-C at a terminal, sent to the whole
    process group, then reaches the main thread only, never a worker, not
    even one still importing (where KeyboardInterrupt would print a
    traceback)."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:  # a Ctrl-C that came meanwhile is delivered now
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
