"""`devup who` and port allocation against real listeners in another process, on every address
family; a service of this run, of another project's run, and a killed run's leftover."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import DEVUP, REPO, DevupProcess, Project, wait_for

from orchestrator.config.manifest import Manifest, ServiceSpec, Settings
from orchestrator.ports.allocation import allocate_ports, is_port_free

SERVER = f"{sys.executable} {REPO / 'tests' / 'fixtures' / 'server.py'}"


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback")

HOLDER = textwrap.dedent(
    """
    import socket, sys
    family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
    sock = socket.socket(family)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((sys.argv[1], int(sys.argv[2])))
    sock.listen()
    print("listening", flush=True)
    sys.stdin.read()
    """
)


@pytest.fixture
def holder_on(pool: tuple[int, int]) -> Iterator[object]:
    procs: list[subprocess.Popen[str]] = []

    def start(address: str) -> tuple[subprocess.Popen[str], int]:
        port = next(p for p in range(pool[0], pool[1]) if is_port_free(p))
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, address, str(port), "who-holder-marker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "listening\n"
        return proc, port

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def devup(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DEVUP, *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
    )


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        pytest.param("127.0.0.1", "127.0.0.1", id="127.0.0.1"),
        pytest.param("0.0.0.0", "0.0.0.0", id="0.0.0.0"),
        pytest.param("::1", "[::1]", id="::1", marks=needs_ipv6),
        pytest.param("::", "[::]", id="::", marks=needs_ipv6),
    ],
)
def test_a_held_port_is_never_handed_out_and_who_names_the_holder(
    holder_on: object, address: str, shown: str, tmp_path: Path
) -> None:
    proc, port = holder_on(address)  # type: ignore[operator]
    # The pool starts at the held port: the lowest-free rule would pick it if it looked free.
    spec = ServiceSpec(name="api", cmd="true", cwd=tmp_path)
    pinned = ServiceSpec(name="pin", cmd="true", cwd=tmp_path, preferred_port=port)
    manifest = Manifest(
        tmp_path / "devports.toml",
        Settings(port_range=(port, port + 50)),
        {"api": spec, "pin": pinned},
    )
    plan = allocate_ports(manifest, ["api", "pin"])
    assert port not in plan.ports.values()
    assert any(
        f"pin: {port} is held by python" in m and f"(pid {proc.pid})" in m for m in plan.messages
    )

    result = devup(tmp_path, "who", str(port))  # outside any project
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"port {port}: python") and lines[0].endswith(f"(pid {proc.pid})")
    assert f"  address  {shown}:{port}" in lines
    assert any(line.startswith("  command  ") and "who-holder-marker" in line for line in lines)
    assert f"  folder   {os.getcwd()}" in lines
    assert "  devup    not started by devup" in lines
    report = json.loads(devup(tmp_path, "who", str(port), "--json").stdout)
    [entry] = report["listeners"]
    assert entry["pid"] == proc.pid and entry["addresses"] == [f"{shown}:{port}"]
    assert entry["user"] == psutil.Process().username() and entry["owner"] is None


def test_nothing_listening_exits_1(tmp_path: Path, pool: tuple[int, int]) -> None:
    port = next(p for p in range(pool[0], pool[1]) if is_port_free(p))
    result = devup(tmp_path, "who", str(port))
    assert result.returncode == 1
    assert result.stderr == f"nothing listens on port {port}\n" and result.stdout == ""
    as_json = devup(tmp_path, "who", str(port), "--json")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout) == {"port": port, "listeners": []}


def test_who_tells_this_run_another_run_and_a_killed_runs_leftover(
    project: Project, running: list[DevupProcess], tmp_path: Path
) -> None:
    project.write(f"""
        [services.api]
        cmd = "{SERVER}"
    """)
    run = project.start("--no-watch")
    running.append(run)
    port = int(run.expect_line(r"api started \(pid \d+, PORT=(\d+)\)").group(1))
    run.expect_line(r"1 service up")
    [entry] = json.loads(project.devup("who", str(port), "--json").stdout)["listeners"]
    server_pid = entry["pid"]
    assert "server.py" in entry["cmdline"] and entry["cwd"] == str(project.root)
    assert entry["owner"] == {
        "kind": "this",
        "project": str(project.root),
        "branch": None,  # not in git (test_worktrees.py names branches)
        "service": "api",
        "devup_pid": run.proc.pid,
    }

    here = project.devup("who", str(port)).stdout
    assert f"(pid {server_pid})" in here.splitlines()[0]
    assert f"  devup    api of this project's run (devup pid {run.proc.pid})" in here
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other = devup(elsewhere, "who", str(port)).stdout
    assert f"  devup    api of the devup run in {project.root} (devup pid {run.proc.pid})" in other

    # A killed devup: its record stays, its server lives on, its lease is kept, not moved.
    run.signal(signal.SIGKILL)
    run.wait()
    pgid = json.loads((project.root / ".devup" / "run.json").read_text())["services"]["api"]
    try:
        leftover = project.devup("who", str(port)).stdout
        assert "  devup    api, left behind by a devup run in this project that is gone" in leftover
        ports = json.loads(project.devup("ports", "--json").stdout)
        assert ports["services"]["api"]["port"] == port
        assert ports["services"]["api"]["holder"].endswith(f"(pid {server_pid})")
    finally:
        os.killpg(pgid["pgid"], signal.SIGKILL)
    wait_for(lambda: is_port_free(port), timeout=10, what="the leftover to let go of the port")
    # The dead run's lease comes back to the project: same port, nothing held, not running.
    ports = json.loads(project.devup("ports", "--json").stdout)
    assert ports["running"] is False
    assert ports["services"]["api"] == {
        "port": port,
        "url": f"http://127.0.0.1:{port}",
        "holder": None,
        "lease": port,
        "listening": None,
        "warnings": [],
    }
