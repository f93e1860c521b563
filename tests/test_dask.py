"""External pools on a real Dask cluster: ``add_pool`` with Dask's
``client.get_executor()`` (docs/scale-out.md).

One LocalCluster for the module: two worker processes of one thread each,
on the loopback, no dashboard. Tasks that must stay in flight are *gated*:
they connect back to the test on 127.0.0.1, tell it their label and
worker pid, and block until the test answers (dask_tasks.gated); nothing
here sleeps to guess when something happened.
"""

from __future__ import annotations

import asyncio
import gc
import os
import queue
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip(
    "distributed",
    reason="Dask's distributed is not installed (pip install -e '.[test]')",
)

import dask
import dask_tasks
from conftest import WAIT
from distributed import Client, KilledWorker, LocalCluster

from atasker import (
    TASK_CRITICAL,
    TASK_HIGH,
    TASK_LOW,
    TASK_NORMAL,
    TASK_STATUS_CANCELED,
    TASK_STATUS_EXCEPTION,
    TASK_STATUS_QUEUED,
    TASK_STATUS_STARTED,
    TaskInfo,
    TaskSupervisor,
    TaskTimeoutError,
    WorkerLostError,
    background_task,
    co_apply,
    wait_completed,
)

WORKERS = 2
# Seconds a worker process may take to start (a nanny restarting a killed
# one imports Dask afresh in a spawned interpreter: seconds on a busy box).
STARTUP = 30.0

# ----------------------------------------------------------------------
# The cluster and the gates
# ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster_client() -> Iterator[Client]:
    # The scheduler reads it when it is made: a task whose worker dies fails
    # at once with KilledWorker instead of being rescheduled.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(
            n_workers=WORKERS,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            # No dashboard, but the scheduler still serves /health and
            # /metrics: on a free port, not 8787 (another cluster may hold
            # it, and Dask warns when it moves).
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        )
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


@pytest.fixture
def client(cluster_client: Client) -> Iterator[Client]:
    """The module's client, with every worker up (a test may have killed
    one: its nanny starts another). Afterwards the client holds no key of
    the test's: nothing of it stays on the cluster, and a worker killed by
    a later test has no result of this one for Dask to recompute."""
    cluster_client.wait_for_workers(WORKERS, timeout=STARTUP)
    yield cluster_client
    # Finished records' futures may sit in reference cycles until a
    # collection; Dask releases a key on its own loop, soon after. A failed
    # task's exception (kept by its record and by pytest's captured log)
    # holds its traceback, whose frames hold Dask's future: an erred key
    # holds no result and is never recomputed.
    gc.collect()
    deadline = time.monotonic() + WAIT
    while held(cluster_client) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not held(cluster_client), f"keys still held: {held(cluster_client)}"


def held(client: Client) -> dict[str, str]:
    """The keys the client holds, but failed ones, and their status."""
    states = {key: client.futures.get(key) for key in list(client.refcount)}
    return {
        key: getattr(state, "status", "?")
        for key, state in states.items()
        if getattr(state, "status", None) != "error"
    }


@pytest.fixture
def make_supervisor(client: Client, make_supervisor: Any) -> Any:
    """conftest's, after ``client``: its supervisors are stopped and gone
    (with the records that hold futures) before the client's check."""
    return make_supervisor


class Caller:
    """A gated task, connected: it runs on the cluster until answered."""

    def __init__(self, conn: socket.socket, label: str, pid: int) -> None:
        self.conn = conn
        self.label = label
        self.pid = pid

    def answer(self, text: str) -> None:
        """Let the task return ``text``."""
        self.conn.sendall(f"{text}\n".encode())


