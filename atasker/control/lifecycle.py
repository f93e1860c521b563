"""The supervisor's lifecycle: one state machine, every transition serialized.

::

    NEW ──start()──> RUNNING ──stop()──> STOPPING ──(the stop is done)──> STOPPED
                        ^                                                    │
                        └─────────────────────── start() ────────────────────┘

- ``start()`` during STOPPING waits until STOPPED, then starts fresh.
- ``stop()`` during STOPPING joins the stop under way and returns when it is
  done; it may only make it more urgent (an earlier deadline, cancel_tasks).
- The stop runs on a thread of its own (``supervisor_<id>_stop``); a
  ``stop()`` caller only waits for it, within its own bound. So a Ctrl-C
  interrupts the wait, never the stop, and user code that the stop runs
  (workers' stop hooks, done callbacks of canceled tasks) can call
  ``stop()`` again without waiting for itself. Two kinds of caller do not
  wait at all:

  * a thread the supervisor owns (a pool thread, a callback thread, an aloop
    or its executor): the stop waits for running tasks, and the caller is
    one of them;
  * a signal handler that interrupted atasker code in the main thread: that
    code may hold a lock the stop needs, so not even the transition happens
    in that thread.

  ``block()`` returns when the stop is done.

At interpreter exit a started supervisor is stopped (as concurrent.futures
does), before the interpreter joins its non-daemon threads, so an aloop
cannot keep it alive. In a child made by ``os.fork()`` no thread of the
parent exists: every supervisor there is reset to a stopped one that can be
started again.
"""

from __future__ import annotations

import concurrent.futures.thread  # noqa: F401 - see _register_exit below
import logging
import os
import sys
import threading
import time
import weakref
from typing import Callable, Protocol

from ..pools.executors import calling

logger = logging.getLogger("atasker")

NEW = "new"
RUNNING = "running"
STOPPING = "stopping"
STOPPED = "stopped"

# Seconds a stop(wait=N) caller waits past N for the stop to report done: the
# stop itself keeps to N; this covers the last joins and a clock tick.
STOP_GRACE = 1.0

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Modules that only call user code and hold none of our locks meanwhile:
# their frames below a stop() do not mean a signal handler interrupted us.
_WRAPPERS = frozenset(
    os.path.join(_PACKAGE_DIR, *name.split("/"))
    for name in (
        "api.py",
        "extras/collections.py",
        "extras/locker.py",
        "extras/local.py",
    )
)

# The threads a supervisor names supervisor_<id>_<kind>...
_THREAD_KINDS = ("pool_", "timer", "aloop_", "mp_", "stop", "callbacks", "events")


