"""Event bus faults: what a subscriber's own thread may do."""

from __future__ import annotations

from conftest import run_script

# A subscriber's callback is user code on a thread of the supervisor's: a
# stop() from there goes on in a thread of its own (it must not wait for the
# thread it runs on). It runs in a fresh interpreter: the bug hangs it.
STOP_FROM_SUBSCRIBER = """
import threading
from atasker import TaskSupervisor, background_task

stopped = threading.Event()
supervisor = TaskSupervisor(supervisor_id="stopper")

def on_event(event):
    if event.event == "success":
        supervisor.stop()
        stopped.set()

supervisor.subscribe("*", on_event)
supervisor.start()

@background_task(supervisor=supervisor)
def task():
    return 1

task()
assert stopped.wait(5), "stop() from a subscriber did not return"
supervisor.block()
print("stopped", supervisor.active)
"""


def test_stop_from_a_subscriber_returns() -> None:
    assert run_script(STOP_FROM_SUBSCRIBER) == ["stopped", "False"]
