"""Class tasks on a supervisor: registration, start, stop, reload, restart.

::

    register_task(cls)  ──> class_options(cls): checked once
    start_task(name, data) ──> a record whose target is run_class(cls, **data),
                               with a ClassRun (record._extra.class_run)
    stop_task(id)       ──> queued: CANCELED "stopped"; running: the record's
                            cancel_requested = "stopped", the run asked to stop
    reload_task(id, d)  ──> running: the run asked to reload with d (the same
                            record); otherwise a new record with the same id
    restart_task(id)    ──> finished: a new record with the same id, last data

How a request reaches the instance is classrun.py's; how the instance runs,
run.py's.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any

from ..core.constants import (
    FINAL_STATUSES,
    TASK_STATUS_CANCELED,
    TASK_STATUS_STARTED,
    TT_COROUTINE,
)
from ..core.errors import SupervisorNotRunningError, UnknownTaskError
from ..core.events import EventBus
from ..core.jsonvalues import check_json
from ..core.options import TaskOptions
from ..core.task import TaskInfo
from ..core.validation import check_wait
from ..pools.mpcodec import pickle_payload, wire_info
from .base import NOT_CLASS_OPTIONS, Task, class_options, task_type_of
from .builtin import BUILTIN_TASKS
from .classrun import ClassRun
from .run import NOTHING, run_class, run_class_async

if TYPE_CHECKING:
    from ..core.registry import TaskRegistry


class ClassTaskControl:
    """Class tasks on the supervisor (mixed into it)."""

    id: str
    _registry: TaskRegistry
    _events: EventBus

    if TYPE_CHECKING:  # the supervisor's other parts'

        def _submit(self, *args: Any, **kwargs: Any) -> TaskInfo: ...

        def get_task(self, task_id: TaskInfo | str) -> TaskInfo | None: ...

    def __init__(self) -> None:
        super().__init__()
        self._classes_lock = threading.Lock()
        self._task_classes: dict[str, tuple[type[Task], TaskOptions]] = {}
        self.register_tasks(*BUILTIN_TASKS)

    @property
    def task_classes(self) -> dict[str, type[Task]]:
        """The registered class tasks, by name."""
        with self._classes_lock:
            return {name: entry[0] for name, entry in self._task_classes.items()}

    def register_task(self, task_class: type[Task]) -> type[Task]:
        """Register a class task under its NAME (its options are checked
        now); return the class, so this works as a class decorator too.
        Registering the same class again does nothing.

        Raises:
            TypeError: not a Task subclass, no start(), a bad option value
                (named: ``Poller.PRIORITY: ...``).
            ValueError: no NAME, or another class has it.
        """
        options = class_options(task_class)
        name = task_class.NAME
        assert name is not None
        with self._classes_lock:
            known = self._task_classes.get(name)
            if known is not None and known[0] is not task_class:
                raise ValueError(
                    f"{task_class.__name__}.NAME: {name!r} is already the name "
                    f"of {known[0].__module__}.{known[0].__qualname__}"
                )
            self._task_classes[name] = (task_class, options)
        return task_class

    def register_tasks(self, *task_classes: type[Task]) -> None:
        """:meth:`register_task` for each."""
        for task_class in task_classes:
            self.register_task(task_class)

    def start_task(
        self,
        name: str,
        data: dict[str, Any] | None = None,
        task_id: str | None = None,
        **options: Any,
    ) -> TaskInfo:
        """Start the class task registered as ``name`` with ``data`` (its
        ``__init__``'s keyword arguments, JSON values); ``options`` replace
        its class's.

        Returns:
            Its record.

        Raises:
            UnknownTaskError: no class task has that name here.
            TypeError: ``data`` is not a dict of JSON values (the message
                names the value), or a bad option.
            SupervisorNotRunningError: the supervisor is not started.
        """
        with self._classes_lock:
            entry = self._task_classes.get(name)
        if entry is None:
            raise UnknownTaskError(
                f"no class task is registered as {name!r} on supervisor "
                f"{self.id} (register_task() registers one)"
            )
        task_class, class_options_ = entry
        resolved = class_options_
        if options:
            refused = NOT_CLASS_OPTIONS.intersection(options) - {"name"}
            if refused:
                raise TypeError(
                    f"{', '.join(sorted(refused))}: not an option of a class task"
                )
            resolved = task_type_of(
                task_class, class_options_.replace(**options), "tt" in options, "tt"
            )
        data = _check_data(data)
        task_class._check(data)
        return self._start_class(task_class, resolved, data, task_id, 0)

    start_local_task = start_task  # pytask's name: here there is one worker

    def stop_task(self, task_id: str, wait: bool | float = True) -> TaskInfo:
        """Stop a class task: one that has not started is CANCELED now; a
        running one has ``stopping`` set and ``stop()`` called, and ends
        CANCELED ("stopped") once its ``start`` returns (if that raises, the
        failure is its status). A task that ignores the request runs on
        until its time limit, if any.

        Args:
            wait: True waits until the task has ended, a number that many
                seconds at most, False not at all.

        Returns:
            Its record.

        Raises:
            UnknownTaskError: no record has that id (any more).
            ValueError: it is not a class task.
        """
        deadline = check_wait(wait)
        record, run = self._class_record(task_id)
        self._stop_class(record, run)
        if deadline is None:
            record.wait()
        else:
            record.wait(max(0.0, deadline - time.monotonic()))
        return record

    def reload_task(self, task_id: str, data: dict[str, Any] | None = None) -> TaskInfo:
        """Stop a running class task's instance and start a new one with
        ``data`` (None: its last data), under the same record
        (``record.reloads`` counts). A task that has not started, or has
        ended, starts again as a new record with the same id.

        Raises:
            UnknownTaskError: no record has that id (any more).
            ValueError: it is not a class task.
            TypeError: ``data`` is not a dict of JSON values.
        """
        record, run = self._class_record(task_id)
        new = run.data if data is None else _check_data(data)
        run.task_class._check(new)
        # Until one holds (its status may change meanwhile).
        while not record._cancel_waiting("reloaded") and not record.is_completed():
            if record.status == TASK_STATUS_STARTED and run.request(record, new):
                return record
        run.ended()  # its end starts nothing now: this does
        return self._start_class(
            run.task_class, run.options, new, record.id, run.reloads + 1
        )

    def restart_task(self, task_id: str) -> TaskInfo:
        """Start a class task that has ended again, with its last data, as a
        new record with the same id; a running one is reloaded (the same
        record); a queued one is left as it is.

        Raises:
            UnknownTaskError: its record is no longer kept (``keep_finished``).
            ValueError: it is not a class task.
        """
        record, run = self._class_record(task_id)
        if record.status == TASK_STATUS_STARTED:
            return self.reload_task(task_id)
        if record.status not in FINAL_STATUSES:
            return record
        return self._start_class(
            run.task_class, run.options, run.data, record.id, run.reloads
        )

    def _class_record(self, task_id: Any) -> tuple[TaskInfo, ClassRun]:
        record = self.get_task(task_id)
        if record is None:
            raise UnknownTaskError(
                f"no record of task {task_id!r}: unknown, or finished and no "
                f"longer kept (keep_finished={self._registry.keep_finished}, "
                f"keep_finished_age={self._registry.keep_finished_age})"
            )
        run = record._class_run()
        if not isinstance(run, ClassRun):
            raise ValueError(
                f"task {record.id} ({record.name}) is not a class task: "
                "cancel() it instead"
            )
        return record, run

    def _start_class(
        self,
        task_class: type[Task],
        options: TaskOptions,
        data: dict[str, Any],
        task_id: str | None,
        reloads: int,
    ) -> TaskInfo:
        run = ClassRun(task_class, options, data, reloads, self._events)
        target = run_class_async if options.tt == TT_COROUTINE else run_class
        record = self._submit(
            target,
            (task_class,),
            dict(data),
            options,
            options.tt,
            plain=False,
            task_id=task_id,
            class_run=run,
        )
        run.task_id = record.id
        record.add_done_callback(self._class_task_ended)
        return record

    def _class_task_ended(self, record: TaskInfo) -> None:
        """A class task's record is final: a reload that did not reach its
        process starts it again."""
        run = record._class_run()
        if run is None:
            return
        pending = run.ended()
        if pending is NOTHING or record.status == TASK_STATUS_CANCELED:
            return  # nothing asked, or canceled: it stays so
        with contextlib.suppress(SupervisorNotRunningError):  # it stopped meanwhile
            self._start_class(
                run.task_class, run.options, pending, record.id, run.reloads + 1
            )

    def _class_task_reloaded(self, record: TaskInfo, data: Any) -> None:
        """A process class task's worker began the run of a reload: a retry
        runs with this data from now on."""
        run = record._class_run()
        if run is None:
            return
        run.acknowledged(data)
        payload = pickle_payload(run_class, (run.task_class,), data, wire_info(record))
        with record._lock:
            if record.status not in FINAL_STATUSES:  # final: it keeps none
                record.payload = payload

    def _stop_class(self, record: TaskInfo, run: ClassRun) -> None:
        """Ask a class task to stop, whatever its state (see stop_task)."""
        while not record.is_completed():
            if record._cancel_waiting("stopped"):
                return
            if record.tt == TT_COROUTINE:
                # Not a cancel of its coroutine: run_class_async notes it.
                if record.status == TASK_STATUS_STARTED:
                    run.request(record)
                    return
            elif record._request_cancel("stopped"):
                run.request(record)
                return
            # Between two attempts (a retry): it is waiting again, or ended.

    def _stop_class_tasks(self) -> None:
        """The supervisor stops: every class task is asked to stop."""
        for record in self._registry.active():
            run = record._class_run()
            if run is not None:
                self._stop_class(record, run)


def _check_data(data: Any) -> dict[str, Any]:
    """A class task's data: a dict of JSON values with str keys."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TypeError(f"data must be a dict of JSON values or None; got {data!r}")
    checked: dict[str, Any] = check_json(data, "data")
    return checked