class StopRequest:
    """One stop under way, shared by every ``stop()`` that joins it.

    Attributes:
        stop_schedulers: stop the workers and other schedulers first.
        done: set when the supervisor is STOPPED.
    """

    def __init__(
        self, deadline: float | None, cancel_tasks: bool, stop_schedulers: bool
    ) -> None:
        self._deadline = deadline
        self._cancel_tasks = cancel_tasks
        self.stop_schedulers = stop_schedulers
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def deadline(self) -> float | None:
        """The ``time.monotonic()`` value to stop by; None: no limit."""
        return self._deadline

    @property
    def cancel_tasks(self) -> bool:
        """Cancel queued tasks at once instead of letting them run."""
        return self._cancel_tasks

    def on_hurry(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` whenever a later stop() makes this one more urgent."""
        with self._lock:
            self._listeners.append(listener)

    def hurry(self, deadline: float | None, cancel_tasks: bool) -> None:
        """Take an earlier deadline and ``cancel_tasks`` from a later stop()."""
        with self._lock:
            changed = False
            if deadline is not None and (
                self._deadline is None or deadline < self._deadline
            ):
                self._deadline = deadline
                changed = True
            if cancel_tasks and not self._cancel_tasks:
                self._cancel_tasks = True
                changed = True
            listeners = list(self._listeners) if changed else []
        for listener in listeners:
            listener()


class Stoppable(Protocol):
    """What the lifecycle asks of its owner."""

    id: str

    def _after_fork_in_child(self) -> None: ...

    def _stop_at_exit(self) -> None: ...


class Lifecycle:
    """The state of one supervisor; see the module docstring.

    Args:
        name: the owner's id: its threads are named ``supervisor_<name>_...``.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.state = NEW
        self._request: StopRequest | None = None
        self._thread_prefix = f"supervisor_{name}_"

    def __repr__(self) -> str:
        return f"<Lifecycle {self.name!r} {self.state}>"

    def owns_current_thread(self) -> bool:
        """True in a thread of the supervisor (every one is named for it:
        ``supervisor_<id>_<kind>``, so supervisor ``x`` does not take the
        threads of supervisor ``x_y`` for its own)."""
        if getattr(calling, "owner", None) == self.name:
            return True  # a task of ours in an external pool's thread
        name = threading.current_thread().name
        if not name.startswith(self._thread_prefix):
            return False
        return name[len(self._thread_prefix) :].startswith(_THREAD_KINDS)

    def start(self, do_start: Callable[[], None]) -> bool:
        """Run ``do_start()`` and enter RUNNING; False if already running.

        ``do_start`` runs under the lifecycle's lock, so a concurrent stop()
        waits for it: it must only build and start components, never wait.

        Raises:
            RuntimeError: called from a thread of the supervisor while it
                stops (it would wait for itself).
        """
        with self._lock:
            if self.state == STOPPING and self.owns_current_thread():
                raise RuntimeError(
                    f"supervisor {self.name}: start() from one of its own threads "
                    "while it stops would wait for itself; start it again from "
                    "another thread once block() returns"
                )
            while self.state == STOPPING:
                self._changed.wait()
            if self.state == RUNNING:
                return False
            do_start()
            self.state = RUNNING
            self._changed.notify_all()
        return True

    def stop(
        self,
        deadline: float | None,
        cancel_tasks: bool,
        stop_schedulers: bool,
        do_stop: Callable[[StopRequest], None],
    ) -> bool:
        """Stop, or join the stop under way; see the module docstring.

        Not for a signal handler: see :func:`interrupts_atasker_code`.

        Returns:
            False if there was nothing to stop (NEW or STOPPED).
        """
        can_wait = not self.owns_current_thread()
        with self._lock:
            if self.state == RUNNING:
                request = StopRequest(deadline, cancel_tasks, stop_schedulers)
                self._request = request
                self.state = STOPPING
                begun = True
            elif self.state == STOPPING:
                assert self._request is not None
                request = self._request
                begun = False
            else:
                return False
        if begun:
            logger.info("supervisor %s stopping", self.name)
            stopper = threading.Thread(
                target=self._run_stop,
                args=(request, do_stop),
                name=f"{self._thread_prefix}stop",
                daemon=True,
            )
            try:
                stopper.start()
            except RuntimeError:  # no thread to be had: stop here, or never
                logger.warning("supervisor %s: stopping in the caller", self.name)
                self._run_stop(request, do_stop)
        else:
            logger.debug("supervisor %s: stop() joins the stop under way", self.name)
            request.hurry(deadline, cancel_tasks)
        if can_wait:
            remaining = None if deadline is None else deadline - time.monotonic()
            request.done.wait(
                None if remaining is None else max(0.0, remaining) + STOP_GRACE
            )
        return True

    def _run_stop(
        self, request: StopRequest, do_stop: Callable[[StopRequest], None]
    ) -> None:
        try:
            do_stop(request)
        except BaseException:  # user code may run here: it must not stop us
            logger.exception("supervisor %s: error while stopping", self.name)
        finally:
            with self._lock:
                self.state = STOPPED
                self._request = None
                self._changed.notify_all()
            request.done.set()
            logger.info("supervisor %s stopped", self.name)

    def wait_stopped(self) -> None:
        """Block while RUNNING or STOPPING (at once if NEW or STOPPED)."""
        with self._lock:
            while self.state in (RUNNING, STOPPING):
                self._changed.wait()

    def reset_after_fork(self) -> None:
        """In a forked child: fresh locks; a running supervisor is STOPPED."""
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        if self.state in (RUNNING, STOPPING):
            self.state = STOPPED
        self._request = None


def interrupts_atasker_code() -> bool:
    """True in the main thread when atasker code is on the stack below the
    caller of stop(): only a signal handler can have interrupted it there
    (user code that atasker calls never runs in the main thread under one of
    our locks, but telling the cases apart is not possible, so both go to a
    thread of their own)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    frame = sys._getframe(1)
    # Skip the stop() call itself: the frames of this package on top.
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(_PACKAGE_DIR) and filename not in _WRAPPERS:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


# Every supervisor, for the exit hook and the fork reset.
_supervisors: weakref.WeakSet[Stoppable] = weakref.WeakSet()


def track(supervisor: Stoppable) -> None:
    """Stop ``supervisor`` at interpreter exit; reset it in a forked child."""
    _supervisors.add(supervisor)


def _stop_all_at_exit() -> None:
    for supervisor in list(_supervisors):
        try:
            supervisor._stop_at_exit()
        except Exception:
            logger.exception("stopping supervisor %s at exit failed", supervisor.id)


def _reset_all_after_fork() -> None:
    for supervisor in list(_supervisors):
        supervisor._after_fork_in_child()


# threading's own exit hooks run before the interpreter joins non-daemon
# threads (concurrent.futures uses the same hook); atexit would run after,
# too late for a non-daemon aloop. They run last registered first: importing
# concurrent.futures.thread above registers its hook before ours, so ours
# runs while coroutines being drained can still use run_in_executor.
_register_exit = getattr(threading, "_register_atexit", None)
if _register_exit is not None:
    _register_exit(_stop_all_at_exit)
else:  # pragma: no cover - every supported Python has it
    import atexit

    atexit.register(_stop_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_all_after_fork)
