"""Races of the process pool's submitters, its manager and its workers, each
forced (monkeypatching, events) at the moment it can happen: whatever the
order, every task ends and the pool goes on. Every test ends by pushing one
more task through the same pool.

The tests that kill a worker or send a signal run in a fresh interpreter
(with a timeout): the pool they break could hang this one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from multiprocessing import connection
from pathlib import Path

import mptasks
import process_races_mp
from conftest import TESTS, WAIT, started

import atasker
from atasker import TT_MP, background_task
from atasker.pools import mproster
from atasker.pools.mpselect import KeptSelector
from atasker.pools.processpool import ProcessPool


def mp(f, sup, **options):
    return background_task(f, tt=TT_MP, supervisor=sup, **options)


def alive(sup):
    assert mp(mptasks.add, sup)(2, 3).get(WAIT) == 5


def wait_gone(sup, pid):
    """Wait until worker process ``pid`` is no longer one of the pool's."""
    deadline = time.monotonic() + WAIT
    while pid in sup._mp_pool.pids():
        assert time.monotonic() < deadline, f"worker {pid} is still the pool's"
        time.sleep(0.005)


# ----------------------------------------------------------------------
# In a fresh interpreter
# ----------------------------------------------------------------------

# The scripts wait at most this long for anything (a task of a sound pool
# ends in milliseconds); each prints name=value words, checked by the test.
SCRIPT_WAIT = 5.0

PRELUDE = f"""
import os, signal, sys, tempfile, threading
import mptasks, process_races_mp
from atasker import TT_MP, TaskSupervisor, background_task
from atasker.pools import mproster
from atasker.pools.mpchannel import Channel
from atasker.pools.processpool import ProcessPool

WAIT = {SCRIPT_WAIT!r}

def mp(f, sup):
    return background_task(f, tt=TT_MP, supervisor=sup)

def say(**words):
    print(*[f"{{k}}={{v}}" for k, v in words.items()], flush=True)

def started():
    sup = TaskSupervisor(supervisor_id="races", keep_finished=100)
    sup.set_thread_pool(pool_size=4, reserve_normal=0, reserve_high=0)
    sup.create_mp_pool(processes=1)
    sup.start()
    assert sup._mp_pool.wait_workers(1, WAIT)
    return sup

def alive(sup):
    task = mp(mptasks.add, sup)(2, 3)
    say(alive=task.wait(WAIT) and task.result == 5)

def stop(sup):  # a pool that lost a task may not stop: never wait for ever
    stopper = threading.Thread(target=sup.stop, kwargs={{"wait": WAIT}}, daemon=True)
    stopper.start()
    stopper.join(3 * WAIT)
    say(stopped=not stopper.is_alive())
    sys.stdout.flush()
    os._exit(0)
"""


