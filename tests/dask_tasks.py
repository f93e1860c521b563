"""Functions test_dask.py runs on a Dask cluster's worker processes.

Dask pickles a function by reference (module and name), so these live in a
module the workers import: they inherit the test process's ``sys.path``,
which holds the tests' directory. Standard library only: a worker must not
need the test's imports.
"""

from __future__ import annotations

import os
import socket

# Seconds a worker waits for the test at most: a test that died must not
# leave a worker's only thread blocked for ever.
PATIENCE = 60.0


def add(a: int, b: int) -> int:
    return a + b


def whoami() -> int:
    """The worker process's pid."""
    return os.getpid()


def gated(port: int, label: str) -> str:
    """Connect to the test on 127.0.0.1:``port``, tell it ``label`` and this
    worker's pid, and block until the test answers a line; return that line
    ("closed" if the test closed the connection without one)."""
    with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) as sock:
        sock.sendall(f"{label} {os.getpid()}\n".encode())
        with sock.makefile("r", encoding="utf-8") as reader:
            answer = reader.readline().strip()
    return answer or "closed"


def remote_failure_in_a_dask_worker(value: int) -> int:
    raise ValueError(f"bad value {value} in pid {os.getpid()}")
