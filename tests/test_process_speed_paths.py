"""The process pool's short paths keep its promises.

A waiter is woken where its record is finished, never behind a user
callback; a submitter that sends a task to an idle worker itself, and a
manager that sends the next task as an answer comes, keep exact priorities
and give back what they took; a worker's channel carries whole messages.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from multiprocessing.connection import Connection

import mptasks
import pytest
from conftest import WAIT, started

from atasker import (
    TASK_HIGH,
    TASK_LOW,
    TASK_NORMAL,
    TASK_STATUS_CANCELED,
    TT_MP,
    TT_THREAD,
    WorkerLostError,
    background_task,
)
from atasker.pools import mpworker
from atasker.pools.mpchannel import READ_SIZE, Channel
from atasker.pools.mpcodec import CONTROL, encode_json
from atasker.pools.processpool import DIRECT_SEND_MAX, ProcessPool


def mp(f, sup, **options):
    return background_task(f, tt=TT_MP, supervisor=sup, **options)


# ----------------------------------------------------------------------
# Waiters never wait behind user callbacks
# ----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["done callback", "callback option"])
@pytest.mark.parametrize("tt", [TT_THREAD, TT_MP], ids=["thread", "process"])
def test_a_blocked_user_callback_delays_no_waiter(
    make_supervisor, tmp_path, tt, how
) -> None:
    """While a finished task's user callback blocks (on the pool thread that
    ran it, or on the process pool's one callbacks thread), other tasks'
    waiters are woken: results decoded on the manager, results and state
    updates whose classes live in user modules (decoded on the decoder
    thread)."""
    sup = started(make_supervisor, tt, threads=2, processes=1)
    entered, release = threading.Event(), threading.Event()

    def blocked(_):
        entered.set()
        release.wait(WAIT)

    options = {"callback": blocked} if how == "callback option" else {}
    gate = mptasks.ProcessGate(tmp_path / "gate")
    first = background_task(mptasks.wait_at_gate, tt=tt, supervisor=sup, **options)(
        gate.path
    )
    if how == "done callback":
        first.add_done_callback(blocked)  # before it ends: not in this thread
    try:
        gate.wait_arrived()
    finally:
        gate.release()
    try:
        assert entered.wait(WAIT), "the callback did not run"
        run = background_task(mptasks.without_task_id, tt=tt, supervisor=sup)
        assert run(41).get(WAIT) == 41
        assert run(mptasks.Progress(3)).get(WAIT) == mptasks.Progress(3)
        if tt == TT_MP:
            reported = mp(mptasks.progress_then_return, sup)(5)
            assert reported.get(WAIT) == 5
            assert reported.meta == mptasks.Progress(5)
        assert not release.is_set()  # all of it while the callback blocked
    finally:
        release.set()
    assert first.get(WAIT) == "released"


# ----------------------------------------------------------------------
# The submitter's hand-over
# ----------------------------------------------------------------------


def test_a_task_canceled_as_its_submitter_hands_it_over_frees_the_worker(
    make_supervisor, monkeypatch
) -> None:
    """The record is canceled after it was admitted and before it reached
    its worker: the worker and the slot it took are given back."""
    sup = started(make_supervisor, TT_MP, processes=1)
    pool = sup._mp_pool
    pids = pool.pids()
    start = ProcessPool._start
    canceled = []

    def cancel_first(self, worker, task, on_manager):
        if not on_manager and not canceled:
            canceled.append(task)
            assert task.cancel("as it was handed over")
        start(self, worker, task, on_manager)

    monkeypatch.setattr(ProcessPool, "_start", cancel_first)
    record = mp(mptasks.add, sup)(1, 1)
    assert canceled == [record]
    assert record.wait(WAIT)
    assert record.status == TASK_STATUS_CANCELED
    assert mp(mptasks.add, sup)(2, 3).get(WAIT) == 5
    assert pool.pids() == pids  # the same worker took the next task
    assert pool._admission.running == 0


def test_tasks_behind_busy_workers_wait_in_priority_order_unannounced(
    make_supervisor, monkeypatch, tmp_path
) -> None:
    """With every worker busy, a submit wakes nobody (the next answer wakes
    the manager); the queued tasks then start by priority."""
    sup = started(make_supervisor, TT_MP, processes=1)
    pool = sup._mp_pool
    gate = mptasks.ProcessGate(tmp_path / "gate")
    busy = mp(mptasks.wait_at_gate, sup)(gate.path)
    wakes = []
    log = tmp_path / "order"
    try:
        gate.wait_arrived()
        wake = pool._wake
        monkeypatch.setattr(pool, "_wake", lambda: (wakes.append(1), wake()))
        queued = [
            mp(mptasks.record, sup, priority=priority)(str(log), label)
            for priority, label in [
                (TASK_LOW, "low"),
                (TASK_NORMAL, "normal"),
                (TASK_HIGH, "high"),
            ]
        ]
        assert wakes == []
    finally:
        gate.release()
    assert busy.get(WAIT) == "released"
    assert [task.get(WAIT) for task in queued] == ["low", "normal", "high"]
    assert log.read_text().split() == ["high", "normal", "low"]


def test_a_task_handed_to_a_worker_that_just_died_fails_and_the_pool_goes_on(
    make_supervisor, monkeypatch
) -> None:
    """A submitter may take an idle worker that has died before the manager
    has seen it: its write fails or is lost, the manager then ends the
    worker and fails that task (as it would had it sent the task itself),
    and a replacement runs the next one."""
    sup = started(make_supervisor, TT_MP, processes=1)
    pool = sup._mp_pool
    (pid,) = pool.pids()
    lose = ProcessPool._lose
    seen, resume = threading.Event(), threading.Event()

    def held(self, worker, reason):
        if worker.process.pid == pid and not seen.is_set():
            seen.set()  # the manager saw the death: hold it before it acts
            resume.wait(WAIT)
        lose(self, worker, reason)

    monkeypatch.setattr(ProcessPool, "_lose", held)
    os.kill(pid, signal.SIGKILL)
    assert seen.wait(WAIT)
    try:
        handed = mp(mptasks.add, sup)(1, 1)  # to the dead, still idle worker
    finally:
        resume.set()
    with pytest.raises(WorkerLostError):
        handed.get(WAIT)
    assert mp(mptasks.add, sup)(2, 3).get(WAIT) == 5
    assert pool.pids() != [pid]


# ----------------------------------------------------------------------
# Whole messages
# ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "size",
    [10, DIRECT_SEND_MAX + 1, READ_SIZE + 1, 3_000_000],
    ids=["small", "sent-by-the-manager", "bigger-than-a-read", "megabytes"],
)
def test_arguments_and_results_cross_whole(make_supervisor, size) -> None:
    sup = started(make_supervisor, TT_MP, processes=2)
    data = os.urandom(size)
    tasks = [mp(mptasks.without_task_id, sup)(data) for _ in range(3)]
    assert [task.get(WAIT) == data for task in tasks] == [True] * 3


def _pair() -> tuple[Connection, Connection]:
    left, right = socket.socketpair()
    return Connection(left.detach()), Connection(right.detach())


def _frames(*messages: bytes) -> bytes:
    """Messages in Connection's framing, to be written at once."""
    return b"".join(len(m).to_bytes(4, "big", signed=True) + m for m in messages)


