"""devup's output and control I/O under pressure: a slow or non-blocking stdout, a full disk under
the logs, idle and concurrent control clients, hostile requests. Real pipes, sockets and devups."""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import re
import resource
import select
import shutil
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import DEVUP, Project, py, wait_for

from orchestrator.control import client
from orchestrator.control import server as control
from orchestrator.control.server import ControlServer
from orchestrator.output.logfiles import LogFile
from orchestrator.output.printer import Printer
from orchestrator.output.writer import TerminalWriter
from orchestrator.run.events import ControlRequested

FLOOD = """
import sys
name, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    print(f"{name} {i:07d} " + "x" * 60)
"""
TICK = "import time\nwhile True: print('tick', flush=True); time.sleep(0.05)"
IDLE = "import time\nwhile True: time.sleep(1)"
LINE = re.compile(r"\d\d:\d\d:\d\d (\S+) +\| (.*)")


def flood_project(project: Project, lines: int, services: int = 1) -> None:
    project.write(
        "".join(
            f"""
            [services.s{k}]
            cmd = '''{py(FLOOD)} s{k} {lines}'''
            port = false
            restart = "no"
            """
            for k in range(services)
        )
    )


def check_lines(text: str, lines: int, services: int = 1) -> list[str]:
    """Every service line whole and in order; returns devup's own lines."""
    nxt = {f"s{k}": 0 for k in range(services)}
    own = []
    for line in text.splitlines():
        m = LINE.fullmatch(line)
        assert m, f"torn line: {line[:200]!r}"
        if m[1] == "devup":
            own.append(m[2])
            continue
        assert m[2] == f"{m[1]} {nxt[m[1]]:07d} " + "x" * 60, line[:200]
        nxt[m[1]] += 1
    assert nxt == {f"s{k}": lines for k in range(services)}
    return own


# -- the terminal -------------------------------------------------------------------------------


