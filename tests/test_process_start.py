"""How worker processes start and end: fresh interpreters, the user's main
script, fork, stop without waiting, interpreter exit. Each case runs in a
subprocess with a timeout (a failure there could hang or recurse)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mptasks
import pytest
from conftest import WAIT

from atasker import TT_MP, background_task

TESTS = str(Path(__file__).parent)
ROOT = str(Path(__file__).parent.parent)


def run(tmp_path: Path, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "main.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run(
        [sys.executable, *args, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": f"{ROOT}:{TESTS}", "PATH": "/usr/bin:/bin"},
    )


def test_unguarded_script_gets_an_error_that_says_what_to_do(tmp_path) -> None:
    result = run(
        tmp_path,
        """
        from atasker import TaskSupervisor, background_task, TT_MP

        def double(x):
            return 2 * x

        sup = TaskSupervisor("unguarded")
        sup.create_mp_pool(processes=1)
        sup.start()
        try:
            background_task(double, tt=TT_MP, supervisor=sup)(2).get(20)
        except Exception as exc:
            print("ERROR", exc)
        sup.stop()
        """,
    )
    assert result.returncode == 0, result.stderr
    assert "ERROR" in result.stdout
    assert 'if __name__ == "__main__":' in result.stdout


def test_guarded_script_target_runs(tmp_path) -> None:
    result = run(
        tmp_path,
        """
        from atasker import TaskSupervisor, background_task, TT_MP

        def double(x):
            return 2 * x

        if __name__ == "__main__":
            sup = TaskSupervisor("guarded")
            sup.create_mp_pool(processes=1)
            sup.start()
            task = background_task(double, tt=TT_MP, supervisor=sup)(2)
            print("RESULT", task.get(20))
            sup.stop()
        """,
    )
    assert result.returncode == 0, result.stderr
    assert "RESULT 4" in result.stdout


def test_interactive_main_target_gets_a_clear_error(tmp_path) -> None:
    code = textwrap.dedent(
        """
        from atasker import TaskSupervisor, background_task, TT_MP
        def double(x):
            return 2 * x
        sup = TaskSupervisor("interactive")
        sup.create_mp_pool(processes=1)
        sup.start()
        try:
            background_task(double, tt=TT_MP, supervisor=sup)(2).get(20)
        except Exception as exc:
            print("ERROR", exc)
        sup.stop()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": f"{ROOT}:{TESTS}", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "interactive session or `python -c`" in result.stdout


def test_exit_without_stop_reports_nothing_lost(tmp_path) -> None:
    result = run(
        tmp_path,
        """
        import mptasks
        from atasker import TaskSupervisor, background_task, TT_MP

        if __name__ == "__main__":
            sup = TaskSupervisor("forgotten")
            sup.create_mp_pool(processes=2)
            sup.start()
            print(background_task(mptasks.add, tt=TT_MP, supervisor=sup)(1, 2).get(20))
            assert sup._mp_pool.wait_workers(2, 20)
            print(" ".join(map(str, sup.get_info().mp_pids)))
        """,
    )
    assert result.returncode == 0, result.stderr
    assert "lost" not in result.stderr and "exit code" not in result.stderr
    pids = [int(p) for p in result.stdout.split()[1:]]
    assert len(pids) == 2
    for pid in pids:
        assert _gone(pid)


def _gone(pid: int) -> bool:
    import os
    import select

    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([handle], [], [], WAIT)[0])
    finally:
        os.close(handle)


