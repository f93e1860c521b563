"""Process class tasks and functions of test_classtasks_faults.py: top-level
names of an importable module, so that a worker process finds them.

They tell the test what they do through classtasks_mp's Listener (one JSON
message per connection). Some force an interleaving inside the worker
process; each says how.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import threading
import time
import types
from typing import Any

from classtasks_mp import WAIT, Listener, read_message, tell, wait_stopping

from atasker import TT_MP, Task
from atasker.pools import mpworker

# ----------------------------------------------------------------------
# The requests a worker's run got (reload, then stop, before start returns)
# ----------------------------------------------------------------------

_requests: list[str] = []
_heard = threading.Condition()


def _hear_requests() -> None:
    """In this worker, from now on: note each stop or reload request its
    class task's run gets, once the run has taken it."""
    from atasker.classtasks import run

    with _heard:
        _requests.clear()
    request = run.LocalRun.request
    if getattr(request, "noted", False):
        return
    nothing = getattr(run, "NOTHING", None)

    def noted(self: Any, *args: Any, **kwargs: Any) -> Any:
        answer = request(self, *args, **kwargs)
        reload = args[0] if args else kwargs.get("reload", nothing)
        with _heard:
            _requests.append("stop" if reload is nothing else "reload")
            _heard.notify_all()
        return answer

    noted.noted = True  # type: ignore[attr-defined]
    run.LocalRun.request = noted  # type: ignore[method-assign]


class ReloadThenStop(Task):
    """Runs until asked to stop or reload; then returns only once the run
    has also taken a stop: both requests reach the instance before its
    start returns."""

    NAME = "faults/reload-then-stop"
    TT = TT_MP

    def start(self):
        _hear_requests()
        tell(self.data["socket"], {"event": "running", "data": self.data})
        if wait_stopping(self):
            with _heard:
                _heard.wait_for(lambda: "stop" in _requests, WAIT)
        return "done"


# ----------------------------------------------------------------------
# A run that ends by itself while a newer reload is on its way
# ----------------------------------------------------------------------

_running: dict[str, Any] = {}


class Reloadable(Task):
    """Tells ``running`` as it starts, and ``ended`` once its run is over
    (its context exits: the run has seen whether a reload came). Returns at
    once if ``data["quick"]``, else runs until stopped."""

    NAME = "faults/reloadable"
    TT = TT_MP

    @staticmethod
    @contextlib.contextmanager
    def provide_context():
        try:
            yield
        finally:
            data = _running.pop("data", None)
            if data is not None:
                tell(data["socket"], {"event": "ended", "data": data})

    def start(self):
        _running["data"] = self.data
        tell(self.data["socket"], {"event": "running", "data": self.data})
        if self.data.get("quick"):
            return "quick"
        return "stopped" if wait_stopping(self) else "never stopped"


class Stopper(Task):
    """Runs until stopped (any data)."""

    NAME = "faults/stopper"
    TT = TT_MP

    def start(self):
        return "stopped" if wait_stopping(self) else "never stopped"


def double(n):
    return n * 2


# ----------------------------------------------------------------------
# A stop() that emits much while the parent sends a big reload
# ----------------------------------------------------------------------

FLUSHED = 2000  # events stop() emits, of about 2 kB each: 4 MB in all
BLOB = 4_000_000  # the size of the big reload's data


def ask(path: str, message: Any) -> None:
    """Tell the AskingListener at ``path`` ``message`` and wait (WAIT at
    most) until it answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(WAIT)
        connection.connect(path)
        connection.sendall(json.dumps(message).encode())
        connection.shutdown(socket.SHUT_WR)
        assert connection.recv(16) == b"go", "never answered"


class AskingListener(Listener):
    """A Listener that can also answer an :func:`ask`."""

    def answer(self, before: Any) -> Any:
        """Receive the next message (an ask), call ``before(message)``, then
        let the asker go on; the message."""
        with self.accept("asked") as connection:
            message = read_message(connection)
            before(message)
            connection.sendall(b"go")
        return message


class Chatty(Task):
    """Runs until stopped. With ``data["chatty"]``, its stop() (on the
    worker's control thread) first asks the test (which sends a big reload
    meanwhile), then emits FLUSHED events of about 2 kB."""

    NAME = "faults/chatty"
    TT = TT_MP

    def start(self):
        size = len(self.data.get("blob", ""))
        tell(self.data["socket"], {"event": "running", "size": size})
        return "stopped" if wait_stopping(self) else "never stopped"

    def stop(self):
        if not self.data.get("chatty"):
            return
        ask(self.data["socket"], {"event": "stopping"})
        pad = "x" * 2000
        for n in range(FLUSHED):
            self.emit("flushed", {"n": n, "pad": pad})


# ----------------------------------------------------------------------
# A soft time limit that rings as the class task's control block exits
# ----------------------------------------------------------------------


def _ring_as_the_block_exits() -> None:
    """In this worker, once: the next call from this thread of mpworker's
    os.write (the wake-up of the control thread) or _disarm_soft_limit,
    whichever comes first as the class task's control block exits, first
    waits, if the soft time limit is armed, until its alarm rings (its
    SoftTimeLimitExceeded is raised there)."""
    real_os = mpworker.os
    real_disarm = mpworker._disarm_soft_limit
    main = threading.current_thread()

    def ring() -> None:
        if threading.current_thread() is not main:
            return
        mpworker.os = real_os
        mpworker._disarm_soft_limit = real_disarm
        left = signal.getitimer(signal.ITIMER_REAL)[0]
        while left > 0:
            time.sleep(left)
            left = signal.getitimer(signal.ITIMER_REAL)[0]

    class RingingOs(types.ModuleType):
        def __getattr__(self, name: str) -> Any:
            return getattr(real_os, name)

        def write(self, fd: int, data: bytes) -> int:
            ring()
            return real_os.write(fd, data)

    def disarm() -> None:
        ring()
        real_disarm()

    mpworker.os = RingingOs("os")  # type: ignore[assignment]
    mpworker._disarm_soft_limit = disarm


class RingsAsItEnds(Task):
    """Returns at once; its soft time limit rings as its control block
    exits (see _ring_as_the_block_exits)."""

    NAME = "faults/rings-as-it-ends"
    TT = TT_MP
    SOFT_TIME_LIMIT = 0.5

    def start(self):
        _ring_as_the_block_exits()
        return "ended in time"


def worker_threads():
    """The names of this worker process's threads."""
    return sorted(t.name for t in threading.enumerate())
