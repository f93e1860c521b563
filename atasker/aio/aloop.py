"""ALoop: an asyncio event loop running in a thread of its own.

::

    create/start ──> thread: new loop, hand it back through a Future, run_forever
    run(coro)             ──> run_coroutine_threadsafe(...).result()  (other threads)
    background_task(coro) ──> TaskInfo, the coroutine runs as an asyncio task
    stop(wait, cancel)    ──> in the loop: wait for (or cancel) its tasks; then
                              loop.stop(); the thread closes async generators
                              and the default executor, closes the loop; join
                              (not from the loop's own thread: the loop stops
                              once the caller's callback returns)

Readiness is handed back through a ``concurrent.futures.Future``, so
``start()`` returns only once the loop runs, and nothing polls for it. A
blocking call from the loop's own thread would wait for itself for ever, so
:meth:`ALoop.run` refuses it with a clear error.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Coroutine
from typing import Any, Protocol

from ..core.constants import TASK_NORMAL, TT_COROUTINE
from ..core.errors import WaitTimeoutError
from ..core.task import TaskInfo
from ..core.validation import check_wait

logger = logging.getLogger("atasker")

# Seconds a stop waits past its deadline for tasks it cancelled to end, then
# for the loop's thread to close the loop.
STOP_GRACE = 1.0



class TaskOwner(Protocol):
    """What an ALoop needs of its supervisor."""

    id: str

    def submit(
        self,
        target: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        **options: Any,
    ) -> TaskInfo: ...


class ALoop:
    """An asyncio loop in a thread named ``supervisor_<id>_aloop_<name>``.

    Args:
        name: the loop's name.
        supervisor: the supervisor that owns it (names the thread, records
            coroutine tasks).
        daemon: run the thread as a daemon thread.
    """

    def __init__(self, name: str, supervisor: TaskOwner, daemon: bool = False) -> None:
        self.name = name
        self.supervisor = supervisor
        self.daemon = daemon
        self.thread_name = f"supervisor_{supervisor.id}_aloop_{name}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # Seconds the thread gives its executor at the end; None: no limit.
        self._grace: float | None = None

    def __repr__(self) -> str:
        return f"<ALoop {self.name!r} active={self.active}>"

    @property
    def active(self) -> bool:
        """True while the loop runs."""
        loop = self._loop
        return loop is not None and loop.is_running()

    def is_active(self) -> bool:
        """True while the loop runs (atasker 0.7's call)."""
        return self.active

    def get_loop(self) -> asyncio.AbstractEventLoop:
        """The asyncio loop.

        Raises:
            RuntimeError: the ALoop is not started.
        """
        loop = self._loop
        if loop is None:
            raise RuntimeError(f"aloop {self.name!r} is not started: call start()")
        return loop

    def start(self) -> None:
        """Start the thread and return once its loop runs (no-op if it does)."""
        with self._lock:
            if self._thread is not None:
                return
            ready: concurrent.futures.Future[asyncio.AbstractEventLoop] = (
                concurrent.futures.Future()
            )
            self._thread = threading.Thread(
                target=self._run,
                args=(ready,),
                name=self.thread_name,
                daemon=self.daemon,
            )
            self._thread.start()
            self._loop = ready.result()

    def _run(self, ready: concurrent.futures.Future[asyncio.AbstractEventLoop]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        # Named for the aloop, so run_in_executor code is known as ours (a
        # stop from there must not wait for itself).
        loop.set_default_executor(
            concurrent.futures.ThreadPoolExecutor(
                thread_name_prefix=f"{self.thread_name}_executor"
            )
        )
        loop.call_soon(ready.set_result, loop)
        try:
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            # A bounded stop does not wait for ever for a blocked executor job.
            loop.run_until_complete(
                asyncio.wait_for(loop.shutdown_default_executor(), self._grace)
            )
        except asyncio.TimeoutError:
            logger.warning("aloop %s: an executor job outlived the stop", self.name)
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    def _refuse_own_thread(self, what: str) -> None:
        if threading.current_thread() is self._thread:
            raise RuntimeError(
                f"{what} was called from the thread of aloop {self.name!r}: it "
                "would wait for itself for ever; await the coroutine instead"
            )

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        """Run ``coro`` on the loop and block until it returns its result.

        Raises:
            RuntimeError: called from the loop's own thread, or not started.
            WaitTimeoutError: ``timeout`` seconds passed (the coroutine is
                cancelled); a ``TimeoutError``.
        """
        try:
            self._refuse_own_thread("ALoop.run()")
            loop = self.get_loop()
        except RuntimeError:
            coro.close()
            raise
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise WaitTimeoutError(
                f"aloop {self.name!r}: not done in {timeout} s"
            ) from exc

    def background_task(
        self, coro: Coroutine[Any, Any, Any], priority: int = TASK_NORMAL
    ) -> TaskInfo:
        """Run ``coro`` on the loop as a task; return its record at once."""
        if not asyncio.iscoroutine(coro):
            raise TypeError(f"coro must be a coroutine object; got {coro!r}")
        return self.supervisor.submit(
            _given,
            (coro,),
            {},
            priority=priority,
            tt=TT_COROUTINE,
            loop=self,
            name=getattr(coro, "__qualname__", None),
        )

    def stop(self, wait: bool | float = True, cancel_tasks: bool = False) -> None:
        """Stop the loop and join its thread; it may be started again.

        Args:
            wait: True waits for the loop's tasks; seconds waits that long,
                then cancels what still runs; False cancels them at once.
                A stop with seconds returns within about that many.
            cancel_tasks: cancel the loop's tasks at once.

        From the loop's own thread (a coroutine or callback on it) the stop
        cannot wait for itself: the loop stops once the caller is done, and
        this returns at once.
        """
        self._stop(check_wait(wait), cancel_tasks or wait is False)

    def _stop(self, deadline: float | None, cancel: bool) -> None:
        """Stop by ``deadline`` (``time.monotonic()``; None: no limit)."""
        join_stopped([self._begin_stop(deadline, cancel)], deadline)

    def _begin_stop(
        self, deadline: float | None, cancel: bool
    ) -> tuple[ALoop, threading.Thread | None]:
        """Ask the loop to drain and stop; return the thread to join (None:
        nothing to join, or the caller's own thread)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is None or thread is None:
                return self, None
            self._loop = self._thread = None
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        self._grace = None if deadline is None else STOP_GRACE
        drain = _drain_and_stop(remaining, cancel)
        try:
            asyncio.run_coroutine_threadsafe(drain, loop)
        except RuntimeError:  # the loop is closed: its thread is ending
            drain.close()
        if threading.current_thread() is thread:
            return self, None
        return self, thread

    def _reset_after_fork(self) -> None:
        """In a forked child the loop's thread does not exist: forget it."""
        self._lock = threading.Lock()
        self._loop = self._thread = None


def join_stopped(
    stopping: list[tuple[ALoop, threading.Thread | None]], deadline: float | None
) -> None:
    """Join the threads of stopping aloops against one shared deadline."""
    for aloop, thread in stopping:
        if thread is None:
            continue
        if deadline is None:
            thread.join()
            continue
        thread.join(max(0.0, deadline - time.monotonic()) + 2 * STOP_GRACE)
        if thread.is_alive():
            logger.warning(
                "aloop %s: its thread did not end in time (a task ignores "
                "cancellation, or blocks the loop)",
                aloop.name,
            )


def _given(coro: Coroutine[Any, Any, Any]) -> Coroutine[Any, Any, Any]:
    """Target of a record made from a coroutine object: returns it."""
    return coro


async def _drain_and_stop(timeout: float | None, cancel: bool) -> None:
    """Wait for (or cancel) every other task of the running loop, including
    tasks those start meanwhile; past ``timeout`` seconds, cancel them; then
    stop the loop.

    A task that swallows its cancellation gets STOP_GRACE seconds more; then
    the loop stops all the same.
    """
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    current = asyncio.current_task()
    try:
        while True:
            tasks = {t for t in asyncio.all_tasks() if t is not current}
            if not tasks:
                return
            if cancel or (deadline is not None and loop.time() >= deadline):
                for task in tasks:
                    task.cancel()
                _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE)
                if pending:
                    return
                continue
            remaining = None if deadline is None else deadline - loop.time()
            await asyncio.wait(tasks, timeout=remaining)
    finally:
        loop.stop()