def run_script(script: str) -> list[str]:
    """Run PRELUDE + ``script`` in a fresh interpreter, from the tests'
    directory, with the atasker this process imported; the words it
    printed. It must exit with 0 within its timeout."""
    package_root = str(Path(atasker.__file__).resolve().parent.parent)
    path = [package_root, os.environ.get("PYTHONPATH", "")]
    result = subprocess.run(
        [sys.executable, "-c", PRELUDE + script],
        cwd=TESTS,
        capture_output=True,
        text=True,
        timeout=8 * SCRIPT_WAIT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


LOST_DURING_A_DIRECT_SEND = """
sup = started()
pool = sup._mp_pool
original = ProcessPool._start
lost = []

def start(self, worker, task, *args, **kwargs):
    # The submitter has taken the idle worker (and holds its sending lock):
    # now its task is canceled and the worker dies, and the manager removes
    # it before the submitter goes on.
    if threading.current_thread() is threading.main_thread() and not lost:
        lost.append(worker)
        task.cancel("canceled as it was handed over")
        os.kill(worker.process.pid, signal.SIGKILL)
        with pool._lock:
            gone = pool._drained.wait_for(
                lambda: worker.state == mproster.GONE, WAIT
            )
        say(gone=gone)
    return original(self, worker, task, *args, **kwargs)

ProcessPool._start = start
first = mp(mptasks.add, sup)(1, 1)
say(canceled=first.wait(WAIT) and first.cancelled())
ProcessPool._start = original
# Two tasks that keep their workers until released: the second needs a
# worker of its own while the first runs, so a dead worker made idle
# again (on the idle stack, or made idle by the manager for the queued
# second) is given one of them.
gate = os.path.join(tempfile.mkdtemp(), "gate")
held = [mp(process_races_mp.wait_for_path, sup)(gate, 2 * WAIT) for _ in range(2)]
open(gate, "w").close()
for task in held:
    task.wait(WAIT)
say(held=",".join(f"{task.status}:{task.result}" for task in held))
alive(sup)
stop(sup)
"""


def test_a_worker_lost_during_a_direct_send_is_not_made_idle_again() -> None:
    words = run_script(LOST_DURING_A_DIRECT_SEND)
    assert words == [
        "gone=True",
        "canceled=True",
        "held=200:True,200:True",
        "alive=True",
        "stopped=True",
    ]


INTERRUPTED_DIRECT_SEND = """
sup = started()
original_submit, original_send = ProcessPool.submit, Channel.send
submitted, fired = [], []

def submit(self, task):
    submitted.append(task)
    return original_submit(self, task)

def send(self, message):
    # Ctrl-C in the submitting (main) thread as it sends the task to the
    # idle worker it took, before any byte is written.
    if threading.current_thread() is threading.main_thread() and not fired:
        fired.append(True)
        signal.raise_signal(signal.SIGINT)  # raises KeyboardInterrupt here
    return original_send(self, message)

ProcessPool.submit, Channel.send = submit, send
try:
    mp(mptasks.add, sup)(1, 1)
    interrupted = False
except KeyboardInterrupt:
    interrupted = True
ProcessPool.submit, Channel.send = original_submit, original_send
say(fired=bool(fired), interrupted=interrupted)
# Whether it ran or not, the task ends, and its worker and slot are free.
say(ended=submitted[0].wait(WAIT))
alive(sup)
stop(sup)
"""


def test_an_interrupt_during_a_direct_send_ends_the_task_and_frees_the_worker() -> None:
    words = run_script(INTERRUPTED_DIRECT_SEND)
    assert words == [
        "fired=True",
        "interrupted=True",
        "ended=True",
        "alive=True",
        "stopped=True",
    ]


# ----------------------------------------------------------------------
# In this interpreter
# ----------------------------------------------------------------------


def test_outcomes_read_before_a_worker_dies_mid_message_are_kept(
    make_supervisor,
) -> None:
    sup = started(make_supervisor, TT_MP)
    pid = mp(mptasks.pid, sup)().get(WAIT)  # the only worker
    # One read brings in the outcome and the start of another message,
    # then end of file: the outcome that arrived is the task's.
    task = mp(process_races_mp.answer_then_die_mid_message, sup)(42)
    assert task.get(WAIT) == 42
    # The worker died after its answer: the next task goes to its
    # replacement once the pool has seen that (not before: it cannot know).
    wait_gone(sup, pid)
    alive(sup)


def test_a_task_canceled_before_its_start_lets_the_next_one_start(
    make_supervisor, monkeypatch
) -> None:
    sup = make_supervisor(keep_finished=100)
    sup.set_thread_pool(pool_size=4, reserve_normal=0, reserve_high=0)
    sup.create_mp_pool(processes=1)
    # The only worker says READY; the manager holds that until two tasks
    # are queued (no worker is idle: their submits do not wake it).
    ready_seen, go_on = threading.Event(), threading.Event()
    original_started = ProcessPool._worker_started

    def worker_started(self, worker, message):
        ready_seen.set()
        go_on.wait(WAIT)
        return original_started(self, worker, message)

    # The manager admits the head T for the idle worker; T is canceled
    # before the manager starts it.
    first = {}
    original_start = ProcessPool._start

    def start(self, worker, task, *args, **kwargs):
        if task is first.get("task"):
            task.cancel("canceled as the manager admitted it")
        return original_start(self, worker, task, *args, **kwargs)

    monkeypatch.setattr(ProcessPool, "_worker_started", worker_started)
    monkeypatch.setattr(ProcessPool, "_start", start)
    sup.start()
    assert ready_seen.wait(WAIT)
    first["task"] = canceled = mp(mptasks.add, sup)(1, 1)
    after = mp(mptasks.add, sup)(2, 3)
    go_on.set()
    assert canceled.wait(WAIT) and canceled.cancelled()
    assert after.get(WAIT) == 5  # admissible, with the worker idle again
    alive(sup)


def test_a_worker_seen_dead_is_not_sent_the_next_task(
    make_supervisor, monkeypatch
) -> None:
    # The worker answers, then exits; one poll of the manager returns both
    # its answer and its death (the poll that sees the answer returns only
    # once the worker has exited, with what a new poll sees then). Patched
    # before the pool starts: every wait of its manager is this one.
    armed, queued, forced = threading.Event(), threading.Event(), threading.Event()
    original_wait = KeptSelector.wait

    def wait(self, timeout):
        ready = original_wait(self, timeout)
        answered = [item for kind, item in ready if kind == mproster.ANSWER]
        if answered and armed.is_set():
            armed.clear()
            queued.wait(WAIT)  # the next task is queued behind the answer
            sentinels = answered[0].process.sentinels
            assert sentinels, "no sentinel to wait on"
            assert connection.wait(sentinels, WAIT), "the worker did not exit"
            ready += [tag for tag in original_wait(self, 0) if tag not in ready]
            if (mproster.DIED, answered[0]) in ready:
                forced.set()
        return ready

    monkeypatch.setattr(KeptSelector, "wait", wait)
    sup = started(make_supervisor, TT_MP)
    armed.set()
    answering = mp(process_races_mp.answer_then_exit, sup)(1)
    after = mp(mptasks.add, sup)(2, 3)  # the only worker is busy: queued
    queued.set()
    assert answering.get(WAIT) == 1
    assert forced.is_set(), "the answer and the death were not seen at once"
    # Sent to a live worker, not to the dead one (WorkerLostError).
    assert after.get(WAIT) == 5
    alive(sup)
