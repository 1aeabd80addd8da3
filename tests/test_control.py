"""The control channel end to end: `devup status/restart/stop/start` against a real devup."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import stat
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import REPO, DevupProcess, Project, marked_processes, py, wait_for

from orchestrator.base.errors import DevupError
from orchestrator.base.paths import control_dir
from orchestrator.control import client
from orchestrator.control import server as control

SERVER = f"{sys.executable} {REPO / 'tests' / 'fixtures' / 'server.py'}"
WORKER = py("import time\nprint('working', flush=True)\nwhile True: time.sleep(1)")
SERVICES = f"""
    [services.api]
    cmd = "{SERVER}"
    [services.web]
    cmd = "{SERVER}"
    depends_on = ["api"]
    [services.worker]
    cmd = '''{WORKER}'''
    port = false
"""


def get_pid(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(json.loads(response.read())["pid"])


def test_status_restart_stop_start_and_stop_the_run(
    project: Project, running: list[DevupProcess], no_leftover_processes: str
) -> None:
    project.write(SERVICES)
    run = project.start("--no-watch")
    running.append(run)
    run.expect_line(r"3 services up")

    before = project.status()
    assert before["pid"] == run.proc.pid
    assert set(before["services"]) == {"api", "web", "worker"}
    for name, svc in before["services"].items():
        assert svc["state"] in ("ready", "running"), name
        assert psutil.pid_exists(svc["pid"]), name
        assert svc["restarts"] == 0 and svc["exit_code"] is None
    api = before["services"]["api"]
    assert api["url"] == f"http://127.0.0.1:{api['port']}"
    old_api_pid = get_pid(api["url"])
    assert old_api_pid == api["pid"]  # one program: the shell exec'd it, so status names it

    table = project.devup("status")
    assert table.returncode == 0
    assert table.stdout.splitlines()[1].split() == [
        "NAME", "STATE", "PID", "PORT", "URL", "RESTARTS", "UPTIME", "EXIT"
    ]  # fmt: skip

    result = project.devup("restart", "api")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "api ready"
    after = project.status()
    assert after["services"]["api"]["port"] == api["port"]
    assert after["services"]["api"]["pid"] != api["pid"]
    assert after["services"]["api"]["restarts"] == 1
    assert get_pid(api["url"]) != old_api_pid  # the new process serves on the same port
    for name in ("web", "worker"):
        assert after["services"][name]["pid"] == before["services"][name]["pid"], name

    result = project.devup("stop", "web")
    assert (result.returncode, result.stdout.strip()) == (0, "web stopped"), result.stderr
    web = project.status()["services"]["web"]
    assert (web["state"], web["pid"]) == ("stopped", None)
    assert not psutil.pid_exists(before["services"]["web"]["pid"])

    result = project.devup("start", "web")
    assert (result.returncode, result.stdout.strip()) == (0, "web ready"), result.stderr
    web = project.status()["services"]["web"]
    assert web["state"] == "ready" and psutil.pid_exists(web["pid"])
    get_pid(web["url"])

    result = project.devup("restart", "--no-wait", "web")
    assert (result.returncode, result.stdout.strip()) == (0, "web stopping"), result.stderr
    wait_for(lambda: project.status()["services"]["web"]["state"] == "ready", 15, what="web up")

    result = project.devup("stop")
    assert result.returncode == 0, result.stderr
    assert f"devup (pid {run.proc.pid}) stopped" in result.stdout
    assert run.wait() == 0
    assert marked_processes(no_leftover_processes) == []
    gone = project.devup("status")
    assert gone.returncode == 1
    assert gone.stderr == "devup: error: devup is not running in this project\n"


def test_a_restart_or_start_naming_no_service_is_answered_at_once(
    project: Project, running: list[DevupProcess]
) -> None:
    """The CLI always names a service; a program talking to the socket may not, and must get an
    answer rather than wait for services that were never named."""
    project.write(SERVICES)
    run = project.start("--no-watch")
    running.append(run)
    run.expect_line(r"3 services up")
    for verb in ("restart", "start"):
        for wait in (True, False):
            answer = client.request(project.root, verb, [], {"wait": wait}, timeout_s=5)
            assert answer == {"ok": False, "error": f"{verb} needs the name of a service"}
    assert all(s["restarts"] == 0 for s in project.status()["services"].values())


def test_every_verb_of_the_command_line_has_one_handler() -> None:
    assert set(control.HANDLERS) == set(client.VERBS)


def test_the_socket_is_private_and_devup_listens_on_no_tcp_port(
    project: Project, running: list[DevupProcess]
) -> None:
    project.write(SERVICES)
    run = project.start("--no-watch")
    running.append(run)
    run.expect_line(r"3 services up")

    path = client.socket_path(project.root)
    assert path.parent == control_dir(project.root)
    assert str(path).startswith(os.environ["XDG_RUNTIME_DIR"])
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    assert len(str(path).encode()) < 104
    conns = psutil.Process(run.proc.pid).net_connections(kind="all")
    inet = (socket.AF_INET, socket.AF_INET6)
    assert [c for c in conns if c.family in inet and c.status == psutil.CONN_LISTEN] == []
    assert any(c.family == socket.AF_UNIX and c.laddr == str(path) for c in conns)
    assert run.stop() == 130
    assert not path.exists()


def test_unknown_names_get_did_you_mean_before_connecting(project: Project) -> None:
    project.write(SERVICES)
    result = project.devup("restart", "apj")
    assert result.returncode == 2
    assert result.stderr == 'devup: error: unknown service "apj"\nhint: did you mean "api"?\n'
    result = project.devup("status")
    assert (result.returncode, result.stderr) == (
        1,
        "devup: error: devup is not running in this project\n",
    )


def test_a_socket_left_by_a_killed_devup_does_not_block_the_next_start(
    project: Project, running: list[DevupProcess]
) -> None:
    project.write(SERVICES)
    run = project.start("--no-watch")
    running.append(run)
    run.expect_line(r"3 services up")
    groups = [svc["pid"] for svc in project.status()["services"].values()]
    run.proc.kill()
    run.wait()
    for pgid in groups:  # what a killed devup left behind (the next run's cleanup is not ours)
        os.killpg(pgid, signal.SIGKILL)

    path = client.socket_path(project.root)
    assert stat.S_ISSOCK(path.stat().st_mode)  # still there, nobody accepting
    gone = project.devup("status")
    assert (gone.returncode, gone.stderr) == (
        1,
        "devup: error: devup is not running in this project\n",
    )

    again = project.start("--no-watch")
    running.append(again)
    again.expect_line(r"3 services up")
    assert project.status()["pid"] == again.proc.pid
    assert again.stop() == 130


def test_a_peer_of_another_user_is_refused(tmp_path: Path) -> None:
    left, right = socket.socketpair()
    with left, right:
        assert control.peer_uid(left) == os.getuid()
    posted: list[object] = []
    path = tmp_path / "run" / "c.sock"
    server = control.ControlServer(tmp_path, posted.append, allowed_uid=os.getuid() + 1, path=path)
    server.start()
    try:
        with pytest.raises(DevupError, match="refused: the peer is another user"):
            client.check_answer(client.request_path(path, "status", timeout_s=5))
        # A request longer than the socket's buffer: the server closes before it is all sent.
        many = ["x" * 1000] * 2000
        with pytest.raises(DevupError, match="refused: the peer is another user"):
            client.check_answer(client.request_path(path, "restart", many, timeout_s=5))
        assert posted == []
    finally:
        server.stop()
    assert not path.exists()


def test_a_request_is_posted_and_answered_from_another_thread(tmp_path: Path) -> None:
    from orchestrator.run.events import ControlRequested

    def answer(event: ControlRequested) -> None:
        event.reply({"ok": True, "verb": event.verb, "names": list(event.names)})

    server = control.ControlServer(tmp_path, answer, path=tmp_path / "d" / "c.sock")
    server.start()
    try:
        got = client.request_path(server.path, "restart", ["api"], timeout_s=5)
        assert got == {"ok": True, "verb": "restart", "names": ["api"]}
        bad = client.request_path(server.path, "exec", ["rm -rf /"], timeout_s=5)
        assert bad == {"ok": False, "error": "unknown verb 'exec'"}
    finally:
        server.stop()
    wait_for(lambda: not server.path.exists(), 5, what="the socket removed")


def test_status_fast_path_answers_as_the_full_cli_does(project: Project) -> None:
    """`devup status [--json]` skips click and the manifest parser; same answers, same errors."""
    project.write(f"""
        [services.api]
        cmd = "{SERVER}"
    """)
    fast = project.devup("status")  # entry.py's path
    assert fast.returncode == 1
    assert fast.stderr == "devup: error: devup is not running in this project\n"
    full = project.devup("--no-color", "status")  # any other form goes through click
    assert (full.returncode, full.stderr) == (fast.returncode, fast.stderr)


SLEEPER = py("import time; print('working', flush=True); time.sleep(600)")  # one Procfile line
NO_CLICK = (
    "import sys; sys.modules['click'] = None; from orchestrator.cli.entry import main; main()"
)


def test_restart_skips_click_and_checks_names_against_the_running_devup(
    project: Project, running: list[DevupProcess]
) -> None:
    """`devup restart NAME` goes straight to the running devup (here click cannot even be
    imported), which knows its names: a typo, a Procfile group, a devports.toml edited since."""
    project.write(
        f"""
        [services.api]
        cmd = '''{WORKER}'''
        port = false
        [services.jobs]
        procfile = "Procfile"
        port = false
        """,
        Procfile=f"a: {SLEEPER}\nb: {SLEEPER}\n",
    )
    run = project.start("--no-watch")
    running.append(run)
    run.expect_line(r"3 services up")
    before = project.status()["services"]

    def no_click(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-c", NO_CLICK, *args]
        return subprocess.run(cmd, cwd=project.root, capture_output=True, text=True, timeout=30)

    fast = no_click("restart", "api")
    assert (fast.returncode, fast.stdout, fast.stderr) == (0, "api running\n", "")
    after = project.status()["services"]
    assert after["api"]["pid"] != before["api"]["pid"]
    assert [after[n]["pid"] for n in ("jobs.a", "jobs.b")] == [
        before[n]["pid"] for n in ("jobs.a", "jobs.b")
    ]
    fast = no_click("restart", "--no-wait", "jobs.a")
    assert (fast.returncode, fast.stdout) == (0, "jobs.a stopping\n"), fast.stderr

    typo = project.devup("restart", "apj")
    assert (typo.returncode, typo.stdout) == (2, "")
    assert typo.stderr == 'devup: error: unknown service "apj"\nhint: did you mean "api"?\n'
    group = project.devup("restart", "jobs")
    assert group.returncode == 0, group.stderr
    group_lines = ["jobs.a running", "jobs.b running"]
    assert sorted(group.stdout.split("\n")) == ["", *group_lines]
    fast = no_click("restart", "jobs")  # a group: expanded against the run's names
    assert (fast.returncode, sorted(fast.stdout.split("\n"))) == (0, ["", *group_lines])
    typo = no_click("restart", "apj")
    assert (typo.returncode, typo.stderr) == (
        2,
        'devup: error: unknown service "apj"\nhint: did you mean "api"?\n',
    )

    manifest = project.root / "devports.toml"
    os.utime(manifest, ns=(manifest.stat().st_atime_ns, manifest.stat().st_mtime_ns + 10**9))
    assert no_click("restart", "api").returncode == 0  # edited since the run read it
    assert project.devup("restart", "api").returncode == 0

    # A Procfile line removed since the run started: the run still has it, and both paths act on
    # it (the CLI's name check against the files as they are now would refuse it).
    (project.root / "Procfile").write_text(f"a: {SLEEPER}\n")
    gone = project.devup("restart", "jobs.b")
    assert (gone.returncode, gone.stdout, gone.stderr) == (0, "jobs.b running\n", "")
    still_a_typo = project.devup("restart", "jobs.c")
    assert still_a_typo.returncode == 2 and 'unknown service "jobs.c"' in still_a_typo.stderr
    assert project.devup("stop").returncode == 0
    assert run.wait() == 0


def test_an_answer_cut_off_is_one_error_line_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()

    def answer_half() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b'{"ok": tr')  # devup killed while it answered

    server = threading.Thread(target=answer_half, daemon=True)
    server.start()
    with listener, pytest.raises(DevupError, match="devup ended before it answered"):
        client.request_path(path, "status", timeout_s=5)
    server.join(5)


def test_a_client_that_gave_up_frees_its_connection(tmp_path: Path) -> None:
    """A restart that never settles (a port busy for ever): the client's timeout passes; the
    server's thread for it must end, or 64 of them would lock every later command out."""
    server = control.ControlServer(tmp_path, lambda request: None, path=tmp_path / "d" / "c.sock")
    server.start()
    try:
        with pytest.raises(DevupError, match="did not answer"):
            client.request_path(server.path, "restart", ["api"], timeout_s=0.2)
        wait_for(lambda: not server._conns, 10, what="the server to let the connection go")
    finally:
        server.stop()


