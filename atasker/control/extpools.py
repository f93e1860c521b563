"""External pools: add_pool, remove_pool, atasker 0.7's ``mp_pool`` (mixed
into the supervisor).

::

    add_pool(name, executor, size, ...) ──> PoolSpec (kept across restarts)
        start() / at once if running ──> ExternalPool (pools/external.py)
    a task with pool=name ──> that ExternalPool
    a TT_MP task while mp_pool is a multiprocessing Pool ──> the pool "mp_pool"
    stop() ──> each drains like the built-in pools; a shutdown=True executor
        is shut down and its pool forgotten
    remove_pool(name, wait) ──> the same for one pool

The executors are their owners': atasker shuts one down only when it was
added with ``shutdown=True``.
"""

from __future__ import annotations

import logging
import multiprocessing.pool
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..core.constants import PRIORITIES, TT_COROUTINE, TT_MP
from ..core.task import TaskInfo
from ..core.timer import Timer
from ..core.validation import check_count, check_wait
from ..pools.executors import Adapter, PoolAdapter, adapter_for
from ..pools.external import ExternalPool, PoolInfo
from ..pools.pool import Deadline
from ..pools.processpool import ProcessPool

logger = logging.getLogger("atasker")

# The pool that ``mp_pool = multiprocessing.Pool(...)`` makes.
MP_POOL = "mp_pool"


@dataclass
class PoolSpec:
    """What ``add_pool`` was given (checked)."""

    name: str
    executor: Any
    adapter: Adapter
    size: int
    reserve_normal: int
    reserve_high: int
    shutdown: bool


def _idle(spec: PoolSpec) -> PoolInfo:
    return PoolInfo(
        spec.size,
        spec.reserve_normal,
        spec.reserve_high,
        0,
        dict.fromkeys(PRIORITIES, 0),
    )


