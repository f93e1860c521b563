"""What a process task says back, given to its record.

::

    worker ── STATE + pickle   update_state()  ──> the record's state, meta
           ── EVENT + json     emit()          ──> the supervisor's event bus
           ── outcome pickle   it returned or raised ──> the record is final

The pool's manager decodes what needs no user code (JSON, or a pickle of
builtins and atasker's errors: see mpcodec) and finishes the record itself,
so that the record's waiters are woken at once, in the manager. A message
that names a class of the user's modules is decoded on the decoder thread,
which may run user code (an import, a ``__setstate__``), and the record is
finished there; from then on a task's messages all go there, in order. The
record's user callbacks (hooks, ``callback``, done callbacks) are handed to
the callbacks thread: no waiter and no decoding ever waits behind them.
"""

from __future__ import annotations

import logging

from ..core.task import TaskInfo
from .mpchannel import Message
from .mpcodec import (
    NeedsUserCode,
    Outcome,
    RemoteTraceback,
    decode_json,
    decode_outcome,
    decode_state,
)
from .mproster import Worker
from .mpthreads import UserCodeThread

logger = logging.getLogger("atasker")


class Outcomes:
    """Gives records what their tasks say back (see the module docstring).

    Args:
        callbacks: runs the records' user callbacks.
        decoder: decodes what needs user code, and finishes those records.
    """

    __slots__ = ("callbacks", "decoder")

    def __init__(self, callbacks: UserCodeThread, decoder: UserCodeThread) -> None:
        self.callbacks = callbacks
        self.decoder = decoder

    def ended(self, task: TaskInfo, data: Message, in_order: bool) -> None:
        """The task's outcome came: finish its record now, or on the decoder
        thread if decoding needs user code or ``in_order`` (its state
        updates went there)."""
        if not in_order:
            try:
                outcome = decode_outcome(data, user_code=False)
            except NeedsUserCode:  # classes of user modules
                pass
            else:
                self.finish(task, outcome)
                return
        self.decoder.put(lambda: self.finish(task, decode_outcome(data, True)))

    def finish(self, task: TaskInfo, outcome: Outcome) -> None:
        """Give the record its outcome: final (or another attempt follows)."""
        ok, value, text, retryable = outcome
        if ok:
            task.set_result(value, defer=self.callbacks.put)
            return
        if text:
            value.__cause__ = RemoteTraceback(text)
        task.set_exception(value, defer=self.callbacks.put, retryable=retryable)

    @staticmethod
    def emitted(worker: Worker, data: Message) -> None:
        """The running task emitted an event (JSON: no user code to decode)."""
        task = worker.task
        if task is None:
            return
        try:
            event, value = decode_json(data)
        except (ValueError, TypeError):
            logger.exception("task %s: an event it emitted could not be read", task.id)
            return
        task._emit(event, value)

    def state_update(self, worker: Worker, data: Message) -> None:
        """The running task called update_state(): its record shows it.

        What needs user code to decode goes to the decoder thread, and from
        then on all that comes from this task (its outcome too), in order.
        """
        task = worker.task
        if task is None:
            return

        def apply(user_code: bool) -> None:
            try:
                state, meta = decode_state(data, user_code)
            except NeedsUserCode:
                raise
            except BaseException:  # unpickling is user code
                logger.exception(
                    "task %s: its update_state() could not be read", task.id
                )
                return
            task._update_state(state, meta)

        if worker.decoding:
            self.decoder.put(lambda: apply(True))
            return
        try:
            apply(False)
        except NeedsUserCode:  # classes of user modules: decode where user code may
            worker.decoding = True
            self.decoder.put(lambda: apply(True))
