"""A thread of the process pool that runs user code, and cannot be killed by it.

The pool's manager never runs user code. What needs it (the user's
callbacks of a finished process task; decoding a result whose classes live
in the user's modules) is queued here and run in order on a thread of its
own. A ``BaseException`` from a job is caught and logged; if the thread ends
anyway, the next job starts a new one, so queued work always runs.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

logger = logging.getLogger("atasker")


class UserCodeThread:
    """Runs queued zero-argument functions in order on one thread.

    Args:
        name: the thread's name.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def put(self, job: Callable[[], object]) -> None:
        """Run ``job`` on the thread (started, or restarted, if needed)."""
        self._jobs.put(job)
        with self._lock:
            if self._closed:
                self._jobs.put(None)  # a late job: run it, then end again
            thread = self._thread
            if thread is None or not thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name=self._name, daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except BaseException:  # user code must not end this thread
                logger.exception("a process task's callback failed")
            del job

    def close(self, timeout: float | None = None) -> None:
        """Run what is queued, then end the thread (joined up to ``timeout``)."""
        with self._lock:
            thread = self._thread
            self._closed = True
        if thread is None:
            return
        self._jobs.put(None)
        if thread is not threading.current_thread():
            thread.join(timeout)