class Gates:
    """The test's end of dask_tasks.gated: a server on 127.0.0.1."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(WAIT)
        self.port: int = self._server.getsockname()[1]
        self._conns: list[socket.socket] = []

    def accept(self) -> Caller:
        """The next gated task to reach a worker (WAIT seconds at most)."""
        try:
            conn, _ = self._server.accept()
        except socket.timeout:  # TimeoutError from 3.10; 3.9's is not
            pytest.fail(f"no gated task connected within {WAIT} s")
        self._conns.append(conn)
        conn.settimeout(WAIT)
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(256)
            assert chunk, f"a gated task hung up after {data!r}"
            data += chunk
        label, pid = data.decode().split()
        return Caller(conn, label, int(pid))

    def close(self) -> None:
        """Hang up on every task still gated (it returns "closed")."""
        for conn in self._conns:
            conn.close()
        self._server.close()


@pytest.fixture
def gates() -> Iterator[Gates]:
    g = Gates()
    yield g
    g.close()


def started_with_pool(
    make_supervisor: type[TaskSupervisor], executor: object, size: int, **kwargs: object
) -> TaskSupervisor:
    sup = make_supervisor(keep_finished=100)
    sup.add_pool("cluster", executor, size=size, **kwargs)
    sup.start()
    return sup


def gated(sup: TaskSupervisor, gates: Gates, label: str, **options: object) -> TaskInfo:
    return sup.submit(dask_tasks.gated, (gates.port, label), pool="cluster", **options)


def settled(sup: TaskSupervisor) -> bool:
    """Has pool "cluster" nothing in flight or queued? (A slot is freed
    before its record is final: once the records are final, it is.)"""
    pool = sup.get_info().pools["cluster"]
    return pool.running == 0 and not any(pool.queued.values())


def most_in_flight(records: list[TaskInfo]) -> int:
    """The most records between time_started and time_completed at once
    (an end before a start at the same instant)."""
    edges = sorted(
        [(r.time_started, 1) for r in records]
        + [(r.time_completed, -1) for r in records]
    )
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


# ----------------------------------------------------------------------
# Results, the reserve rule, priorities
# ----------------------------------------------------------------------


def test_many_tasks_through_a_smaller_pool(make_supervisor, client, gates) -> None:
    sup = started_with_pool(make_supervisor, client.get_executor(), size=2)
    blockers = [gated(sup, gates, f"blocker{n}") for n in range(2)]
    callers = [gates.accept() for _ in blockers]
    # Both in flight at once: one on each worker.
    assert sorted(c.label for c in callers) == ["blocker0", "blocker1"]
    assert len({c.pid for c in callers}) == 2
    records = [sup.submit(dask_tasks.add, (n, 100), pool="cluster") for n in range(20)]
    info = sup.get_info()
    pool = info.pools["cluster"]
    assert (pool.size, pool.reserve_normal, pool.reserve_high) == (2, 0, 0)
    assert pool.running == 2
    assert pool.queued == {TASK_CRITICAL: 0, TASK_HIGH: 0, TASK_NORMAL: 20, TASK_LOW: 0}
    assert {r.status for r in records} == {TASK_STATUS_QUEUED}
    assert {r.status for r in blockers} == {TASK_STATUS_STARTED}
    # The built-in pools' lists do not hold an external pool's tasks.
    assert not {r.id for r in blockers} & set(info.thread_tasks)
    for caller in callers:
        caller.answer("released")
    assert wait_completed(blockers, timeout=WAIT) == ["released", "released"]
    assert wait_completed(records, timeout=WAIT) == [n + 100 for n in range(20)]
    # Never more than the size in flight (by the records' own clock).
    assert most_in_flight(blockers + records) == 2
    assert settled(sup)


def test_exact_priority_order(make_supervisor, client, gates) -> None:
    sup = started_with_pool(make_supervisor, client.get_executor(), size=1)
    blocker = gated(sup, gates, "blocker")
    caller = gates.accept()
    labelled = {}
    for n, (priority, letter) in enumerate(
        [
            (TASK_LOW, "L"),
            (TASK_HIGH, "H"),
            (TASK_NORMAL, "N"),
            (TASK_LOW, "L"),
            (TASK_HIGH, "H"),
            (TASK_NORMAL, "N"),
        ]
    ):
        record = sup.submit(dask_tasks.add, (n, 0), pool="cluster", priority=priority)
        labelled[f"{letter}{n}"] = record
    assert sup.get_info().pools["cluster"].queued == {
        TASK_CRITICAL: 0,
        TASK_HIGH: 2,
        TASK_NORMAL: 2,
        TASK_LOW: 2,
    }
    # CRITICAL goes past the size: it runs while the blocker holds the slot.
    critical = sup.submit(
        dask_tasks.add, (1, 1), pool="cluster", priority=TASK_CRITICAL
    )
    assert critical.get(WAIT) == 2
    assert blocker.status == TASK_STATUS_STARTED
    assert not any(r.is_started() for r in labelled.values())
    caller.answer("released")
    assert blocker.get(WAIT) == "released"
    wait_completed(list(labelled.values()), timeout=WAIT)
    order = sorted(labelled, key=lambda label: labelled[label].time_started)
    assert order == ["H1", "H4", "N2", "N5", "L0", "L3"]
    # One at a time: each handed over once the one before had ended.
    ran = [blocker] + [labelled[label] for label in order]
    for before, after in zip(ran, ran[1:]):
        assert before.time_completed <= after.time_started


def test_task_functions_map_and_hooks(make_supervisor, client) -> None:
    sup = started_with_pool(make_supervisor, client.get_executor(), size=2)
    # Dask pickles the call with cloudpickle: a task function made here,
    # a lambda, arguments of any kind.
    add = background_task(dask_tasks.add, pool="cluster", supervisor=sup)
    assert add(1, 2).get(WAIT) == 3
    assert add.apply_async((3, 4)).get(WAIT) == 7
    assert add.starmap([(n, n) for n in range(6)]).get(WAIT) == [0, 2, 4, 6, 8, 10]
    double = sup.submit(lambda value: value * 2, (21,), pool="cluster")
    assert double.get(WAIT) == 42
    # Hooks and callbacks run here, in this process.
    here: queue.Queue[tuple[str, int, int]] = queue.Queue()
    record = add.apply_async(
        (5, 6),
        on_success=lambda r, result: here.put(("on_success", result, os.getpid())),
        callback=lambda result: here.put(("callback", result, os.getpid())),
    )
    assert record.get(WAIT) == 11
    assert here.get(timeout=WAIT) == ("on_success", 11, os.getpid())
    assert here.get(timeout=WAIT) == ("callback", 11, os.getpid())


def test_co_apply(make_supervisor, client) -> None:
    sup = started_with_pool(make_supervisor, client.get_executor(), size=2)

    async def main() -> list[int]:
        return await asyncio.gather(
            *(
                co_apply(dask_tasks.add, args=(n, n), pool="cluster", supervisor=sup)
                for n in range(4)
            )
        )

    assert asyncio.run(main()) == [0, 2, 4, 6]


# ----------------------------------------------------------------------
# Failures
# ----------------------------------------------------------------------


def test_an_exception_on_a_worker(make_supervisor, client) -> None:
    sup = started_with_pool(make_supervisor, client.get_executor(), size=2)
    record = sup.submit(
        dask_tasks.remote_failure_in_a_dask_worker, (7,), pool="cluster"
    )
    assert record.wait(WAIT)
    assert record.status == TASK_STATUS_EXCEPTION
    assert type(record.exception) is ValueError
    assert "bad value 7" in str(record.exception)
    # The worker's frames, sent back by Dask.
    assert "remote_failure_in_a_dask_worker" in record.traceback
    assert "dask_tasks.py" in record.traceback
    with pytest.raises(ValueError, match="bad value 7"):
        record.get(0)


def kill_its_worker(caller: Caller, client: Client) -> None:
    """SIGKILL the worker process that ``caller`` runs in; only a worker of
    the cluster (never this process)."""
    workers = set(client.run(os.getpid).values())
    assert caller.pid in workers
    assert caller.pid != os.getpid()
    os.kill(caller.pid, signal.SIGKILL)


def test_a_worker_killed_mid_task(make_supervisor, client, gates) -> None:
    sup = started_with_pool(make_supervisor, client.get_executor(), size=2)

    lost = gated(sup, gates, "lost")
    kill_its_worker(gates.accept(), client)
    assert lost.wait(WAIT)
    assert lost.status == TASK_STATUS_EXCEPTION
    assert isinstance(lost.exception, WorkerLostError)
    assert isinstance(lost.exception.__cause__, KilledWorker)
    assert "cluster" in str(lost.exception)

    # With retries, the retry is a new submission (a new key), not Dask's
    # cached failure: it reaches a worker again.
    client.wait_for_workers(WORKERS, timeout=STARTUP)
    retried = gated(sup, gates, "retried", retries=1)
    first = gates.accept()
    kill_its_worker(first, client)
    second = gates.accept()
    assert second.label == "retried"
    assert second.pid != first.pid
    second.answer("go on")
    assert retried.get(WAIT) == "go on"
    assert (retried.retries, retried.attempt) == (1, 2)
    (failure,) = retried.attempts
    assert "WorkerLostError" in failure.exception

    # The nanny starts a new worker; the pool goes on.
    client.wait_for_workers(WORKERS, timeout=STARTUP)
    assert sup.submit(dask_tasks.add, (1, 2), pool="cluster").get(WAIT) == 3
    assert settled(sup)


def test_a_time_limit_frees_the_slot(make_supervisor, client, gates) -> None:
    sup = started_with_pool(make_supervisor, client.get_executor(), size=1)
    # Never answered: it ends by its limit, whether it reached a worker by
    # then or not.
    record = gated(sup, gates, "slow", time_limit=0.2)
    assert record.wait(WAIT)
    assert record.status == TASK_STATUS_EXCEPTION
    assert isinstance(record.exception, TaskTimeoutError)
    assert "pool 'cluster'" in str(record.exception)
    # Its slot is free (the pool's only one): the next task is handed over.
    after = sup.submit(dask_tasks.add, (2, 2), pool="cluster")
    # Dask's cancel leaves a call already running to run on, and its
    # scheduler counts that worker's thread free: it may give it `after`.
    # Closing the gates ends the call wherever it got to (a connection
    # still in the backlog is reset).
    gates.close()
    assert after.get(WAIT) == 4
    assert settled(sup)


# ----------------------------------------------------------------------
# Cancel, stop, remove
# ----------------------------------------------------------------------


def test_cancel_while_queued_never_reaches_the_cluster(
    make_supervisor, client, gates
) -> None:
    sup = started_with_pool(make_supervisor, client.get_executor(), size=1)
    blocker = gated(sup, gates, "blocker")
    caller = gates.accept()
    canceled = gated(sup, gates, "canceled")
    after = gated(sup, gates, "after")
    assert canceled.status == TASK_STATUS_QUEUED
    assert sup.get_info().pools["cluster"].queued[TASK_NORMAL] == 2
    assert canceled.cancel()
    assert canceled.status == TASK_STATUS_CANCELED
    assert canceled.cancel_reason == "canceled"
    assert sup.get_info().pools["cluster"].queued[TASK_NORMAL] == 1
    caller.answer("released")
    assert blocker.get(WAIT) == "released"
    # One slot: had the canceled task been handed over, it would connect
    # before the one queued after it.
    nxt = gates.accept()
    assert nxt.label == "after"
    nxt.answer("ran")
    assert after.get(WAIT) == "ran"
    assert canceled.time_started is None
    assert settled(sup)


def test_cancel_while_running(make_supervisor, client, gates) -> None:
    sup = started_with_pool(make_supervisor, client.get_executor(), size=1)
    record = gated(sup, gates, "running")
    caller = gates.accept()
    assert record.status == TASK_STATUS_STARTED
    # The ClientExecutor's future cancels (it cancels Dask's future).
    assert record.cancel() is True
    assert record.status == TASK_STATUS_CANCELED
    assert record.cancel_reason == "canceled"
    assert sup.get_info().pools["cluster"].running == 0
    caller.answer("too late")  # the worker's thread goes back to work
    # The slot is free.
    assert sup.submit(dask_tasks.add, (2, 3), pool="cluster").get(WAIT) == 5
    assert record.status == TASK_STATUS_CANCELED


def test_stop_with_a_task_in_flight_leaves_the_executor_alone(
    make_supervisor, client, gates
) -> None:
    executor = client.get_executor()
    sup = started_with_pool(make_supervisor, executor, size=1)
    in_flight = gated(sup, gates, "in_flight")
    caller = gates.accept()
    queued = sup.submit(dask_tasks.add, (1, 1), pool="cluster")
    began = time.monotonic()
    sup.stop(wait=0.2)
    assert time.monotonic() - began < WAIT / 2
    assert in_flight.status == TASK_STATUS_CANCELED
    assert in_flight.cancel_reason == "stopped"
    assert queued.status == TASK_STATUS_CANCELED
    assert queued.cancel_reason == "stopped"
    assert queued.time_started is None
    caller.answer("after the stop")
    # The executor is the user's: still usable.
    assert executor.submit(dask_tasks.add, 2, 3).result(timeout=WAIT) == 5
    # The registration outlives the stop.
    sup.start()
    assert set(sup.get_info().pools) == {"cluster"}
    assert sup.submit(dask_tasks.add, (3, 4), pool="cluster").get(WAIT) == 7


@pytest.mark.parametrize("in_flight", [False, True], ids=["idle", "in_flight"])
def test_stop_shuts_a_shutdown_pool_down(
    make_supervisor, client, gates, in_flight: bool
) -> None:
    executor = client.get_executor()
    sup = started_with_pool(make_supervisor, executor, size=1, shutdown=True)
    assert sup.submit(dask_tasks.add, (1, 2), pool="cluster").get(WAIT) == 3
    if in_flight:
        record = gated(sup, gates, "in_flight")
        caller = gates.accept()
    began = time.monotonic()
    sup.stop(wait=0.2 if in_flight else WAIT)
    # A task still in flight does not hold the stop: shutdown(wait=False).
    assert time.monotonic() - began < WAIT / 2
    if in_flight:
        assert record.status == TASK_STATUS_CANCELED
        assert record.cancel_reason == "stopped"
        caller.answer("after the stop")
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(dask_tasks.add, 1, 2)
    # The executor, not the client.
    assert client.submit(dask_tasks.add, 4, 5, pure=False).result(timeout=WAIT) == 9
    # A shutdown=True pool is forgotten by the stop.
    sup.start()
    assert sup.get_info().pools == {}
    with pytest.raises(ValueError, match="no pool 'cluster'"):
        sup.submit(dask_tasks.add, (1, 2), pool="cluster")


def test_remove_pool_at_once(make_supervisor, client, gates) -> None:
    sup = started_with_pool(make_supervisor, client.get_executor(), size=1)
    in_flight = gated(sup, gates, "in_flight")
    caller = gates.accept()
    queued = sup.submit(dask_tasks.add, (1, 1), pool="cluster")
    sup.remove_pool("cluster", wait=False)
    assert queued.status == TASK_STATUS_CANCELED
    assert queued.cancel_reason == "pool removed"
    assert queued.time_started is None
    assert sup.get_info().pools == {}
    with pytest.raises(ValueError, match="no pool 'cluster'"):
        sup.submit(dask_tasks.add, (1, 2), pool="cluster")
    # What is in flight runs on and completes its record.
    assert in_flight.status == TASK_STATUS_STARTED
    caller.answer("finished")
    assert in_flight.get(WAIT) == "finished"
