"""A service whose output reader thread cannot start (threading.Thread.start raising
RuntimeError "can't start new thread", as under a thread or process limit) fails to start with
one clear line; the run and the other services go on, and nothing is left behind."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from typing import Any

from conftest import REPO, DevupProcess, Project

SERVER = f"{sys.executable} {REPO / 'tests' / 'fixtures' / 'server.py'}"
# devup itself, with the one failure injected where it happens: the start of the thread that
# would read b's output (the machine's real limit cannot be set for one thread of one process;
# as root RLIMIT_NPROC is not enforced, and under a shared uid it counts other users' threads).
NO_THREAD_FOR_B = f"""
import runpy, sys, threading
start = threading.Thread.start
def limited(self):
    if self.name == "devup-read-b":
        raise RuntimeError("can't start new thread")
    start(self)
threading.Thread.start = limited
sys.path.insert(0, {str(REPO)!r})
sys.argv = ["devup", *sys.argv[1:]]
runpy.run_module("orchestrator", run_name="__main__")
"""


class LimitedDevup(DevupProcess):
    def __init__(self, project: Project, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", NO_THREAD_FOR_B, *args],
            cwd=project.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._seen = 0
        threading.Thread(target=self._read, daemon=True).start()


def status(project: Project) -> dict[str, Any]:
    result = project.devup("status", "--json")
    assert result.returncode == 0, result.stderr
    services: dict[str, Any] = json.loads(result.stdout)["services"]
    return services


def test_a_service_whose_reader_thread_cannot_start_fails_alone(
    project: Project, running: list[DevupProcess]
) -> None:
    project.write(f"""
        [services.a]
        cmd = "{SERVER}"
        [services.b]
        cmd = "{SERVER}"
        [services.c]
        cmd = "{SERVER}"
        depends_on = ["a"]
    """)
    run = LimitedDevup(project, "--no-watch")
    running.append(run)
    run.expect_line(
        r"devup\s+\| b could not start: no thread to read its output \(can't start new thread; "
        r"a limit on threads or processes, ulimit -u\); stopping it, not retrying until "
        r"`devup restart b`$"
    )
    run.expect_line(r"2 services up, 1 not up")
    services = status(project)
    assert [services[n]["state"] for n in "abc"] == ["ready", "stopped", "ready"]
    assert services["b"]["pid"] is None
    assert run.stop() == 130
    assert not [line for line in run.lines if "Traceback" in line]
