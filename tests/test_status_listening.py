"""`devup status` shows what the current process of a service listens on, never the last one's:
after `devup stop NAME`, and while `devup restart NAME` stops the old process, `listening` and
`listening_pids` are null (in the run record too), and once the new process is up they name it."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from conftest import DevupProcess, Project, py, wait_for

# A server that, on SIGTERM, waits until the test writes to its fifo: its stop lasts exactly as
# long as the test needs to look at the status of a stopping service.
SLOW_STOP = """
    import os, signal, socket, sys
    def held(_s, _f):
        with open(sys.argv[1]) as fifo:
            fifo.read()
        os._exit(0)
    signal.signal(signal.SIGTERM, held)
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(os.environ["PORT"]))); s.listen()
    print("listening", flush=True)
    signal.pause()
"""


def record(root: Path) -> dict[str, Any]:
    services: dict[str, Any] = json.loads((root / ".devup" / "run.json").read_text())["services"]
    return services


def audited(project: Project, name: str) -> dict[str, Any] | None:
    svc: dict[str, Any] = project.status()["services"][name]
    return svc if svc["audits"] >= 1 else None


def test_a_stopped_service_lists_no_listener_of_its_last_process(
    project: Project, running: list[DevupProcess]
) -> None:
    project.write(f"""
        [services.api]
        cmd = '''exec {py(SLOW_STOP)} /dev/null'''
    """)
    run = project.start("--no-watch")
    running.append(run)
    run.expect_line(r"1 service up")
    api = wait_for(lambda: audited(project, "api"), 15, what="api's audit")
    assert api["listening_pids"] == [api["pid"]]

    stopped = project.devup("stop", "api")
    assert stopped.returncode == 0, stopped.stderr
    api = project.status()["services"]["api"]
    assert api["state"] == "stopped"
    assert (api["listening"], api["listening_pids"], api["audits"]) == (None, None, 0)
    assert record(project.root)["api"]["listening_pids"] is None

    started = project.devup("start", "api")
    assert started.returncode == 0, started.stderr
    api = wait_for(lambda: audited(project, "api"), 15, what="the new api's audit")
    assert api["listening_pids"] == [api["pid"]]
    assert run.stop() == 130


def test_a_restarting_service_lists_no_listener_of_the_process_it_stops(
    project: Project, running: list[DevupProcess], tmp_path: Path
) -> None:
    fifo = tmp_path / "release"
    os.mkfifo(fifo)
    project.write(f"""
        [services.api]
        cmd = '''exec {py(SLOW_STOP)} {fifo}'''
    """)
    run = project.start("--no-watch")
    running.append(run)
    run.expect_line(r"1 service up")
    old = wait_for(lambda: audited(project, "api"), 15, what="api's audit")
    assert old["listening_pids"] == [old["pid"]]

    restarted = project.devup("restart", "--no-wait", "api")
    assert restarted.returncode == 0, restarted.stderr
    api = project.status()["services"]["api"]
    assert api["state"] == "stopping"  # held by its SIGTERM handler until the fifo is written
    assert (api["listening"], api["listening_pids"]) == (None, None)
    assert record(project.root)["api"]["listening_pids"] is None

    fifo.write_text("go\n")
    run.expect_line(r"api ready on ")
    new = wait_for(lambda: audited(project, "api"), 15, what="the new api's audit")
    assert new["pid"] != old["pid"] and new["listening_pids"] == [new["pid"]]
    # The new process waits on the fifo again: released from a thread while `stop` waits.
    release = threading.Thread(target=fifo.write_text, args=("go\n",))
    release.start()
    stop = project.devup("stop")
    release.join(5)
    assert stop.returncode == 0, stop.stderr
    assert run.wait(30) == 0
