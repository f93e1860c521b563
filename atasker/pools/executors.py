"""Adapters: one way to hand a task to any executor, and to hear back.

::

    concurrent.futures.Executor   submit(run_call, ...) ──> Future ── done ──┐
      (threads, processes, Dask's client.get_executor(): pure=False)         │
    multiprocessing.pool.Pool     apply_async(run_payload, callback=,        │
                                               error_callback=) ─────────────┤
                                                                             ▼
                                               ``done(ok, value)``: the external pool

What runs in the executor is :func:`run_call` or :func:`run_payload`, this
module's, so a task's own keyword arguments never meet the executor's
(Dask's ``submit`` takes ``key``, ``priority``, ``workers``...). Where the
executor pickles with the standard pickle (a ProcessPoolExecutor, a
multiprocessing Pool), the call is pickled at submit, so what cannot be is
refused at the call, as for the built-in process pool. Nothing here imports
Dask: it is recognised by its module's name.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing.pool
import pickle
import threading
from typing import Any, Callable, Protocol

from ..core.errors import WorkerLostError
from ..core.task import TaskInfo
from .mpcodec import WireInfo, pickle_payload

# What the external pool is told when a handed-over call ends: (True,
# result), (False, exception), or (False, CANCELLED): the engine cancelled
# the call (a task that raised CancelledError itself is an exception).
Done = Callable[[bool, Any], None]
CANCELLED: Any = object()


# Set while a thread runs a task for an external pool: the supervisor's id.
# A stop() of that supervisor from there must not wait for itself.
calling = threading.local()


def run_call(
    target: Callable[..., Any] | None,
    args: tuple[Any, ...],
    kwargs: Any,
    owner: str | None = None,
) -> Any:
    """In the executor: run a task (a task function runs its function);
    ``owner`` is the id of the supervisor it runs for."""
    target = getattr(target, "__atasker_function__", target)
    assert target is not None
    outer = getattr(calling, "owner", None)
    calling.owner = owner
    try:
        return target(*args, **kwargs)
    finally:
        calling.owner = outer


def run_payload(payload: bytes | None) -> Any:
    """In a worker process: run a task pickled at submit."""
    assert payload is not None
    target, args, kwargs, _ = pickle.loads(payload)
    return run_call(target, args, kwargs)


class Adapter(Protocol):
    """What the external pool needs of an executor."""

    pickles: bool  # the call is pickled at submit (Task.payload)
    processes: int | None  # worker processes, where the executor says

    def submit(self, task: TaskInfo, done: Done, owner: str) -> Any:
        """Hand ``task`` over; ``done`` is called once, from any thread,
        when it ends; ``owner`` is the supervisor's id. Returns a handle for
        :meth:`cancel`."""

    def cancel(self, handle: Any) -> bool:
        """Try to cancel a call handed over; True if it will not complete."""

    def shutdown(self, wait: bool) -> None:
        """End the executor (only when the user said ``shutdown=True``)."""


class FuturesAdapter:
    """A ``concurrent.futures.Executor`` (Dask's ClientExecutor is one)."""

    def __init__(self, executor: concurrent.futures.Executor) -> None:
        self.executor = executor
        # Exactly the standard one: a subclass may pickle otherwise (loky).
        self.pickles = type(executor) is concurrent.futures.ProcessPoolExecutor
        self.processes: int | None = getattr(executor, "_max_workers", None)
        # Dask keys a pure call by its arguments: a retry would get the
        # cached failure. Every submission is a new key.
        self._extra = {"pure": False} if is_dask(executor) else {}

    def submit(
        self, task: TaskInfo, done: Done, owner: str
    ) -> concurrent.futures.Future[Any]:
        if self.pickles:
            future = self.executor.submit(run_payload, task.payload, **self._extra)
        else:
            future = self.executor.submit(
                run_call, task.target, task.args, task.kwargs, owner, **self._extra
            )
        future.add_done_callback(lambda f: _report(f, done))
        return future

    def cancel(self, handle: Any) -> bool:
        return bool(handle.cancel())

    def shutdown(self, wait: bool) -> None:
        self.executor.shutdown(wait=wait)


def _report(future: concurrent.futures.Future[Any], done: Done) -> None:
    if future.cancelled():
        done(False, CANCELLED)
        return
    exc = future.exception()
    if exc is None:
        done(True, future.result())
    else:
        done(False, exc)


class PoolAdapter:
    """A ``multiprocessing.pool.Pool`` (atasker 0.7's ``mp_pool``), through
    ``apply_async`` with both callbacks: an exception never leaves the task
    hanging. A worker the Pool loses is replaced, but its task never
    reports: only the task's ``time_limit`` ends it."""

    pickles = True

    def __init__(self, pool: multiprocessing.pool.Pool) -> None:
        self.pool = pool
        self.processes: int | None = getattr(pool, "_processes", None)

    def submit(self, task: TaskInfo, done: Done, owner: str) -> Any:
        return self.pool.apply_async(
            run_payload,
            (task.payload,),
            callback=lambda value: done(True, value),
            error_callback=lambda exc: done(False, exc),
        )

    def cancel(self, handle: Any) -> bool:
        return False  # a Pool cannot take a call back

    def shutdown(self, wait: bool) -> None:
        if wait:
            self.pool.close()
            self.pool.join()
        else:
            self.pool.terminate()


def adapter_for(executor: Any) -> Adapter:
    """The adapter of ``executor``.

    Raises:
        TypeError: neither a concurrent.futures Executor nor a
            multiprocessing Pool.
    """
    if isinstance(executor, concurrent.futures.Executor):
        return FuturesAdapter(executor)
    if isinstance(executor, multiprocessing.pool.Pool):
        return PoolAdapter(executor)
    raise TypeError(
        "executor must be a concurrent.futures.Executor (a ThreadPoolExecutor, "
        "a ProcessPoolExecutor, Dask's client.get_executor()) or a "
        f"multiprocessing Pool; got {executor!r}"
    )


def is_dask(obj: Any) -> bool:
    """Is ``obj`` Dask's (``distributed``)? Known by its class's module,
    without importing Dask."""
    return _module_of(obj).split(".")[0] == "distributed"


def _module_of(obj: Any) -> str:
    return str(getattr(type(obj), "__module__", "") or "")


def lost_worker(exc: BaseException, pool_name: str) -> BaseException | None:
    """The WorkerLostError for ``exc`` if it says the engine lost the worker
    running the task (a broken ProcessPoolExecutor, Dask's KilledWorker);
    else None."""
    if isinstance(exc, WorkerLostError):
        return exc
    if isinstance(exc, concurrent.futures.BrokenExecutor) or (
        type(exc).__name__ == "KilledWorker" and is_dask(exc)
    ):
        error = WorkerLostError(
            f"pool {pool_name!r} lost the worker running the task: "
            f"{type(exc).__name__}: {exc}"
        )
        error.__cause__ = exc
        return error
    return None


def payload_of(task: TaskInfo, pickle_as: Any, info: WireInfo | None = None) -> bytes:
    """A process task's call, pickled at submit: ``pickle_as`` (default:
    its target), its arguments and, for the built-in pool, ``info``.

    Raises:
        TypeError: it cannot be pickled (says what).
    """
    target = task.target if pickle_as is None else pickle_as
    assert target is not None
    return pickle_payload(target, task.args, task.kwargs, info)
