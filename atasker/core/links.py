"""What a record knows of the workflow around it: its parent, the records
its links made, and a replacement running in its place.

::

    submit with link=, link_error= ──> each link a DELAYED record made at
        once, following the task (deps.Follow) ──> record.children
    task final ──> COMPLETED: the links run, fed the result; the error
        links are canceled (not taken) ── failed: the other way round

    attempt raised Replace(sig) ──> record stays STARTED, its thread or
        worker free ──> sig submitted (off internal threads) ──> the
        replacement final ──> the record ends the same way (result,
        exception or cancel), same id

The signatures are the workflow package's; the record only calls their
``_apply_replacing``. A mixin of :class:`~atasker.core.task.TaskInfo`, over
:class:`~atasker.core.attempts.TaskAttempts`: what it keeps is in
``_extra``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .attempts import FAILED_STATUSES, TaskAttempts, failed_status
from .constants import (
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TASK_STATUS_STARTED,
)
from .errors import Replace, SupervisorNotRunningError
from .waiting import Cascading, Defer

if TYPE_CHECKING:
    from .task import TaskInfo

# A replacement asked for, not submitted yet (replaced_by).
PENDING = "pending"


class TaskLinks(TaskAttempts):
    """The workflow side of a record (see the module docstring)."""

    __slots__ = ()

    @property
    def parent(self) -> Any:
        """What this task followed in a chain (a record), a chord (the
        header's GroupResult) or as a link (a record); None otherwise."""
        extra = self._extra
        return None if extra is None else extra.parent

    @property
    def children(self) -> tuple[TaskInfo, ...]:
        """The records of its links, in order: all of them while it runs;
        once it has ended, those its outcome runs (``link`` after success,
        ``link_error`` after a failure; the others end canceled)."""
        extra = self._extra
        if extra is None or not extra.children:
            return ()
        status = self.status
        if status == TASK_STATUS_COMPLETED:
            taken: tuple[str, ...] = ("link",)
        elif status in FAILED_STATUSES:
            taken = ("link_error",)
        elif status == TASK_STATUS_CANCELED:
            taken = ()
        else:
            taken = ("link", "link_error")
        return tuple(child for kind, child in extra.children if kind in taken)

    def _replace(
        self, signal: Replace, defer: Defer | None, attempt: int | None
    ) -> bool:
        """The attempt raised ``Replace``: run its signature in this task's
        place. True if this call made a transition."""
        with self._lock:
            extra = self._extra_locked()
            if self.status != TASK_STATUS_STARTED or (
                attempt is not None and attempt != extra.attempt
            ):
                return False
            extra.replaced_by = PENDING  # a cancel now ends it (dispatch)
        if defer is None:
            self._start_replacement(signal.signature)
        else:  # submitting pickles user values: not on a manager thread
            defer(lambda: self._start_replacement(signal.signature))
        return True

    def _start_replacement(self, signature: Any) -> None:
        later = getattr(self._owner, "_run_user_code", None)
        if self.status != TASK_STATUS_STARTED:
            return  # canceled while the replacement was pending
        try:
            replacement = signature._apply_replacing(self)
        except SupervisorNotRunningError:  # a stop came first: as its tasks
            self._finish(
                TASK_STATUS_CANCELED,
                only_from=(TASK_STATUS_STARTED,),
                defer=later,
                reason="stopped",
            )
            return
        except Exception as exc:  # it could not even be submitted
            self._finish(
                failed_status(exc),
                exception=exc,
                only_from=(TASK_STATUS_STARTED,),
                defer=later,
            )
            return
        with self._lock:
            ended = self.status != TASK_STATUS_STARTED
            if not ended:
                self._extra_locked().replaced_by = replacement
        if ended:  # canceled while it was being submitted
            replacement.cancel(self.cancel_reason)
            return
        waker = _Replaced(self, replacement, later)
        if not replacement._add_waker(waker):
            waker.set()  # already final

    def _replacement(self) -> Any:
        """The record running in this one's place, PENDING while it is
        being submitted, or None."""
        extra = self._extra
        return None if extra is None else extra.replaced_by


class _Replaced(Cascading):
    """Ends a replaced record as its replacement ended (a waiter of the
    replacement, run in whichever thread finishes it; a cascade, so that a
    task replaced a thousand times does not recurse a thousand deep)."""

    __slots__ = ("record", "replacement", "defer")

    def __init__(
        self, record: TaskLinks, replacement: TaskInfo, defer: Defer | None
    ) -> None:
        self.record = record
        self.replacement = replacement
        self.defer = defer

    def _fire(self) -> None:
        done, record = self.replacement, self.record
        # Its outcome as it is: a result, an exception or a cancel reason
        # (the fields of the other outcomes are None).
        record._finish(
            done.status,
            done.result,
            done.exception,
            only_from=(TASK_STATUS_STARTED,),
            defer=self.defer,
            reason=done.cancel_reason,
        )
        with record._lock:  # it ran: a finished record must not keep it
            extra = record._extra
            if extra is not None:
                extra.replaced_by = None