class ExternalPools:
    """``add_pool``, ``remove_pool``, ``mp_pool``; the pools they make."""

    id: str
    _state_lock: threading.RLock
    _timer: Timer | None
    _mp_pool: ProcessPool | None
    mp_pool_size: int
    mp_reserve_normal: int
    mp_reserve_high: int

    if TYPE_CHECKING:  # the supervisor's

        @property
        def _active(self) -> bool: ...

        def _run_user_code(self, notify: Callable[[], None]) -> None: ...

    def __init__(self) -> None:
        super().__init__()
        self._pool_specs: dict[str, PoolSpec] = {}
        # While running: the pools of the specs, by name.
        self._external: dict[str, ExternalPool] = {}
        # Pools replaced (mp_pool) or removed while running: what they hold
        # still ends, and stop() waits for it.
        self._retired: list[ExternalPool] = []
        # Between start() making the pools and stop() ending them.
        self._pools_live = False

    def add_pool(
        self,
        name: str,
        executor: Any,
        size: int,
        reserve_normal: int = 0,
        reserve_high: int = 0,
        shutdown: bool = False,
    ) -> None:
        """Run tasks with ``pool=name`` on ``executor``, behind our queue.

        A task waits in the supervisor's exact-priority queue and is handed
        to the executor only while fewer tasks than its priority allows are
        in flight there (the reserve rule of :meth:`set_thread_pool`; a
        CRITICAL task at once). The pool is made at once if the supervisor
        runs, else by ``start()``, and stays across restarts.

        Args:
            name: the name tasks give as ``pool=``.
            executor: a ``concurrent.futures.Executor`` (threads, processes,
                Dask's ``client.get_executor()``) or a ``multiprocessing``
                Pool.
            size, reserve_normal, reserve_high: the reserve rule; ``size=0``
                hands every task over at once.
            shutdown: ``stop()`` and ``remove_pool()`` shut the executor
                down (it is otherwise its owner's), and ``stop()`` forgets
                the pool.

        Raises:
            TypeError, ValueError: a bad argument, or a name already added
                (named in the message).
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str; got {name!r}")
        if name == MP_POOL:
            raise ValueError(
                f"name {MP_POOL!r} is the pool of the mp_pool attribute: choose another"
            )
        spec = PoolSpec(
            name,
            executor,
            adapter_for(executor),
            check_count(size, "size"),
            check_count(reserve_normal, "reserve_normal"),
            check_count(reserve_high, "reserve_high"),
            bool(shutdown),
        )
        with self._state_lock:
            if name in self._pool_specs:
                raise ValueError(
                    f"supervisor {self.id} already has a pool {name!r}: "
                    "remove_pool() it first"
                )
            self._put_spec(spec)

    def _put_spec(self, spec: PoolSpec) -> ExternalPool | None:
        """Keep ``spec`` (state lock held); its pool is made now if the
        pools run. Returns the pool it replaces (the caller retires it)."""
        self._pool_specs[spec.name] = spec
        old = self._external.pop(spec.name, None)
        if self._pools_live:
            self._start_external(spec)
        return old

    def remove_pool(self, name: str, wait: bool | float = True) -> None:
        """Stop sending tasks to pool ``name`` and forget it.

        Args:
            wait: True: its queued tasks still run and the call waits for
                them and for those in flight; a number: waits that many
                seconds at most, then cancels what is left ("pool
                removed"); False: its queued tasks end CANCELED ("pool
                removed") at once, and those in flight end as the executor
                says (with ``shutdown=True`` they are canceled too, and the
                executor is shut down without waiting).

        A task of the pool that waits for its next attempt, its due time or
        its dependencies goes, when ready, to a pool added again under the
        same name, else ends CANCELED ("pool removed").

        Raises:
            ValueError: no pool of that name.
        """
        deadline = check_wait(wait)
        with self._state_lock:
            spec = self._pool_specs.pop(name, None)
            if spec is None:
                raise ValueError(f"supervisor {self.id} has no pool {name!r}")
            pool = self._external.pop(name, None)
            if pool is not None:
                # Retired first: a stop() meanwhile ends it too.
                self._retire_locked(pool)
        if pool is not None and wait is False and not spec.shutdown:
            # What is in flight ends as the executor says (stop() waits).
            for task in pool.retire("pool removed"):
                task.set_canceled(defer=self._run_user_code, reason="pool removed")
            return
        self._end_external(spec, pool, deadline, "pool removed")

    @property
    def mp_pool(self) -> Any:
        """The pool process tasks run in: the ``multiprocessing`` Pool
        assigned to it, else the built-in pool while one runs, else None.

        Assigning a ``multiprocessing`` Pool (atasker 0.7's way) sends the
        process tasks submitted from then on to it, behind our queue (see
        :meth:`add_pool`; its size is ``mp_pool_size`` if set, else the
        Pool's processes). Assigning None goes back to the built-in pool.
        Tasks queued before stay where they are. atasker never closes the
        Pool.

        Raises (on assignment):
            TypeError: neither a multiprocessing Pool nor None.
        """
        spec = self._pool_specs.get(MP_POOL)
        return spec.executor if spec is not None else self._mp_pool

    @mp_pool.setter
    def mp_pool(self, pool: Any) -> None:
        spec = None
        if pool is not None:
            if not isinstance(pool, multiprocessing.pool.Pool):
                raise TypeError(
                    f"mp_pool must be a multiprocessing Pool or None; got {pool!r} "
                    "(add_pool() takes any executor; create_mp_pool() sets up "
                    "the built-in pool)"
                )
            adapter = PoolAdapter(pool)
            size = self.mp_pool_size or adapter.processes or 1
            spec = PoolSpec(
                MP_POOL,
                pool,
                adapter,
                size,
                self.mp_reserve_normal,
                self.mp_reserve_high,
                False,
            )
        with self._state_lock:
            if spec is None:
                self._pool_specs.pop(MP_POOL, None)
                old = self._external.pop(MP_POOL, None)
            else:
                old = self._put_spec(spec)
            if old is not None:
                old.close(False)  # its queued tasks still run
                self._retire_locked(old)

    # ------------------------------------------------------------------
    # The supervisor's side
    # ------------------------------------------------------------------

    def _start_external(self, spec: PoolSpec) -> None:
        """Make and start the pool of ``spec`` (state lock held)."""
        timer = self._timer
        assert timer is not None
        pool = ExternalPool(
            spec.name,
            spec.adapter,
            spec.size,
            spec.reserve_normal,
            spec.reserve_high,
            owner=self.id,
            call_at=timer.call_at,
            defer=self._run_user_code,
        )
        pool.start()
        self._external[spec.name] = pool

    def _start_external_pools(self) -> None:
        """start(): a pool for every spec (state lock held); none if one
        cannot start."""
        try:
            for spec in self._pool_specs.values():
                self._start_external(spec)
        except BaseException:
            made, self._external = self._external, {}
            for pool in made.values():
                pool.retire("stopped")
            raise
        self._pools_live = True

    def _external_pool(self, name: str | None, tt: int) -> ExternalPool | None:
        """The pool a task of type ``tt`` with ``pool=name`` goes to; None:
        a built-in one.

        Raises:
            ValueError: no pool of that name.
            TypeError: a coroutine function cannot go there.
        """
        if name is None:
            return self._external.get(MP_POOL) if tt == TT_MP else None
        pool = self._external.get(name)
        if pool is None:
            raise ValueError(
                f"pool: supervisor {self.id} has no pool {name!r} "
                f"(add_pool() it first; it has: {sorted(self._pool_specs)})"
            )
        if tt == TT_COROUTINE:
            raise TypeError(
                f"pool={name!r}: a coroutine function runs on a loop, not in "
                "an executor"
            )
        return pool

    def _pools_info(self) -> dict[str, PoolInfo]:
        """``get_info().pools``: each external pool, by name (one not made
        yet, before start(), has nothing running or queued)."""
        with self._state_lock:
            specs, pools = dict(self._pool_specs), dict(self._external)
        return {
            name: pools[name].info() if name in pools else _idle(spec)
            for name, spec in specs.items()
        }

    def _retire_locked(self, pool: ExternalPool) -> None:
        """Keep a pool that was replaced or removed until what it holds has
        ended, so that stop() ends it too (state lock held); forget those
        with nothing left."""
        self._retired = [p for p in self._retired if p.busy()]
        self._retired.append(pool)

    def _to_external(self, task: TaskInfo, pool: ExternalPool) -> bool:
        """Queue a task in its external pool; False if the supervisor no
        longer takes it. A task that waited (a retry, a delay, its
        dependencies) while its pool was replaced or removed goes to the
        pool of that name now if that one takes the call as it was prepared
        (pickled or not), else ends CANCELED ("pool removed")."""
        while True:
            if pool.submit(task):
                return True
            current = self._external.get(pool.name)
            if current is pool or not self._active:
                return False  # stopping
            # Pickled for it, or not: a pool of another kind cannot take it.
            if current is None or current.adapter.pickles != (task.payload is not None):
                task.set_canceled(defer=self._run_user_code, reason="pool removed")
                return True
            task.handle = pool = current

    def _external_pools(self) -> list[ExternalPool]:
        """Every external pool of this run (retired ones too)."""
        with self._state_lock:
            return [*self._external.values(), *self._retired]

    def _stop_external_pools(self, deadline: Deadline) -> None:
        """stop(): every pool drains towards ``deadline``; then the
        ``shutdown=True`` executors are shut down and forgotten."""
        with self._state_lock:
            self._pools_live = False
            pools, self._external = self._external, {}
            retired, self._retired = self._retired, []
            specs = dict(self._pool_specs)
            for name, spec in specs.items():
                if spec.shutdown:
                    del self._pool_specs[name]
        for pool in retired:
            pool.shutdown(deadline)
        for name, spec in specs.items():
            self._end_external(spec, pools.get(name), deadline, "stopped")

    def _end_external(
        self,
        spec: PoolSpec,
        pool: ExternalPool | None,
        deadline: Deadline,
        reason: str,
    ) -> None:
        """End one pool: drained until ``deadline``, then what is left
        canceled (``reason``); then its executor shut down if the spec says
        so."""
        stuck = pool is not None and (
            bool(pool.shutdown(deadline, reason)) or pool.abandoned()
        )
        if not spec.shutdown:
            return
        try:
            spec.adapter.shutdown(wait=not stuck)
        except BaseException:  # the executor's code
            logger.exception("pool %r: shutting its executor down failed", spec.name)
