"""ClassRun: the supervisor's side of one class task record.

It reaches the instance directly (a LocalRun, for a thread or coroutine
task) or over the pipe (a process task: the pool's send_control)::

    request(stop | reload) ──> the run attached now takes it
                           └─> none (between attempts, or a process task):
                               kept; the next attempt's run takes it as it
                               attaches, or, for a reload, a new record with
                               the same id starts when this one ends
    a run's reload begins  ──> acknowledged: ``reloads`` counts it

A stop drops a reload not done yet; the last data given is what a retry, a
restart or a reload without data runs with.
"""

from __future__ import annotations

import threading
from typing import Any

from ..core.constants import TT_MP
from ..core.events import EventBus
from ..core.options import TaskOptions
from ..core.task import TaskInfo
from ..pools.mpcodec import CONTROL, encode_json
from ..pools.processpool import ProcessPool
from .base import Task
from .run import NOTHING, LocalRun


class ClassRun:
    """The supervisor's side of one class task record (see the module
    docstring). Guarded by its own lock; never takes a record's lock while
    holding it."""

    def __init__(
        self,
        task_class: type[Task],
        options: TaskOptions,
        data: dict[str, Any],
        reloads: int,
        events: EventBus,
    ) -> None:
        self.task_class = task_class
        self.options = options
        self.data = data  # the last data: what a restart starts with
        self.reloads = reloads
        self.task_id = ""  # the record's, once submitted
        self._events = events
        self._lock = threading.Lock()
        self._local: LocalRun | None = None
        self._pending: Any = NOTHING  # a reload sent over the pipe, not acknowledged
        self._ended = False
        self._stop_early = False  # a stop asked before the run attached

    def attach(self, local: LocalRun) -> dict[str, Any]:
        """A thread or coroutine task's run (an attempt) begins: requests go
        to it from now on. The data it starts with: the last given (a
        reload asked before it attached is taken here, and counted); a stop
        asked before is handed to it."""
        with self._lock:
            self._local = local
            stop, self._stop_early = self._stop_early, False
            reload, self._pending = self._pending, NOTHING
            data = self.data
        if reload is not NOTHING:
            self.acknowledged(reload)
        if stop:
            local.request()
        return data

    def detach(self, local: LocalRun) -> None:
        """The run ended: a request that comes now waits for the next
        attempt's run (a retry), or for the record's end."""
        with self._lock:
            if self._local is local:
                self._local = None

    def acknowledged(self, data: Any) -> None:
        """A reload began its new run with ``data``."""
        with self._lock:
            self.reloads += 1
            if self._pending == data:  # not a newer one, still on its way
                self._pending = NOTHING
        events = self._events
        if events.active:
            events.publish(self.task_id, self.options.name, "reloaded", data)

    def request(self, record: TaskInfo, reload: Any = NOTHING) -> bool:
        """Ask the running task to stop (or reload); False if its record
        ended (a reload must then start a new record).

        Until a run takes it, a request is kept: the next attempt's run
        takes it as it attaches, and a reload that none took starts a new
        record as this one ends. A stop drops a reload not done yet.
        """
        with self._lock:
            if self._ended:
                return False
            if reload is NOTHING:
                self._stop_early = record.tt != TT_MP
                self._pending = NOTHING
            else:
                self.data = reload  # the last data given, from now on
                self._pending = reload
            local = self._local
        if local is not None:
            if local.request(reload):
                with self._lock:  # it took it
                    if reload is NOTHING:
                        self._stop_early = False
                    elif self._pending is reload:
                        self._pending = NOTHING
            return True
        if record.tt == TT_MP and isinstance(record.handle, ProcessPool):
            message = {} if reload is NOTHING else {"reload": reload}
            record.handle.send_control(record, encode_json(CONTROL, message))
        return True

    def ended(self) -> Any:
        """The record is final: a reload no run took, or NOTHING (once:
        whoever calls this first starts it again)."""
        with self._lock:
            self._ended = True
            self._local = None
            pending, self._pending = self._pending, NOTHING
            return pending