def test_a_client_that_half_closes_after_its_request_still_gets_its_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`nc -N` and socat shut their writing side once the request is sent and read on: the
    server, checking while it waits on the supervisor whether its client is gone, must take end
    of file for a half close, and answer; a client that closed is still let go (the test above)."""
    checks: queue.SimpleQueue[bool] = queue.SimpleQueue()
    real_hung_up = control._hung_up

    def observed(conn: socket.socket) -> bool:  # the real check, seen by the test
        gone = real_hung_up(conn)
        checks.put(gone)
        return gone

    monkeypatch.setattr(control, "_hung_up", observed)
    monkeypatch.setattr(control, "HANGUP_POLL_S", 0.01)
    requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
    server = control.ControlServer(tmp_path, requests.put, path=tmp_path / "d" / "c.sock")
    server.start()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(10)
            conn.connect(str(server.path))
            conn.sendall(b'{"verb": "restart", "names": ["api"]}\n')
            conn.shutdown(socket.SHUT_WR)
            request = requests.get(timeout=10)
            while not checks.empty():  # looks that may have begun before the half close
                checks.get()
            # Two looks from now on: the second surely began after the half close.
            for _ in range(2):
                assert checks.get(timeout=10) is False, "the half close taken for a hang-up"
            request.reply({"ok": True, "services": {"api": "ready"}, "failed": []})
            answer = b""
            while chunk := conn.recv(4096):
                answer += chunk
        assert json.loads(answer) == {"ok": True, "services": {"api": "ready"}, "failed": []}
        wait_for(lambda: not server._conns, 10, what="the server to let the connection go")
    finally:
        server.stop()
