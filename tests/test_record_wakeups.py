"""Waking waiters never waits behind user code; user code's BaseException is logged."""

from __future__ import annotations

import asyncio
import logging
import threading

from conftest import WAIT

from atasker import TASK_NORMAL, TT_THREAD, background_task
from atasker.core.task import TaskInfo


def _record() -> TaskInfo:
    return TaskInfo("w", abs, (-1,), {}, tt=TT_THREAD, priority=TASK_NORMAL)


def test_await_wakes_without_the_deferred_callbacks() -> None:
    # The process pool hands user callbacks to a callbacks thread (``defer``);
    # here that thread never runs them, as if a user callback hung there.
    record = _record()
    held: list = []
    user_calls: list = []
    record.add_done_callback(user_calls.append)

    def finish() -> None:
        record.set_result(5, defer=held.append)

    async def awaiter() -> int:
        return await record

    finisher = threading.Thread(target=finish)

    async def main() -> int:
        waiting = asyncio.ensure_future(awaiter())
        await asyncio.sleep(0)  # the awaiter runs up to its ``await record``
        assert not record.done()
        finisher.start()
        return await asyncio.wait_for(waiting, WAIT)

    assert asyncio.run(main()) == 5
    finisher.join(WAIT)
    assert user_calls == []  # the user's done callback waits for ``defer``
    assert len(held) == 1
    held[0]()
    assert user_calls == [record]


def test_thread_waiter_wakes_without_the_deferred_callbacks() -> None:
    record = _record()
    held: list = []
    record.add_done_callback(lambda r: None)
    finished = threading.Thread(
        target=record.set_result, args=(7,), kwargs={"defer": held.append}
    )
    finished.start()
    assert record.get(WAIT) == 7
    finished.join(WAIT)
    assert len(held) == 1


def test_system_exit_from_callbacks_is_caught_and_logged(supervisor, caplog) -> None:
    later = []
    done = threading.Event()

    def exit_callback(result):
        raise SystemExit(3)

    def exit_done(task):
        raise KeyboardInterrupt

    with caplog.at_level(logging.ERROR, logger="atasker"):
        task = background_task(abs, callback=exit_callback, supervisor=supervisor)
        gate = threading.Event()

        def blocked():
            assert gate.wait(WAIT)
            return 1

        record = background_task(
            blocked, callback=exit_callback, supervisor=supervisor
        )()
        record.add_done_callback(exit_done)
        record.add_done_callback(lambda t: (later.append(t.status), done.set()))
        gate.set()
        assert done.wait(WAIT)
        assert record.get(WAIT) == 1
        # A done callback added to a finished record: SystemExit is logged,
        # never raised to the caller.
        record.add_done_callback(lambda t: (_ for _ in ()).throw(SystemExit(4)))
    assert len(later) == 1
    assert "callback of task" in caplog.text
    assert "done callback" in caplog.text
    # The same pool still runs tasks.
    assert task(-2).get(WAIT) == 2


def test_co_mp_apply_not_delayed_by_a_slow_process_callback(make_supervisor) -> None:
    # The case: a process task's callback blocks the pool's callbacks
    # thread; an unrelated co_mp_apply must still return at once.
    import mptasks

    from atasker import TT_MP, co_mp_apply

    sup = make_supervisor()
    sup.create_mp_pool(processes=2)
    sup.start()
    release = threading.Event()
    in_callback = threading.Event()

    def slow_callback(result):
        in_callback.set()
        release.wait(WAIT)

    try:
        sup.put_task(mptasks.add, args=(1, 2), tt=TT_MP, callback=slow_callback)
        assert in_callback.wait(WAIT)

        async def main():
            return await asyncio.wait_for(
                co_mp_apply(mptasks.add, (3, 4), supervisor=sup), WAIT / 2
            )

        assert asyncio.run(main()) == 7
        assert not release.is_set()  # the callback was still running
    finally:
        release.set()


def test_exception_text_is_formatted_outside_the_record_lock(make_supervisor) -> None:
    import threading

    from conftest import WAIT

    sup = make_supervisor()
    sup.log_exceptions = False
    sup.start()
    entered, release = threading.Event(), threading.Event()

    class Slow(Exception):
        def __str__(self) -> str:  # user code, run while the task fails
            entered.set()
            release.wait(WAIT)
            return "slow"

    def fail() -> None:
        raise Slow()

    task = background_task(fail, supervisor=sup)()
    assert entered.wait(WAIT)
    looked = threading.Thread(target=task.wait, args=(0,))  # takes the record's lock
    looked.start()
    looked.join(WAIT / 2)
    blocked = looked.is_alive()
    release.set()
    looked.join(WAIT)
    assert not blocked, "the record's lock was held while user code ran"
    assert task.wait(WAIT)
    assert isinstance(task.exception, Slow)
    assert background_task(abs, supervisor=sup)(-1).get(WAIT) == 1


def test_exception_whose_str_raises_still_ends_the_task(make_supervisor) -> None:
    from conftest import WAIT

    from atasker import TASK_STATUS_EXCEPTION

    sup = make_supervisor()
    sup.log_exceptions = False
    sup.start()

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise SystemExit("from __str__")

    def fail() -> None:
        raise Unprintable()

    task = background_task(fail, supervisor=sup)()
    assert task.wait(WAIT)
    assert task.status == TASK_STATUS_EXCEPTION
    assert isinstance(task.exception, Unprintable)
    assert background_task(abs, supervisor=sup)(-1).get(WAIT) == 1
