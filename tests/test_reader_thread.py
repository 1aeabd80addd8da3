"""A service whose output reader thread cannot start (threading.Thread.start raising
RuntimeError "can't start new thread", as under a thread or process limit) fails to start with
one clear line; the run and the other services go on, and nothing is left behind."""

from __future__ import annotations

import sys

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
    run = DevupProcess(project.root, ["--no-watch"], [sys.executable, "-c", NO_THREAD_FOR_B])
    running.append(run)
    run.expect_line(
        r"devup\s+\| b could not start: no thread to read its output \(can't start new thread; "
        r"a limit on threads or processes, ulimit -u\); stopping it, not retrying until "
        r"`devup restart b`$"
    )
    run.expect_line(r"2 services up, 1 not up")
    services = project.status()["services"]
    assert [services[n]["state"] for n in "abc"] == ["ready", "stopped", "ready"]
    assert services["b"]["pid"] is None
    assert run.stop() == 130
    assert not [line for line in run.lines if "Traceback" in line]
