"""The listen audit with real servers: a public address without expose is warned about, a
loopback one is not, a late public socket is caught by the re-check, a failed bind names the
port's holder, and a group's sockets found through the kernel (netlink) are the ones psutil
finds. A server that ignores PORT: test_readiness."""

from __future__ import annotations

import json
import os
import select
import shlex
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import REPO, DevupProcess, Project, py, wait_for

from orchestrator.config.manifest import Manifest, ServiceSpec, Settings
from orchestrator.ports.allocation import is_port_free
from orchestrator.ports.listening import listen_sockets
from orchestrator.run import audit
from orchestrator.run.audit import Listener, assess, framework_hint
from orchestrator.system import process

SERVER = f"{sys.executable} {REPO / 'tests' / 'fixtures' / 'server.py'}"


def run_record(root: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((root / ".devup" / "run.json").read_text())
    return doc["services"]


def audited(root: Path, name: str, checks: int = 2) -> dict[str, Any] | None:
    """The service's entry in the run record once the audit has looked `checks` times."""
    try:
        entry: dict[str, Any] = run_record(root)[name]
    except (OSError, ValueError, KeyError):
        return None
    return entry if entry.get("audits", 0) >= checks else None


def free_port(pool: tuple[int, int]) -> int:
    return next(p for p in range(pool[1], pool[0], -1) if is_port_free(p))


def test_public_listeners_are_warned_about_and_loopback_or_exposed_ones_are_not(
    project: Project, running: list[DevupProcess]
) -> None:
    project.write(f"""
        [services.pub]
        cmd = "{SERVER} --bind 0.0.0.0"
        [services.loc]
        cmd = "{SERVER}"
        [services.open]
        cmd = "{SERVER} --bind 0.0.0.0"
        expose = true
    """)
    run = project.start("--no-watch")
    running.append(run)
    port = int(run.expect_line(r"pub started \(pid \d+, PORT=(\d+)\)").group(1))
    match = run.expect_line(
        rf"devup\s+\| pub \(pid (\d+)\) listens on 0\.0\.0\.0:{port}: reachable from your "
        r"network; bind 127\.0\.0\.1 \(HOST is set\) or set expose = true$",
        timeout=10,
    )
    assert "server.py" in " ".join(psutil.Process(int(match.group(1))).cmdline())
    # Absence, proved after the re-check a second after ready has run for both.
    loc = wait_for(lambda: audited(project.root, "loc"), timeout=15, what="loc's re-check")
    exposed = wait_for(lambda: audited(project.root, "open"), timeout=15, what="open's re-check")
    assert loc["warnings"] == [] and exposed["warnings"] == []
    assert loc["listening"] == [f"127.0.0.1:{loc['port']}"]
    assert exposed["listening"] == [f"0.0.0.0:{exposed['port']}"]
    assert not [line for line in run.lines if "loc (pid" in line or "open (pid" in line]
    pub = run_record(project.root)["pub"]
    assert len(pub["warnings"]) == 1 and f"0.0.0.0:{port}" in pub["warnings"][0]

    ports = json.loads(project.devup("ports", "--json").stdout)["services"]
    assert ports["pub"]["warnings"] == pub["warnings"]
    assert ports["pub"]["listening"] == [f"0.0.0.0:{port}"]
    assert ports["loc"]["warnings"] == [] and ports["loc"]["listening"] == loc["listening"]
    text = project.devup("ports").stdout
    assert f"  warning: {pub['warnings'][0]}" in text.splitlines()
    assert run.stop() == 130


def test_a_public_socket_opened_after_ready_is_caught_by_the_recheck(
    project: Project, running: list[DevupProcess]
) -> None:
    extra = free_port(project.pool)
    late = py(f"""
        import os, socket, time
        a = socket.socket(); a.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        a.bind(("127.0.0.1", int(os.environ["PORT"]))); a.listen()
        time.sleep(0.3)
        b = socket.socket(); b.bind(("0.0.0.0", {extra})); b.listen()
        print("second socket open", flush=True)
        time.sleep(60)
    """)
    project.write(f"""
        [services.late]
        cmd = '''{late}'''
    """)
    run = project.start("--no-watch")
    running.append(run)
    run.expect_line(r"late\s+\| second socket open")
    run.expect_line(rf"late \(pid \d+\) listens on 0\.0\.0\.0:{extra}: reachable", timeout=10)
    assert run.stop() == 130


def test_address_in_use_in_the_output_names_the_holder(
    project: Project, running: list[DevupProcess]
) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        # What node prints when its listen() fails.
        clash = py(f"""
            import socket, sys
            try:
                socket.socket().bind(("127.0.0.1", {port}))
            except OSError:
                print("Error: listen EADDRINUSE: address already in use 127.0.0.1:{port}")
                sys.exit(1)
        """)
        project.write(f"""
            [services.clash]
            cmd = '''{clash}'''
            restart = "no"
        """)
        run = project.start("--no-watch")
        running.append(run)
        run.expect_line(r"clash\s+\| Error: listen EADDRINUSE")
        run.expect_line(
            rf"devup\s+\| clash: port {port} is held by {psutil.Process().name()} "
            rf"\(pid {os.getpid()}\)$"
        )
        run.expect_line(r"clash exited with code 1")
        assert run.wait() == 1


def spec_manifest(**options: Any) -> tuple[Manifest, ServiceSpec]:
    spec = ServiceSpec(name="web", cmd=options.pop("cmd", "npm run dev"), cwd=Path("/"), **options)
    return Manifest(Path("/devports.toml"), Settings(), {"web": spec}), spec


def test_assess_names_every_public_address_and_the_ports_taken_instead() -> None:
    manifest, spec = spec_manifest(cmd="npx vite")
    listeners = [Listener(7, "::", 5173), Listener(7, "127.0.0.1", 5173)]
    assert assess(manifest, spec, 3001, listeners) == [
        "web (pid 7) listens on [::]:5173: reachable from your network; bind 127.0.0.1 "
        "(HOST is set) or set expose = true",
        "web ignored PORT=3001 and listens on [::]:5173, 127.0.0.1:5173; "
        "vite does not read PORT: run it with --port $PORT --strictPort",
    ]
    assert assess(manifest, spec, 5173, listeners[1:]) == []
    assert assess(manifest, spec, 3001, []) == []  # nothing yet: not "ignored"
    assert assess(manifest, spec, 3001, [Listener(7, "::1", 3001)]) == [
        "web listens only on [::1]:3001 (IPv6 loopback), where 127.0.0.1:3001 refuses "
        "connections: its URL is http://[::1]:3001"
    ]
    exposed, spec = spec_manifest(expose=True)
    assert assess(exposed, spec, 3001, [Listener(7, "0.0.0.0", 3001)]) == []


def test_framework_hints_come_from_the_command_line() -> None:
    assert framework_hint("python manage.py runserver") == (
        "django does not read PORT: run `manage.py runserver 127.0.0.1:$PORT`"
    )
    assert framework_hint("flask --app app run") == (
        "flask does not read PORT: run `flask run --port $PORT`"
    )
    assert framework_hint("node_modules/.bin/vite --host") is not None
    assert framework_hint("node server.js") is None


# Listens on each address given, holds sockets that must not count (bound only, a connected
# client, a dup of a listener), then forks: both processes hold every socket. (Its shell, the
# group's leader, holds none.)
LISTENERS = py("""
    import json, os, socket, sys, time
    socks = []
    for host in sys.argv[1:]:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.bind((host, 0))
        sock.listen()
        socks.append(sock)
    bound = socket.socket()
    bound.bind(("127.0.0.1", 0))
    client = socket.create_connection(socks[0].getsockname()[:2])
    os.dup(socks[0].fileno())
    child = os.fork()
    if child == 0:
        time.sleep(60)
        os._exit(0)
    ports = [sock.getsockname()[1] for sock in socks]
    print(json.dumps({"pids": [os.getpid(), child], "ports": ports}), flush=True)
    time.sleep(60)
""")


def ordered(listeners: list[Listener]) -> list[Listener]:
    return sorted(listeners, key=lambda lst: (lst.pid, lst.ip, lst.port))


def ipv6_here() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="netlink: Linux")
@pytest.mark.parametrize(
    "hosts",
    [
        ["127.0.0.1", "0.0.0.0"],
        pytest.param(
            ["::", "::1", "::ffff:127.0.0.1"],
            marks=pytest.mark.skipif(not ipv6_here(), reason="no IPv6 here"),
        ),
    ],
    ids=["ipv4", "ipv6"],
)
def test_the_kernels_sockets_of_a_group_are_those_psutil_finds(
    hosts: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as outside:  # this process is not in the group: its socket is not
        outside.bind(("127.0.0.1", 0))
        outside.listen()
        cmd = f"{LISTENERS} {' '.join(shlex.quote(h) for h in hosts)}"
        child = process.spawn(cmd, tmp_path, dict(os.environ))
        try:
            assert child.popen.stdout is not None
            ready, _, _ = select.select([child.popen.stdout], [], [], 10)
            assert ready, "the listeners never said where they listen"
            started = json.loads(child.popen.stdout.readline())  # one line, written at once
            expected = ordered(
                [
                    Listener(pid, host, port)
                    for pid in started["pids"]
                    for host, port in zip(hosts, started["ports"], strict=True)
                ]
            )
            members = process.group_members(child.group)
            every = listen_sockets()
            assert every is not None, "netlink sock_diag refused here"
            assert outside.getsockname()[1] in [sock.port for sock in every]

            by_kernel = audit._listeners_by_kernel(members)
            assert by_kernel is not None and ordered(by_kernel) == expected
            assert ordered(audit._listeners_by_psutil(members)) == expected
            assert audit.group_listeners(child.group) == by_kernel
            monkeypatch.setattr(audit, "listen_sockets", lambda inodes: None)  # netlink refused
            assert ordered(audit.group_listeners(child.group)) == expected
        finally:
            os.killpg(child.pid, signal.SIGKILL)
            child.popen.wait(10)
            if child.popen.stdout is not None:
                child.popen.stdout.close()