def test_a_channel_reads_every_message_one_read_brings_in() -> None:
    writer, reader = _pair()
    channel = Channel(reader)
    small = [b"a", b"", b"b" * 100]
    big = os.urandom(READ_SIZE * 3)
    with writer, reader:
        os.write(writer.fileno(), _frames(*small))  # three in one write
        assert channel.recv_ready() == small
        assert not channel.buffered()
        Channel(writer).send(big)  # bigger than a read: read whole
        writer.send_bytes(b"after")
        assert bytes(channel.recv()) == big
        assert channel.recv() == b"after"
        channel.send(b"back")  # and the other way, read by a Connection
        assert writer.recv_bytes() == b"back"


def test_a_channel_tells_an_end_between_messages_from_one_within() -> None:
    writer, reader = _pair()
    with reader:
        os.write(writer.fileno(), (10).to_bytes(4, "big") + b"12345")
        writer.close()
        with pytest.raises(OSError, match="end of file during message"):
            Channel(reader).recv_ready()
    writer, reader = _pair()
    with reader:
        writer.close()
        with pytest.raises(EOFError):
            Channel(reader).recv()


def test_a_control_message_read_with_the_payload_reaches_the_class_task(
    monkeypatch,
) -> None:
    """In a worker, the read that brought the payload of a class task also
    brought a CONTROL message for it (a stop sent at once): the control
    thread takes it from the channel's buffer, not from the socket."""
    parent, child = _pair()
    channel = Channel(child)
    monkeypatch.setattr(mpworker, "_channel", channel)
    stop = encode_json(CONTROL, {"stop": True})
    received, arrived = [], threading.Event()

    def on_message(value):
        received.append(value)
        arrived.set()

    with parent, child:
        os.write(parent.fileno(), _frames(b"payload", stop))
        assert channel.recv() == b"payload"
        assert channel.buffered()
        with mpworker.control_messages(on_message):
            assert arrived.wait(WAIT), "the buffered CONTROL was lost"
    assert received == [{"stop": True}]