def test_a_nonblocking_stdout_with_a_slow_reader_gets_every_line(project: Project) -> None:
    """Node task runners hand devup a stdout pipe with O_NONBLOCK: EAGAIN must mean "wait"."""
    n = 20_000
    flood_project(project, n)
    read_fd, write_fd = os.pipe()
    flags = fcntl.fcntl(write_fd, fcntl.F_GETFL)
    fcntl.fcntl(write_fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    proc = subprocess.Popen(
        [*DEVUP, "--no-watch"], cwd=project.root, stdout=write_fd, stderr=subprocess.PIPE
    )
    os.close(write_fd)
    chunks = []
    while True:  # a slow reader: 4 KiB at a time, each after a short wait for more
        select.select([read_fd], [], [], 0.001)
        data = os.read(read_fd, 4096)
        if not data:
            break
        chunks.append(data)
    os.close(read_fd)
    assert proc.wait(30) == 0
    assert proc.stderr is not None
    assert b"Traceback" not in proc.stderr.read()
    check_lines(b"".join(chunks).decode(), n)


def test_a_terminal_that_fell_behind_catches_up_from_the_logs_in_colour(tmp_path: Path) -> None:
    """Past the buffer, lines are not dropped but read back from the log files, in the same form
    (colours included) and order as if the terminal had kept up."""
    read_fd, write_fd = os.pipe()
    ticks = itertools.count(0, 5)  # every catch-up is 5 s behind: worth a note
    writer = TerminalWriter(write_fd, max_buffered_bytes=4096, clock=lambda: next(ticks))
    printer = Printer(["api", "web"], writer.write, color=True, terminal=writer)
    expected = Printer(["api", "web"], (out := []).append, color=True, clock=lambda: 0.0)
    for name in ("api", "web"):
        printer.add_log(name, LogFile(tmp_path / f"{name}.log", cap_bytes=64 * 1024))
    for i in range(5000):  # nobody reads the pipe meanwhile: the terminal falls behind
        name = ("api", "web")[i % 2]
        printer.lines(name, [f"{name} line {i}"])
        expected.lines(name, [f"{name} line {i}"])
    assert writer.behind
    got = bytearray()
    threading.Thread(target=writer.close, args=(30,), daemon=True).start()
    while True:
        data = os.read(read_fd, 65536)
        if not data:
            break
        got += data
        if got.count(b"\n") >= 5001:
            break
    printer.close_logs()
    os.close(write_fd)
    os.close(read_fd)
    stamp = re.compile(rb"\d\d:\d\d:\d\d")
    lines = [stamp.sub(b"00:00:00", line) for line in bytes(got).splitlines()]
    notes = [line for line in lines if b"catching up from the log files" in line]
    assert notes and all(b"s behind" in note for note in notes)
    shown = [line for line in lines if line not in notes]
    want = [stamp.sub(b"00:00:00", line) for line in b"".join(out).splitlines()]
    for name in (b"api", b"web"):  # per service: the same bytes in the same order
        assert [x for x in shown if name + b" line" in x] == [
            x for x in want if name + b" line" in x
        ]
    assert len(shown) == len(want)


def test_a_drop_notice_goes_ahead_of_the_backlog_it_is_about() -> None:
    read_fd, write_fd = os.pipe()
    writer = TerminalWriter(write_fd, max_buffered_bytes=100 * 1024)
    writer.write(b"f" * 70 * 1024 + b"\n")  # more than the pipe holds: the writer blocks on it
    for i in range(3):
        writer.write(f"backlog {i}\n".encode())
    writer.write(b"x" * 40 * 1024 + b"\n")  # in no log file, past the cap: dropped
    dropped = writer.take_dropped()
    writer.write(f"dropped {dropped} bytes\n".encode(), urgent=True)
    got = b""
    while b"backlog 2" not in got:
        got += os.read(read_fd, 65536)
    writer.close()
    os.close(write_fd)
    os.close(read_fd)
    assert dropped == 40 * 1024 + 1
    assert b"x" not in got and got.index(b"dropped 40961 bytes") < got.index(b"backlog 0")


@pytest.mark.timeout(300)  # ~25 MB through devup, its logs, `logs -n` and a pipe: a loaded machine
def test_the_logs_keep_every_line_and_the_terminal_gets_them_all_late(project: Project) -> None:
    """A flood of ~25 MB while nobody reads devup's stdout: the log files (NAME.log.1 + NAME.log)
    hold every line, `devup logs -n` reaches into the rotated part, and the terminal, read only
    once the flood is over, still gets every line in order, with nothing dropped."""
    n = 300_000
    flood_project(project, n)
    read_fd, write_fd = os.pipe()
    env = {**os.environ, "DEVUP_LOG_MAX_MB": "16"}
    proc = subprocess.Popen(
        [*DEVUP, "--no-watch"], cwd=project.root, stdout=write_fd, stderr=subprocess.PIPE, env=env
    )
    os.close(write_fd)
    logs = project.root / ".devup" / "logs"

    def log_lines() -> int:
        total = 0
        for path in (logs / "s0.log.1", logs / "s0.log"):
            if path.exists():
                total += path.read_bytes().count(b"| s0 ")
        return total

    wait_for(lambda: log_lines() == n, 240, interval=0.2, what="all lines in the log files")
    chunks: list[bytes] = []

    def read_all() -> None:
        while data := os.read(read_fd, 1 << 20):
            chunks.append(data)

    reader = threading.Thread(target=read_all)
    reader.start()
    recent = project.devup("logs", "-n", "200000", "s0", timeout=120)
    texts = [line.split(" | ", 1)[1] for line in recent.stdout.splitlines()]
    assert texts == [f"s0 {i:07d} " + "x" * 60 for i in range(n - 200_000, n)]
    reader.join(240)
    os.close(read_fd)
    assert proc.wait(60) == 0
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    assert b"dropped" not in stderr and b"not shown" not in stderr and b"Traceback" not in stderr
    own = check_lines(b"".join(chunks).decode(), n)
    # Said once, if it was a second or more behind when the catching up began (timing-dependent:
    # the note itself is tested with a scripted clock above).
    assert sum("s behind: catching up from the log files" in line for line in own) <= 1
    assert not any("dropped" in line for line in own)


# -- a full disk ---------------------------------------------------------------------------------


def test_a_log_write_that_fails_is_said_once_kept_and_retried(tmp_path: Path) -> None:
    now = [0.0]
    said: list[str] = []
    log = LogFile(tmp_path / "api.log", on_problem=said.append, clock=lambda: now[0])
    assert log.write(b"one\n") == (0, 0, 4)
    real = os.dup(log.fd)
    full = os.open("/dev/full", os.O_WRONLY)  # every write: ENOSPC
    os.dup2(full, log.fd)
    assert log.write(b"two\n") is None
    assert log.write(b"three\n") is None
    log.retry()
    assert len(said) == 1 and "No space left on device" in said[0], said
    os.dup2(real, log.fd)  # space again
    log.retry()  # too early: once per RETRY_S
    assert (tmp_path / "api.log").read_bytes() == b"one\n"
    now[0] += 1.0
    log.retry()
    assert said[1:] == ["writing api.log again"]
    assert log.write(b"four\n") == (0, 14, 19)
    log.close()
    assert (tmp_path / "api.log").read_bytes() == b"one\ntwo\nthree\nfour\n"
    os.close(full)
    os.close(real)


@pytest.mark.skipif(os.geteuid() != 0, reason="a private tmpfs needs root (unshare -m, mount)")
@pytest.mark.skipif(not shutil.which("unshare"), reason="no unshare(1)")
def test_a_full_disk_under_the_logs_keeps_the_services_running(project: Project) -> None:
    project.write(
        f"""
        [services.blast]
        cmd = '''{py(FLOOD)} blast 100000'''
        port = false
        restart = "no"

        [services.tick]
        cmd = '''{py(TICK)}'''
        port = false
        """
    )
    state = project.root / ".devup"  # the logs and the run record (rewritten at each change)
    state.mkdir(mode=0o700)
    script = (
        f"mount -t tmpfs -o size=1m,mode=0700 devup-test {state} && "
        f"exec {' '.join(DEVUP)} --no-watch"
    )
    proc = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if "No space left on device" in line:
                break
        for line in proc.stdout:  # its exit changes its state: the run record is written
            seen.append(line)
            if "blast finished" in line:
                break
        ticks = 0
        for line in proc.stdout:  # the services keep running, and the terminal shows them
            seen.append(line)
            ticks += "| tick" in line
            if ticks == 10:
                break
        assert ticks == 10, "".join(seen[-20:])
        status = json.loads(project.devup("status", "--json").stdout)
        assert status["services"]["tick"]["state"] == "running"
        assert proc.poll() is None
    finally:
        proc.send_signal(2)
        rest, _ = proc.communicate(timeout=20)
    seen.append(rest)
    text = "".join(seen)
    assert proc.returncode == 130, text[-2000:]
    said = [line for line in text.splitlines() if "| cannot write" in line]
    assert said == [line for line in said if "logs/blast.log: No space left on device;" in line] + [
        line for line in said if "the run record: No space left on device;" in line
    ]
    assert len(said) == 2, said  # each once, though every later write failed too
    assert "Traceback" not in text


# -- the control socket --------------------------------------------------------------------------


def answering_server(tmp_path: Path, gate: threading.Event | None = None) -> ControlServer:
    def answer(event: ControlRequested) -> None:
        event.reply({"ok": True, "pid": os.getpid(), "services": {}})

    server = ControlServer(tmp_path, answer, path=tmp_path / "c.sock")
    if gate is not None:
        accept_loop = server._accept_loop

        def gated() -> None:
            gate.wait()
            accept_loop()

        server._accept_loop = gated  # type: ignore[method-assign]
    server.start()
    return server


def concurrent_status(path: Path, count: int) -> list[Any]:
    results: list[Any] = [None] * count

    def ask(i: int) -> None:
        try:
            results[i] = client.request_path(path, "status")
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    return [threads, results]


def test_180_concurrent_status_requests_all_succeed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tried = []
    real_connect = client._connect

    def connect(*args: Any) -> None:
        try:
            real_connect(*args)
        finally:
            tried.append(1)

    monkeypatch.setattr(client, "_connect", connect)
    gate = threading.Event()  # devup busy: nothing accepted until all 180 have connected
    server = answering_server(tmp_path, gate)
    try:
        threads, results = concurrent_status(server.path, 180)
        wait_for(lambda: len(tried) == 180, 20, what="180 connects done")
        gate.set()
        for t in threads:
            t.join(30)
        failed = [r for r in results if not (isinstance(r, dict) and r.get("ok"))]
        assert failed == []
    finally:
        gate.set()
        server.stop()


def test_a_full_backlog_makes_the_client_retry_until_devup_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(control, "LISTEN_BACKLOG", 1)
    retried = threading.Event()
    real_sleep = client.time.sleep

    def sleep(seconds: float) -> None:
        retried.set()
        real_sleep(seconds)

    monkeypatch.setattr(client.time, "sleep", sleep)
    gate = threading.Event()
    server = answering_server(tmp_path, gate)
    try:
        threads, results = concurrent_status(server.path, 20)
        assert retried.wait(5)  # some found the backlog full
        gate.set()
        for t in threads:
            t.join(30)
        assert all(isinstance(r, dict) and r["ok"] for r in results), results
    finally:
        gate.set()
        server.stop()


def test_a_request_nested_50000_deep_gets_a_json_error(tmp_path: Path) -> None:
    server = answering_server(tmp_path)
    errors: list[Any] = []
    old_hook = threading.excepthook
    threading.excepthook = errors.append
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(10)
            conn.connect(str(server.path))
            conn.sendall(b"[" * 50_000 + b"\n")
            answer = json.loads(conn.makefile("rb").readline())
    finally:
        threading.excepthook = old_hook
        server.stop()
    assert answer == {"ok": False, "error": "bad request: nested too deeply"}
    assert errors == []


def test_idle_control_clients_cost_devup_no_descriptors_it_needs(project: Project) -> None:
    """With its descriptors limited to 256, devup holds 400 idle connections at bay: status and a
    restart (which needs pipes for the new process) still work."""
    project.write(
        f"""
        [services.tick]
        cmd = '''{py(IDLE)}'''
        port = false
        """
    )

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    proc = subprocess.Popen(
        [*DEVUP, "--no-watch"],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=limit,
    )
    idle: list[socket.socket] = []
    try:
        wait_for(lambda: project.devup("status").returncode == 0, 20, what="devup answering")
        path = client.socket_path(project.root)
        for _ in range(400):
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.settimeout(5)
            conn.connect(str(path))
            idle.append(conn)
        status = project.devup("status", "--json")
        assert status.returncode == 0, status.stderr
        restart = project.devup("restart", "tick")
        assert restart.returncode == 0, restart.stderr + restart.stdout
        assert proc.poll() is None
        assert len(os.listdir(f"/proc/{proc.pid}/fd")) < 150
    finally:
        for conn in idle:
            conn.close()
        proc.send_signal(2)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 130, out[-2000:]
    assert b"Traceback" not in out


def test_a_log_file_that_cannot_be_made_is_one_error_line(project: Project) -> None:
    project.write('[services.api]\ncmd = "true"\nport = false\nrestart = "no"\n')
    blocker = project.root / ".devup" / "logs" / "api.log.1" / "x"
    blocker.mkdir(parents=True)  # a folder where the last run's rotated log is removed
    result = project.devup("--no-watch")
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("devup: error: cannot create the log file "), result.stderr
    assert "Traceback" not in result.stderr
