"""Targets of the process tasks of test_process_races: worker processes
import them by module name."""

from __future__ import annotations

import os
import struct
import time

from atasker.pools import mpworker


def wait_for_path(path, timeout=10.0):
    """Return True once ``path`` exists (the test's release of a task that
    must keep its worker busy until then); False after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def answer_then_exit(x):
    """Return ``x``; the worker process exits right after sending that
    outcome (as one that crashes after answering: a C thread, the OOM
    killer)."""
    send = mpworker._send

    def send_then_exit(message):
        send(message)
        os._exit(0)

    mpworker._send = send_then_exit
    return x


def answer_then_die_mid_message(x):
    """Return ``x``. The worker writes its outcome and, in the same write,
    the first 21 of the 1000 bytes of a next message, then dies (as one
    killed while a thread of its task writes a big event): one read of the
    parent brings in both, then end of file."""

    def send_then_die(message):
        assert mpworker._channel is not None
        partial = struct.pack("!i", 1000) + b"E" + b"x" * 20
        whole = struct.pack("!i", len(message)) + bytes(message)
        os.write(mpworker._channel._fd, whole + partial)
        os._exit(1)

    mpworker._send = send_then_die
    return x
