"""What a record knows of the workflow around it: its parent, the records
its links made, and a replacement running in its place.

::

    record final, with links: its waiters wait on ──> notify (user code)
        ──> links applied, then the waiters woken (record.children is whole
        when get(), wait(), await return) ──> hooks:
        COMPLETED          each link applied with the result first
        ERROR, EXCEPTION   each link_error applied with the record first
        each new record ──> record.children (a failed submit: a failed record)

    attempt raised Replace(sig) ──> sig submitted ──> record stays STARTED,
        its thread or worker free ──> the replacement is final ──> the record
        ends the same way (result, exception or cancel), same id

The signatures are the workflow package's; the record only calls their
``_apply_link`` and ``_apply_replacing``. A mixin of
:class:`~atasker.core.task.TaskInfo`, over
:class:`~atasker.core.attempts.TaskAttempts`: what it keeps is in ``_extra``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .attempts import FAILED_STATUSES, TaskAttempts, failed_status
from .constants import (
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TASK_STATUS_STARTED,
)
from .errors import Replace
from .options import TaskOptions
from .waiting import Defer, wake

if TYPE_CHECKING:
    from .task import TaskInfo


class TaskLinks(TaskAttempts):
    """The workflow side of a record (see the module docstring)."""

    __slots__ = ()

    @property
    def parent(self) -> Any:
        """What this task followed in a chain (a record) or a chord (the
        header's GroupResult); None otherwise."""
        extra = self._extra
        return None if extra is None else extra.parent

    @property
    def children(self) -> tuple[TaskInfo, ...]:
        """The records its links (``link``, ``link_error``) made, in order."""
        extra = self._extra
        return () if extra is None or not extra.children else tuple(extra.children)

    def _run_links(self, links: tuple[Any, ...], status: int, result: Any) -> None:
        """Apply ``links`` (those the outcome calls for: :func:`links_for`)
        with the result, or this record if it failed; then wake the waiters,
        which waited for them."""
        value = result if status == TASK_STATUS_COMPLETED else self
        with self._lock:
            extra = self._extra_locked()
            extra.links_pending = threading.get_ident()
            extra.children = []
        try:
            for link in links:
                child = link._apply_link(value, self)  # never raises
                with self._lock:
                    extra.children.append(child)
        finally:
            with self._lock:
                extra.links_pending = None
                waiters, self._waiters = self._waiters, None
            wake(waiters)

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
        if defer is None:
            self._start_replacement(signal.signature)
        else:  # submitting pickles user values: not on a manager thread
            defer(lambda: self._start_replacement(signal.signature))
        return True

    def _start_replacement(self, signature: Any) -> None:
        later = getattr(self._owner, "_run_user_code", None)
        try:
            replacement = signature._apply_replacing(self)
        except Exception as exc:  # it could not even be submitted
            self._finish(
                failed_status(exc),
                exception=exc,
                only_from=(TASK_STATUS_STARTED,),
                defer=later,
            )
            return
        with self._lock:
            self._extra_locked().replaced_by = replacement
        waker = _Replaced(self, replacement, later)
        if not replacement._add_waker(waker):
            waker.set()  # already final

    def _replacement(self) -> TaskInfo | None:
        """The record running in this one's place, if any."""
        extra = self._extra
        return None if extra is None else extra.replaced_by


def links_for(options: TaskOptions, status: int) -> tuple[Any, ...]:
    """The links a task that ended with ``status`` applies."""
    if status == TASK_STATUS_COMPLETED:
        return options.link
    if status in FAILED_STATUSES:
        return options.link_error
    return ()


class _Replaced:
    """Ends a replaced record as its replacement ended (a waiter of the
    replacement: runs in whichever thread finishes it)."""

    __slots__ = ("record", "replacement", "defer")

    def __init__(
        self, record: TaskLinks, replacement: TaskInfo, defer: Defer | None
    ) -> None:
        self.record = record
        self.replacement = replacement
        self.defer = defer

    def set(self) -> None:
        done = self.replacement
        started = (TASK_STATUS_STARTED,)
        if done.status == TASK_STATUS_COMPLETED:
            self.record._finish(
                TASK_STATUS_COMPLETED, done.result, only_from=started, defer=self.defer
            )
        elif done.status == TASK_STATUS_CANCELED:
            self.record._finish(
                TASK_STATUS_CANCELED,
                only_from=started,
                defer=self.defer,
                reason=done.cancel_reason,
            )
        else:
            self.record._finish(
                done.status,
                exception=done.exception,
                only_from=started,
                defer=self.defer,
            )
