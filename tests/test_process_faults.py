"""The process pool survives what outcomes, callbacks and workers do: only the
task concerned fails, and one more task always goes through the same pool."""

from __future__ import annotations

import threading

import mptasks
import pytest
from conftest import WAIT

from atasker import (
    TT_MP,
    ProcessPoolBrokenError,
    ProcessPoolStartError,
    background_task,
    wait_completed,
)
from atasker.pools import mproster, processpool
from atasker.pools.mplaunch import SubprocessLauncher


def mp(f, sup, **options):
    return background_task(f, tt=TT_MP, supervisor=sup, **options)


@pytest.fixture
def pool(make_supervisor):
    sup = make_supervisor()
    sup.create_mp_pool(processes=1)
    sup.start()
    return sup


def alive(sup):
    assert mp(mptasks.add, sup)(2, 3).get(WAIT) == 5


@pytest.mark.parametrize("kind", ["SystemExit", "KeyboardInterrupt"])
def test_result_raising_when_unpickled_fails_that_task(pool, kind) -> None:
    task = mp(mptasks.result_exploding_in_parent, pool)(kind)
    with pytest.raises(TypeError, match="cannot be unpickled"):
        task.get(WAIT)
    alive(pool)


def test_exception_raising_when_unpickled_fails_that_task(pool) -> None:
    task = mp(mptasks.raise_exploding_in_parent, pool)()
    with pytest.raises(TypeError, match="cannot be unpickled"):
        task.get(WAIT)
    alive(pool)


def test_exception_unpickling_to_a_non_exception(pool) -> None:
    task = mp(mptasks.raise_non_exception, pool)()
    with pytest.raises(TypeError, match="not an exception"):
        task.get(WAIT)
    alive(pool)


def test_exception_whose_repr_and_str_raise(pool) -> None:
    pid = mp(mptasks.pid, pool)().get(WAIT)
    task = mp(mptasks.raise_bad_repr, pool)()
    with pytest.raises(mptasks.BadRepr):
        task.get(WAIT)
    assert mp(mptasks.pid, pool)().get(WAIT) == pid  # the worker went on


def test_unpicklable_exception_whose_repr_raises(pool) -> None:
    pid = mp(mptasks.pid, pool)().get(WAIT)
    task = mp(mptasks.raise_unpicklable_bad_repr, pool)()
    with pytest.raises(TypeError, match="cannot be pickled"):
        task.get(WAIT)
    assert mp(mptasks.pid, pool)().get(WAIT) == pid  # the worker went on


def test_system_exit_in_an_arguments_reduce_is_a_type_error(pool) -> None:
    with pytest.raises(TypeError, match=r"arguments .* cannot be pickled"):
        mp(mptasks.add, pool)(mptasks.ReduceRaises(), 1)
    alive(pool)


def test_callback_raising_system_exit_does_not_stop_callbacks(pool) -> None:
    def explode(result):
        raise SystemExit("callback refused")

    called = threading.Event()
    first = mp(mptasks.add, pool, callback=explode)(1, 1)
    assert first.get(WAIT) == 2
    second = mp(mptasks.add, pool, callback=lambda r: called.set())(1, 2)
    assert second.get(WAIT) == 3
    assert called.wait(WAIT)


def test_slow_callback_does_not_delay_other_results(pool) -> None:
    release = threading.Event()
    entered = threading.Event()

    def slow(result):
        entered.set()
        release.wait(WAIT)

    try:
        mp(mptasks.add, pool, callback=slow)(1, 1).get(WAIT)
        assert entered.wait(WAIT)
        assert mp(mptasks.add, pool)(1, 2).get(WAIT) == 3  # not behind `slow`
    finally:
        release.set()


@pytest.mark.parametrize(
    "initializer, cause, start_timeout",
    [
        # A worker that fails or exits must be told from one that hangs even
        # when a loaded machine takes seconds to start a process: only the
        # hanging initializer gets a short start timeout.
        (mptasks.failing_initializer, "initializer refused", WAIT),
        (mptasks.exit_initializer, "exit code 4", WAIT),
        (mptasks.hang_initializer, "did not start within", 0.3),
    ],
)
def test_workers_that_cannot_start_break_the_pool(
    make_supervisor, monkeypatch, initializer, cause, start_timeout
) -> None:
    monkeypatch.setattr(mproster, "RETRY_BASE", 0.01)
    monkeypatch.setattr(mproster, "START_TIMEOUT", start_timeout)
    sup = make_supervisor()
    sup.start()
    sup.create_mp_pool(processes=2, initializer=initializer)  # never blocks
    queued = [mp(mptasks.add, sup)(i, 1) for i in range(3)]
    for task in queued:
        with pytest.raises(ProcessPoolBrokenError, match=cause) as error:
            task.get(WAIT)
        assert isinstance(error.value.__cause__, ProcessPoolStartError)
    assert sup._mp_pool.broken is not None
    with pytest.raises(ProcessPoolBrokenError):  # new tasks fail at once
        mp(mptasks.add, sup)(1, 1).get(0.5)
    monkeypatch.undo()  # the new pool's workers get the usual start timeout
    sup.create_mp_pool(processes=1)  # a new pool
    alive(sup)


