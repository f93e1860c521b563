"""``python -m atasker``: a live demo of the supervisor, drawn from its event bus.

::

    load thread ── submit ──> TaskSupervisor "demo" ─── every task's events ───┐
     the feed: thread,        thread pool 4 + 2 RN + 1 RH                      │
     process, coroutine       2 worker processes                   subscribe("*"): a
     tasks of each priority   aloop "demo" (coroutine tasks)       thread of its own
     the incidents: a crash,  class task demo/indexer                          │
     a time limit, a retry,     (start_task, emits "progress")                 v
     a cancel                                                   View: counts by kind,
                                                                state and priority,
    main thread: waits for a notable event or the next frame,   rates, recent events
    then draws the View ──> Screen: in place on a terminal, plain lines otherwise

The view knows only what the events say: nothing polls the supervisor. At the
end, or at Ctrl-C, the load stops, ``stop_task`` stops the class task and the
supervisor stops, on a thread of their own while the main thread goes on
drawing; then the summary. At the end the queued tasks drain (at most
``STOP_WAIT`` seconds); after Ctrl-C they are canceled.

Modules: ``tasks`` (what runs; worker processes import it), ``catalogue``
(the task names, kinds and incidents), ``load``, ``view``, ``draw`` and
``screen``, ``clock``, ``interrupts`` (Ctrl-C), ``summary``, ``runner``.
"""

from .runner import run

__all__ = ["run"]