def test_fork_context_workers_hold_no_sibling_pipe(tmp_path) -> None:
    # A forked worker that kept the parent's end of a sibling's pipe would
    # keep that sibling from seeing EOF when it is retired.
    result = run(
        tmp_path,
        """
        import os
        from atasker import TaskSupervisor

        def inodes(pid):
            found = set()
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    found.add(os.stat(f"/proc/{pid}/fd/{fd}").st_ino)
                except OSError:
                    pass
            return found

        if __name__ == "__main__":
            sup = TaskSupervisor("forked")
            sup.create_mp_pool(processes=3, context="fork")
            sup.start()
            pool = sup._mp_pool
            roster = getattr(pool, "_roster", pool)
            assert not hasattr(pool, "wait_workers") or pool.wait_workers(3, 20)
            workers = list(getattr(roster, "workers", None) or roster._workers)
            ends = {}
            for w in workers:
                conn = w.process.conn if hasattr(w.process, "conn") else w.conn
                ends[w.process.pid] = os.fstat(conn.fileno()).st_ino
            held = [
                (pid, other)
                for pid in ends
                for other, inode in ends.items()
                if inode in inodes(pid)
            ]
            print("HELD", held)
            sup.stop()
        """,
    )
    assert result.returncode == 0, result.stderr
    assert "HELD []" in result.stdout


def test_os_fork_child_closes_the_pools_descriptors(tmp_path) -> None:
    result = run(
        tmp_path,
        """
        import os
        import mptasks
        from atasker import TaskSupervisor, background_task, TT_MP

        if __name__ == "__main__":
            sup = TaskSupervisor("parent")
            sup.create_mp_pool(processes=1)
            sup.start()
            add = background_task(mptasks.add, tt=TT_MP, supervisor=sup)
            assert add(1, 1).get(20) == 2
            pool = sup._mp_pool
            fds = [pool._wakeup_r, pool._wakeup_w,
                   *(w.process.conn.fileno() for w in pool._roster.workers)]
            child = os.fork()
            if child == 0:
                left = [fd for fd in fds if os.path.exists(f"/proc/self/fd/{fd}")]
                os._exit(10 + len(left) if left else 0)
            _, status = os.waitpid(child, 0)
            print("CHILD", os.waitstatus_to_exitcode(status))
            assert add(2, 2).get(20) == 4
            sup.stop()
        """,
    )
    assert result.returncode == 0, result.stderr
    assert "CHILD 0" in result.stdout


def test_stop_without_waiting_does_not_wait_for_busy_workers(
    make_supervisor, tmp_path
) -> None:
    sup = make_supervisor()
    sup.create_mp_pool(processes=2)
    sup.start()
    busy, writers = [], []
    for i in range(2):
        fifo = tmp_path / f"gate{i}"
        os.mkfifo(fifo)
        busy.append(
            background_task(mptasks.read_fifo, tt=TT_MP, supervisor=sup)(str(fifo))
        )
        writers.append(fifo.open("w"))  # returns once the task has opened it
    began = time.monotonic()
    sup.stop(wait=False)
    assert time.monotonic() - began < 0.5
    assert all(t.cancelled() for t in busy)
    for writer in writers:
        writer.close()


@pytest.mark.parametrize("context", [None, "forkserver", "spawn"])
def test_start_methods(make_supervisor, context) -> None:
    sup = make_supervisor()
    sup.create_mp_pool(processes=1, context=context)
    sup.start()
    assert background_task(mptasks.add, tt=TT_MP, supervisor=sup)(1, 2).get(WAIT) == 3


def test_stop_with_a_deadline_returns_soon_after_it(make_supervisor, tmp_path) -> None:
    sup = make_supervisor()
    sup.create_mp_pool(processes=1)
    sup.start()
    fifo = tmp_path / "gate"
    os.mkfifo(fifo)
    busy = background_task(mptasks.read_fifo, tt=TT_MP, supervisor=sup)(str(fifo))
    queued = background_task(mptasks.add, tt=TT_MP, supervisor=sup)(1, 1)
    with fifo.open("w"):  # returns once the task runs
        began = time.monotonic()
        sup.stop(wait=0.3)
        took = time.monotonic() - began
    assert 0.3 <= took < 0.3 + 0.5
    assert busy.cancelled() and queued.cancelled()