def test_a_refused_start_is_retried(monkeypatch) -> None:
    monkeypatch.setattr(mproster, "RETRY_BASE", 0.01)
    real = SubprocessLauncher(None, ())
    refusals = [OSError(11, "Resource temporarily unavailable")] * 2

    class Flaky:
        def launch(self, name):
            if refusals:
                raise refusals.pop()
            return real.launch(name)

        def close(self):
            real.close()

    pool = processpool.ProcessPool("test_refused_", Flaky(), 1, None, 0, 0, 0)
    pool.start()
    try:
        assert pool.wait_workers(1, WAIT)
        assert not refusals and pool.broken is None
    finally:
        assert pool.shutdown(None) == []


def test_bad_pool_arguments_are_refused_at_the_call(make_supervisor) -> None:
    sup = make_supervisor()
    with pytest.raises(TypeError, match="initargs"):
        sup.create_mp_pool(initargs=5)
    with pytest.raises(TypeError, match="initializer"):
        sup.create_mp_pool(initializer=5)
    with pytest.raises(TypeError, match="initializer cannot be pickled"):
        sup.create_mp_pool(initializer=lambda: None)
    with pytest.raises(ValueError, match="processes"):
        sup.create_mp_pool(processes=0)
    with pytest.raises(TypeError, match="maxtasksperchild"):
        sup.create_mp_pool(maxtasksperchild="3")
    with pytest.raises(ValueError, match="context"):
        sup.create_mp_pool(context="nope")
    with pytest.raises(TypeError, match="pool_size"):
        sup.set_mp_pool(pool_size="2")
    sup.mp_context = "fork"  # a forked worker needs nothing pickled
    sup.create_mp_pool(initializer=lambda: None)


def test_start_does_not_wait_for_workers(make_supervisor, monkeypatch) -> None:
    sup = make_supervisor()
    sup.create_mp_pool(processes=2, initializer=mptasks.hang_initializer)
    sup.start()  # returns although no worker can become ready
    task = mp(mptasks.add, sup)(1, 1)
    assert not task.wait(0.2)
    sup.stop(wait=False)
    assert task.cancelled()


def test_many_tasks_after_faults(pool) -> None:
    tasks = [mp(mptasks.add, pool)(i, 0) for i in range(50)]
    assert wait_completed(tasks, timeout=WAIT) == list(range(50))


def test_manager_failure_fails_every_task_it_held(make_supervisor, tmp_path) -> None:
    import os

    sup = make_supervisor()
    sup.create_mp_pool(processes=1)
    sup.start()
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    running = mp(mptasks.read_fifo, sup)(str(gate))
    with gate.open("w"):  # returns once the task runs
        queued = mp(mptasks.add, sup)(1, 1)
        pool = sup._mp_pool

        def broken_reap(retiring, ready):
            raise RuntimeError("manager bug")

        pool._roster.reap = broken_reap
        pool._wake()
        for task in (running, queued):
            with pytest.raises(ProcessPoolBrokenError, match="manager bug"):
                task.get(WAIT)
    with pytest.raises(ProcessPoolBrokenError):
        mp(mptasks.add, sup)(1, 1).get(WAIT)
    sup.create_mp_pool(processes=1)
    alive(sup)


def test_slow_callback_does_not_delay_co_mp_apply(pool, tmp_path) -> None:
    import asyncio
    import os

    from atasker import co_mp_apply

    release = threading.Event()
    entered = threading.Event()
    gate = tmp_path / "gate"
    os.mkfifo(gate)

    def slow(result):
        entered.set()
        release.wait(WAIT)

    async def other():
        awaiting = asyncio.ensure_future(
            co_mp_apply(mptasks.read_fifo, args=(str(gate),), supervisor=pool)
        )
        # Returns once the task runs, so `awaiting` waits on its record (the
        # loop step that submitted the task has ended): only then end it.
        writer = await asyncio.get_running_loop().run_in_executor(None, gate.open, "w")
        writer.close()
        return await asyncio.wait_for(awaiting, 2)

    try:
        mp(mptasks.add, pool, callback=slow)(1, 1).get(WAIT)
        assert entered.wait(WAIT)
        assert asyncio.run(other()) == ""
    finally:
        release.set()
