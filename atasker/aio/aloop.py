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
import weakref
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

# asyncio tasks of coroutine tasks whose cancel() was asked: such a record
# ends CANCELED even if its coroutine swallows the CancelledError.
_cancel_requested: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()


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
        _join_stopped([self._begin_stop(deadline, cancel)], deadline)

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


RESERVED_NAME = "__supervisor__"


class AloopRegistry:
    """The aloops of a supervisor, by name (the supervisor inherits this).

    Every method is thread-safe.
    """

    id: str
    default_aloop: ALoop | None

    def __init__(self) -> None:
        self._aloops: dict[str, ALoop] = {}
        self._aloops_lock = threading.Lock()
        self._own_aloop: ALoop | None = None
        self.default_aloop = None

    def _supervisor_aloop(self) -> ALoop:
        """The supervisor's own loop (``__supervisor__``), started on first use;
        workers' drivers run there."""
        with self._aloops_lock:
            if self._own_aloop is None:
                self._own_aloop = ALoop(RESERVED_NAME, self, daemon=True)  # type: ignore[arg-type]
            aloop = self._own_aloop
        aloop.start()
        return aloop

    def create_aloop(
        self, name: str, daemon: bool = False, start: bool = True, default: bool = False
    ) -> ALoop:
        """Create an asyncio loop running in a thread of its own.

        Args:
            name: its name; ``__supervisor__`` is reserved.
            daemon: run its thread as a daemon thread.
            start: start it now (returns once the loop runs).
            default: make it the default aloop (for coroutine tasks and
                async workers with no ``loop=``).

        Returns:
            The ALoop.

        Raises:
            ValueError: the name is reserved, empty or already taken.
        """
        if not isinstance(name, str) or not name or name == RESERVED_NAME:
            raise ValueError(
                f"name must be a non-empty string other than {RESERVED_NAME!r}; "
                f"got {name!r}"
            )
        aloop = ALoop(name, self, daemon=daemon)  # type: ignore[arg-type]
        with self._aloops_lock:
            if name in self._aloops:
                raise ValueError(f"an aloop named {name!r} already exists")
            self._aloops[name] = aloop
            if default:
                self.default_aloop = aloop
        if start:
            aloop.start()
        return aloop

    def get_aloop(
        self, name: str | ALoop | None = None, default: bool = True
    ) -> ALoop | None:
        """The aloop called ``name``; with no name, the default one if
        ``default``. None if there is no such aloop."""
        if isinstance(name, ALoop):
            return name
        if name is None:
            return self.default_aloop if default else None
        with self._aloops_lock:
            return self._aloops.get(name)

    def _aloop(self, name: str | ALoop) -> ALoop:
        aloop = self.get_aloop(name, default=False)
        if aloop is None:
            raise ValueError(f"no aloop named {name!r}: create_aloop({name!r}) first")
        return aloop

    def start_aloop(self, name: str | ALoop) -> None:
        """Start (or restart) an aloop."""
        self._aloop(name).start()

    def stop_aloop(
        self, name: str | ALoop, wait: bool | float = True, cancel_tasks: bool = False
    ) -> None:
        """Stop an aloop (see :meth:`ALoop.stop`); it may be started again."""
        self._aloop(name).stop(wait=wait, cancel_tasks=cancel_tasks)

    def set_default_aloop(self, aloop: str | ALoop | None) -> None:
        """Make ``aloop`` (an ALoop or a name; None for none) the default."""
        self.default_aloop = None if aloop is None else self._aloop(aloop)

    def get_aloops(self) -> dict[str, ALoop]:
        """Every aloop, by name."""
        with self._aloops_lock:
            return dict(self._aloops)

    def _stop_aloops(self, deadline: float | None, cancel_tasks: bool) -> None:
        """Stop every aloop by ``deadline``, all at once; the supervisor's own
        after them, with its tasks (worker drivers still waiting) cancelled."""
        stopping = [
            aloop._begin_stop(deadline, cancel_tasks)
            for aloop in self.get_aloops().values()
        ]
        _join_stopped(stopping, deadline)
        if self._own_aloop is not None:
            self._own_aloop._stop(deadline, True)

    def _reset_aloops_after_fork(self) -> None:
        """In a forked child: no aloop's thread exists; each can start again."""
        self._aloops_lock = threading.Lock()
        for aloop in [*self._aloops.values(), self._own_aloop]:
            if aloop is not None:
                aloop._reset_after_fork()

    def resolve_loop(self, loop: Any) -> asyncio.AbstractEventLoop:
        """The asyncio loop a coroutine task runs on: ``loop`` is an aloop
        name, an ALoop, an asyncio loop, or None for the default aloop.

        Raises:
            RuntimeError: no loop to run on (says how to get one).
            ValueError: no aloop of that name.
            TypeError: ``loop`` is none of those.
        """
        if loop is None:
            aloop = self.default_aloop
            if aloop is None:
                raise RuntimeError(
                    "no loop for a coroutine task: pass loop=, or create one with "
                    "supervisor.create_aloop('name', default=True)"
                )
            return aloop.get_loop()
        if isinstance(loop, str):
            return self._aloop(loop).get_loop()
        if isinstance(loop, ALoop):
            return loop.get_loop()
        if isinstance(loop, asyncio.AbstractEventLoop):
            if loop.is_closed():
                raise RuntimeError(f"loop {loop!r} is closed")
            return loop
        raise TypeError(
            f"loop must be an aloop name, an ALoop or an asyncio loop; got {loop!r}"
        )


def _join_stopped(
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


def schedule_coroutine(task: TaskInfo, loop: asyncio.AbstractEventLoop) -> None:
    """Run the coroutine task ``task`` on ``loop`` (from any thread).

    Raises:
        RuntimeError: the loop is closed.
    """
    runner = _run_coroutine(task)
    try:
        asyncio.run_coroutine_threadsafe(runner, loop)
    except RuntimeError:
        runner.close()
        raise


async def _run_coroutine(task: TaskInfo) -> None:
    # The asyncio task is the handle cancel() uses once the record is STARTED.
    task.handle = asyncio.current_task()
    # Read before the start: a final record has dropped them (target None).
    target, args, kwargs = task.target, task.args, task.kwargs
    if not task.set_started():
        task.handle = None
        _close_coroutines(task.args)  # canceled before it could start
        return
    try:
        assert target is not None
        result = await target(*args, **kwargs)
    except asyncio.CancelledError:
        task.set_canceled()
        raise
    except BaseException as exc:
        task.set_exception(exc)
    else:
        if task.handle in _cancel_requested:
            task.set_canceled()  # cancel() said True: it swallowed the cancel
        else:
            task.set_result(result)


def _close_coroutines(args: tuple[Any, ...]) -> None:
    """Close coroutine objects that will never run (no 'never awaited' warning)."""
    for arg in args:
        if asyncio.iscoroutine(arg):
            arg.close()


def cancel_coroutine(task: TaskInfo) -> bool:
    """Cancel the asyncio task of a started coroutine task.

    Returns:
        True: the record will end CANCELED (even if the coroutine swallows
        the CancelledError and returns).
    """
    handle = task.handle
    if not isinstance(handle, asyncio.Task):
        return False
    _cancel_requested.add(handle)
    try:
        handle.get_loop().call_soon_threadsafe(handle.cancel)
    except RuntimeError:  # the loop is closed
        _cancel_requested.discard(handle)
        return False
    return True
