"""One run of the demo: start the supervisor and the load, draw until the
end or a Ctrl-C, stop on a thread of its own while drawing, then the summary."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import TextIO

from ..core.errors import UnknownTaskError
from ..core.task import TaskInfo
from ..supervisor import TaskSupervisor
from .catalogue import ALOOP, POOL_SIZE, PROCESSES, RESERVE_HIGH, RESERVE_NORMAL
from .clock import DRAINING, RUNNING, STOPPED, STOPPING, Clock
from .interrupts import (
    EXIT_INTERRUPTED,
    Interrupts,
    handling_interrupts,
    threads_deaf_to_ctrl_c,
)
from .load import Load
from .screen import FRAME_INTERVAL, Screen, make_screen
from .summary import summary
from .tasks import INDEXER, Indexer, ignore_interrupts, indexer_data
from .view import View, ViewLog

logger = logging.getLogger("atasker")

# How long the stop may take: at the end the queued tasks drain for at most
# this long (they are short, and at most MAX_QUEUED wait); after Ctrl-C they
# are canceled and the running ones get this long to end.
STOP_WAIT = 3.0
# Seconds the summary waits for the last events after the stop, at most.
DELIVERY_WAIT = 1.0


def make_supervisor() -> TaskSupervisor:
    supervisor = TaskSupervisor(
        supervisor_id="demo",
        pool_size=POOL_SIZE,
        reserve_normal=RESERVE_NORMAL,
        reserve_high=RESERVE_HIGH,
    )
    supervisor.log_exceptions = False  # failures are in the view
    # Long queue waits are the point here, not a warning.
    supervisor.timeout_warning = supervisor.timeout_critical = None
    supervisor.create_mp_pool(processes=PROCESSES, initializer=ignore_interrupts)
    supervisor.register_task(Indexer)
    return supervisor


class Stopper:
    """Stops the class task (``stop_task``), then the supervisor, on a thread
    of its own: the main thread goes on drawing meanwhile."""

    def __init__(
        self, supervisor: TaskSupervisor, indexer: TaskInfo, cancel: bool
    ) -> None:
        self._supervisor = supervisor
        self._indexer = indexer
        self._cancel = cancel
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo_stop")
        self._thread.start()

    def _run(self) -> None:
        try:
            if not self._indexer.done():
                # Ended meanwhile, and not kept (keep_finished=0): nothing to stop.
                with contextlib.suppress(UnknownTaskError):
                    self._supervisor.stop_task(self._indexer.id, wait=STOP_WAIT)
            self._supervisor.stop(wait=STOP_WAIT, cancel_tasks=self._cancel)
        except Exception:
            logger.exception("stopping the demo failed")
        finally:
            self.done.set()

    def hurry(self) -> None:
        """Ctrl-C while draining: cancel the queued tasks now (this stop()
        joins the one running and makes it more urgent)."""
        self._supervisor.stop(wait=STOP_WAIT, cancel_tasks=True)

    def join(self) -> None:
        self._thread.join()


def run(seconds: float, out: TextIO, plain: bool = False) -> int:
    """Run the demo for ``seconds``, writing to ``out``.

    Returns:
        The exit status: 0; EXIT_INTERRUPTED after a Ctrl-C; 1 if ``out``
        was a pipe that closed.
    """
    with handling_interrupts() as interrupts:
        clock = Clock(seconds)
        screen = make_screen(out, plain)
        view = View(time.time())
        supervisor = make_supervisor()
        subscription = supervisor.subscribe("*", view.on_event)
        log_handler = ViewLog(view)
        logging.getLogger("atasker").addHandler(log_handler)
        load: Load | None = None
        try:
            # Every thread that may start a worker process starts here.
            with threads_deaf_to_ctrl_c():
                supervisor.start()
                supervisor.create_aloop(ALOOP, default=True)
                indexer = supervisor.start_task(INDEXER, indexer_data(seconds))
                load = Load(supervisor, view, seconds)
                load.start()
            screen.begin(view, clock)
            _run_until_the_end(interrupts, screen, view, clock)
            load.stop()
            clock.stopped_at = clock.elapsed()
            if clock.interrupted_in is None:
                clock.phase = DRAINING
                view.stop_began("the end: stop_task, then stop(): queued tasks drain")
            else:
                clock.phase = STOPPING
                view.stop_began("Ctrl-C: stop_task, then stop(cancel_tasks=True)")
            stopper = Stopper(supervisor, indexer, cancel=clock.phase == STOPPING)
            _draw_while_stopping(interrupts, screen, view, clock, stopper)
            stopper.join()
            # A stop whose deadline passed returns before its subscriptions
            # delivered the last events (the cancels it made): wait for them.
            view.wait_all_ended(DELIVERY_WAIT)
            clock.phase = STOPPED
        finally:
            # Only if something above failed: the normal path stopped both.
            if load is not None:
                load.stop()
            if supervisor.active:
                supervisor.stop(wait=STOP_WAIT, cancel_tasks=True)
            logging.getLogger("atasker").removeHandler(log_handler)
            subscription.unsubscribe()
        screen.finish(view, clock)
        screen.write("\n".join(summary(view, clock, subscription.dropped)) + "\n")
    if screen.broken:
        return 1  # as Python's own recipe for a closed pipe
    return 0 if clock.interrupted_in is None else EXIT_INTERRUPTED


def _run_until_the_end(
    interrupts: Interrupts, screen: Screen, view: View, clock: Clock
) -> None:
    """Draw until the demo's time is up or a Ctrl-C."""
    try:
        while True:
            left = clock.seconds - clock.elapsed()
            if left <= 0:
                return
            interrupts.wait(view.notable, min(left, screen.wait_interval(clock)))
            view.notable.clear()
            screen.update(view, clock)
            if screen.broken:  # nobody reads any more: stop as at a Ctrl-C
                clock.interrupted_in = RUNNING
                return
    except KeyboardInterrupt:
        clock.interrupted_in = RUNNING


def _draw_while_stopping(
    interrupts: Interrupts, screen: Screen, view: View, clock: Clock, stopper: Stopper
) -> None:
    """Draw until the stop is done. A Ctrl-C while the queued tasks drain
    cancels them; one more changes nothing (the stop is bounded)."""
    while True:
        try:
            if interrupts.wait(stopper.done, FRAME_INTERVAL):
                return
        except KeyboardInterrupt:
            if clock.phase == DRAINING:
                clock.interrupted_in, clock.phase = DRAINING, STOPPING
                view.note("stop", "Ctrl-C: the queued tasks are canceled")
                stopper.hurry()
        screen.update(view, clock)
