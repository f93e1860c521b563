"""The scheduler registry: the workers (and other schedulers) a supervisor
stops when it stops.

A worker registers itself when it starts and unregisters when its driver
ends; ``register_scheduler`` (atasker 0.7's call) also runs a scheduler's
``loop()`` coroutine on the supervisor's own loop. A stop is bounded::

    stop_schedulers(deadline)
        1. every scheduler: stop(wait=False)   all are woken at once
        2. every scheduler: stop(wait=<time left to the deadline>)
        3. forget them all (a loop() still running is cancelled)

so N busy workers take at most the time left, not N times it. This module
knows nothing of the supervisor: it gets the loop to run ``loop()`` on as a
function.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from typing import Any, Callable

logger = logging.getLogger("atasker")


class SchedulerRegistry:
    """The schedulers of one supervisor; every method is thread-safe.

    Args:
        own_loop: returns the loop a scheduler's ``loop()`` coroutine runs on
            (the supervisor's own, started on first use).
    """

    def __init__(self, own_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
        self._own_loop = own_loop
        self._lock = threading.Lock()
        # Scheduler -> the future of its loop() coroutine, or None.
        self._schedulers: dict[Any, concurrent.futures.Future[Any] | None] = {}

    def reset_after_fork(self) -> None:
        """In a child made by os.fork(): no scheduler's loop runs there. Reset
        each that can be (workers), then forget them all."""
        for scheduler in self._schedulers:
            reset = getattr(scheduler, "_reset_after_fork", None)
            if reset is not None:
                reset()
        self._lock = threading.Lock()
        self._schedulers = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._schedulers)

    def register(self, scheduler: Any) -> bool:
        """Register ``scheduler``; its ``loop()`` coroutine, if it has one,
        runs on the own loop until it is unregistered.

        Returns:
            True.
        """
        future = None
        if callable(getattr(scheduler, "loop", None)):
            future = asyncio.run_coroutine_threadsafe(
                scheduler.loop(), self._own_loop()
            )
        with self._lock:
            previous = self._schedulers.get(scheduler)
            self._schedulers[scheduler] = future
        if previous is not None:
            previous.cancel()
        return True

    def register_sync(self, scheduler: Any) -> bool:
        """Register a scheduler that runs on its own.

        Returns:
            True.
        """
        with self._lock:
            self._schedulers.setdefault(scheduler, None)
        return True

    def unregister(self, scheduler: Any) -> bool:
        """Forget ``scheduler`` (its ``loop()`` is cancelled).

        Returns:
            False if it was not registered.
        """
        with self._lock:
            if scheduler not in self._schedulers:
                return False
            future = self._schedulers.pop(scheduler)
        if future is not None:
            future.cancel()
        return True

    def get(self) -> dict[Any, concurrent.futures.Future[Any] | None]:
        """A copy: scheduler -> the future of its ``loop()`` (None for a
        worker or another scheduler that runs on its own)."""
        with self._lock:
            return dict(self._schedulers)

    def stop_schedulers(self, deadline: float | None) -> None:
        """Stop every registered scheduler; return by ``deadline``.

        Each scheduler's ``stop()`` is asked first without waiting, so all
        wind down together, then again with the time left to the deadline
        (``stop(wait=True)`` if None). A scheduler's ``stop()`` that raises
        is logged; the others are still stopped.

        Args:
            deadline: a ``time.monotonic()`` value; None: no limit.
        """
        schedulers = list(self.get())
        for scheduler in schedulers:
            self._call_stop(scheduler, False)
        for scheduler in schedulers:
            if deadline is None:
                self._call_stop(scheduler, True)
            else:
                self._call_stop(scheduler, max(0.0, deadline - time.monotonic()))
        for scheduler in schedulers:
            self.unregister(scheduler)

    @staticmethod
    def _call_stop(scheduler: Any, wait: bool | float) -> None:
        # The scheduler's stop() is user code for a scheduler of the user's:
        # whatever it raises must not stop the supervisor's stop.
        try:
            scheduler.stop(wait=wait)
        except BaseException:
            logger.exception("stopping scheduler %r failed", scheduler)
