"""Port choice with real sockets: busy on every address, TIME_WAIT, blocked ports, leases, moves,
strict_port, and many devup processes allocating at once."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import port_window

from orchestrator.base.errors import DevupError, UsageError
from orchestrator.base.paths import project_key
from orchestrator.config.manifest import Manifest, ServiceSpec, Settings
from orchestrator.ports.allocation import BLOCKED_PORTS, allocate_ports, is_port_free
from orchestrator.ports.registry import Registry

POOL_SIZE = 200


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback")


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "devup-home"
    monkeypatch.setenv("DEVUP_HOME", str(home))
    return home


@pytest.fixture
def pool() -> tuple[int, int]:
    # A random window, so suites running at once on this machine rarely meet.
    return port_window(POOL_SIZE)


def make_project(parent: Path, name: str = "proj") -> Path:
    root = parent / name
    root.mkdir()
    return root


def make_manifest(root: Path, port_range: tuple[int, int], **services: dict[str, Any]) -> Manifest:
    specs = {
        name: ServiceSpec(name=name, cmd="true", cwd=root, **options)
        for name, options in services.items()
    }
    return Manifest(root / "devports.toml", Settings(port_range=port_range), specs)


def lowest_free(pool: tuple[int, int]) -> int:
    return next(p for p in range(pool[0], pool[1] + 1) if is_port_free(p))


@contextmanager
def listening(
    family: socket.AddressFamily,
    address: str,
    port: int,
    v6only: bool | None = None,
    reuse_address: bool = False,
) -> Iterator[socket.socket]:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        if reuse_address:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if v6only is not None:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
        sock.bind((address, port))
        sock.listen()
        yield sock


def wait_until(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def me() -> str:
    return f"{psutil.Process().name()} (pid {os.getpid()})"


LISTENERS = [
    pytest.param(socket.AF_INET, "127.0.0.1", None, id="127.0.0.1"),
    pytest.param(socket.AF_INET, "0.0.0.0", None, id="0.0.0.0"),
    pytest.param(socket.AF_INET6, "::1", None, id="::1", marks=needs_ipv6),
    pytest.param(socket.AF_INET6, "::", True, id="::-v6only", marks=needs_ipv6),
    pytest.param(socket.AF_INET6, "::", False, id="::-dual-stack", marks=needs_ipv6),
]


@pytest.mark.parametrize(("family", "address", "v6only"), LISTENERS)
def test_a_listener_on_any_address_makes_the_port_busy(
    tmp_path: Path,
    pool: tuple[int, int],
    family: socket.AddressFamily,
    address: str,
    v6only: bool | None,
) -> None:
    port = lowest_free(pool)
    manifest = make_manifest(make_project(tmp_path), pool, api={})
    with listening(family, address, port, v6only):
        assert not is_port_free(port)
        # The listener sits on the port the pool would hand out first.
        plan = allocate_ports(manifest, ["api"])
    assert plan.ports["api"] != port
    assert plan.ports["api"] in range(port + 1, pool[1] + 1)
    assert is_port_free(port)


def test_a_port_in_time_wait_is_free(tmp_path: Path, pool: tuple[int, int]) -> None:
    port = lowest_free(pool)
    # Like every real server: on Linux a TIME_WAIT left by a socket without SO_REUSEADDR blocks
    # even a SO_REUSEADDR bind, so that port really is unusable (and is_port_free says so).
    with listening(socket.AF_INET, "127.0.0.1", port, reuse_address=True) as server:
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first, so TIME_WAIT lands on `port`
    assert client.recv(1) == b""
    client.close()

    def in_time_wait() -> bool:
        return any(
            c.laddr and c.laddr.port == port and c.status == psutil.CONN_TIME_WAIT
            for c in psutil.net_connections(kind="tcp4")
        )

    wait_until(in_time_wait)
    # Without SO_REUSEADDR the port would look busy: the test really has a TIME_WAIT to skip.
    with socket.socket() as plain, pytest.raises(OSError) as exc_info:
        plain.bind(("127.0.0.1", port))
    assert exc_info.value.errno == errno.EADDRINUSE

    assert is_port_free(port)
    plan = allocate_ports(make_manifest(make_project(tmp_path), pool, api={}), ["api"])
    assert plan.ports["api"] == port


def test_blocked_ports_are_the_browsers_unsafe_ports() -> None:
    in_range = {1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566}
    in_range |= {6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080}
    assert {p for p in BLOCKED_PORTS if 1024 <= p <= 65535} == in_range
    assert {22, 25, 110, 143} <= BLOCKED_PORTS


def test_blocked_port_3659_is_never_handed_out(tmp_path: Path) -> None:
    if not is_port_free(3659):
        pytest.skip("3659 is busy here, so skipping it would prove nothing")
    manifest = make_manifest(make_project(tmp_path), (3659, 3659), api={})
    with pytest.raises(DevupError, match=r"api: no free port left in 3659-3659"):
        allocate_ports(manifest, ["api"])


def test_a_preferred_blocked_port_is_honoured_with_a_warning(tmp_path: Path) -> None:
    if not is_port_free(6666):
        pytest.skip("6666 is busy here")
    manifest = make_manifest(make_project(tmp_path), (20000, 20100), irc={"preferred_port": 6666})
    plan = allocate_ports(manifest, ["irc"])
    assert plan.ports["irc"] == 6666
    assert plan.messages == (
        "irc: port 6666 is on the browsers' unsafe-port list; browsers will refuse to open it",
    )


def test_leases_are_stable_across_runs(tmp_path: Path, pool: tuple[int, int]) -> None:
    manifest = make_manifest(make_project(tmp_path), pool, api={}, web={})
    first = allocate_ports(manifest, ["api", "web"])
    again = allocate_ports(manifest, ["web", "api"], registry=Registry())
    assert first.ports == again.ports
    assert len(set(first.ports.values())) == 2
    assert first.messages == again.messages == ()
    assert Registry().read() == {project_key(manifest.root): first.ports}


def test_other_services_and_other_projects_keep_their_leases(
    tmp_path: Path, pool: tuple[int, int]
) -> None:
    a = make_manifest(make_project(tmp_path, "a"), pool, api={}, web={}, worker={})
    b = make_manifest(make_project(tmp_path, "b"), pool, api={}, web={})
    a_api = allocate_ports(a, ["api"]).ports["api"]
    a_web = allocate_ports(a, ["web"]).ports["web"]
    # Nothing listens on a's ports (a is not running), yet b and a's worker do not get them.
    b_ports = allocate_ports(b, ["api", "web"]).ports
    a_worker = allocate_ports(a, ["worker"]).ports["worker"]
    taken = [a_api, a_web, a_worker, *b_ports.values()]
    assert len(set(taken)) == 5
    assert allocate_ports(a, ["api", "web"]).ports == {"api": a_api, "web": a_web}


def test_a_busy_preferred_port_gives_a_temporary_port_and_names_its_holder(
    tmp_path: Path, pool: tuple[int, int]
) -> None:
    port = lowest_free(pool)
    manifest = make_manifest(make_project(tmp_path), pool, api={"preferred_port": port})
    with listening(socket.AF_INET, "127.0.0.1", port):
        plan = allocate_ports(manifest, ["api"])
    moved = plan.ports["api"]
    assert moved is not None and moved != port
    assert plan.messages == (
        f"api: {port} is held by {me()}; using {moved} for this run ({port} stays api's)",
    )
    assert plan.holders == {"api": None}
    assert plan.leases == {"api": port}
    assert Registry().read()[project_key(manifest.root)] == {"api": port}
    # Once the preferred port is free again the service gets it back.
    assert allocate_ports(manifest, ["api"]).ports == {"api": port}


def test_strict_port_stops_instead_of_moving(tmp_path: Path, pool: tuple[int, int]) -> None:
    port = lowest_free(pool)
    manifest = make_manifest(
        make_project(tmp_path), pool, api={"preferred_port": port, "strict_port": True}
    )
    family, address = (socket.AF_INET6, "::1") if _has_ipv6() else (socket.AF_INET, "127.0.0.1")
    with listening(family, address, port), pytest.raises(DevupError) as exc_info:
        allocate_ports(manifest, ["api"])
    assert exc_info.value.message == f"api: port {port} is held by {me()} and strict_port is set"
    assert exc_info.value.exit_code == 1
    assert exc_info.value.hint is not None and f"devup who {port}" in exc_info.value.hint
    assert Registry().read() == {}  # a failed plan leases nothing


def test_a_preferred_port_leased_to_another_project_moves(
    tmp_path: Path, pool: tuple[int, int]
) -> None:
    a = make_manifest(make_project(tmp_path, "a"), pool, api={})
    port = allocate_ports(a, ["api"]).ports["api"]
    b = make_manifest(make_project(tmp_path, "b"), pool, web={"preferred_port": port})
    strict = make_manifest(b.root, pool, web={"preferred_port": port, "strict_port": True})
    with pytest.raises(DevupError, match=f"web: port {port} is leased to api of ") as exc_info:
        allocate_ports(strict, ["web"])
    assert exc_info.value.hint is not None and "devup ports --release" in exc_info.value.hint
    plan = allocate_ports(b, ["web"])
    assert plan.ports["web"] != port
    assert plan.messages == (
        f"port {port} is leased to api of {project_key(a.root)}: web moved to {plan.ports['web']}",
    )


def test_a_leased_port_held_by_another_process_is_lent_out_for_one_run_or_reported(
    tmp_path: Path, pool: tuple[int, int]
) -> None:
    manifest = make_manifest(make_project(tmp_path), pool, api={})
    port = allocate_ports(manifest, ["api"]).ports["api"]
    assert port is not None
    registry_file = Registry().path
    before = registry_file.read_bytes()
    with listening(socket.AF_INET, "0.0.0.0", port):
        shown = allocate_ports(manifest, ["api"], mode="running")
        planned = allocate_ports(manifest, ["api"], mode="plan")
        moved = allocate_ports(manifest, ["api"], mode="up")
    holder = shown.holders["api"]
    assert shown.ports == {"api": port} and shown.messages == ()
    assert holder is not None and holder.pid == os.getpid()
    assert holder.address == f"0.0.0.0:{port}"
    new = moved.ports["api"]
    assert new != port and moved.holders == {"api": None}
    assert moved.messages == (
        f"api: {port} is held by {me()}; using {new} for this run ({port} stays api's)",
    )
    assert planned.ports == {"api": new} and planned.leases == {"api": port}
    assert planned.messages == (
        f"api: {port} is held by {me()}; `devup up` would use {new} ({port} stays api's)",
    )
    assert registry_file.read_bytes() == before  # the lease never moved
    assert allocate_ports(manifest, ["api"]).ports == {"api": port}


def test_a_temporary_port_is_reserved_while_its_run_lives(
    tmp_path: Path, pool: tuple[int, int]
) -> None:
    from orchestrator.system.runstate import RunLock

    a = make_manifest(make_project(tmp_path, "a"), pool, api={})
    b = make_manifest(make_project(tmp_path, "b"), pool, web={})
    port = allocate_ports(a, ["api"]).ports["api"]
    assert port is not None
    lock = RunLock(a.root)
    lock.acquire()  # as `devup up` holds it for its whole run
    try:
        with listening(socket.AF_INET, "127.0.0.1", port):
            temporary = allocate_ports(a, ["api"]).ports["api"]
        # Free again, but the run still uses the temporary port: nobody else gets either.
        assert allocate_ports(a, ["api"], mode="running").ports == {"api": temporary}
        web = allocate_ports(b, ["web"]).ports["web"]
        assert web not in (port, temporary)
    finally:
        lock.release()
    # The run is over: its temporary port is forgotten, the lease is api's as before.
    assert Registry().read()[project_key(a.root)] == {"api": port}
    assert allocate_ports(a, ["api"], mode="running").ports == {"api": port}


def test_services_without_a_port_get_none_and_no_lease(
    tmp_path: Path, pool: tuple[int, int]
) -> None:
    manifest = make_manifest(make_project(tmp_path), pool, migrate={"needs_port": False}, api={})
    plan = allocate_ports(manifest, ["migrate", "api"])
    assert plan.ports["migrate"] is None and plan.ports["api"] is not None
    assert set(Registry().read()[project_key(manifest.root)]) == {"api"}


def test_a_changed_preferred_port_wins_over_the_lease(
    tmp_path: Path, pool: tuple[int, int]
) -> None:
    root = make_project(tmp_path)
    lo = lowest_free(pool)
    hi = next(p for p in range(pool[1], lo, -1) if is_port_free(p))
    assert allocate_ports(make_manifest(root, pool, api={"preferred_port": lo}), ["api"]).ports == {
        "api": lo
    }
    plan = allocate_ports(make_manifest(root, pool, api={"preferred_port": hi}), ["api"])
    assert plan.ports == {"api": hi}


def test_an_exhausted_pool_says_how_to_widen_it(tmp_path: Path, pool: tuple[int, int]) -> None:
    tiny = (pool[0], pool[0] + 1)
    manifest = make_manifest(make_project(tmp_path), tiny, a={}, b={}, c={})
    with pytest.raises(DevupError) as exc_info:
        allocate_ports(manifest, ["a", "b", "c"])
    assert exc_info.value.message.startswith(f"c: no free port left in {tiny[0]}-{tiny[1]}")
    assert exc_info.value.hint is not None and '"ports"' in exc_info.value.hint


def test_an_unknown_service_is_a_usage_error(tmp_path: Path, pool: tuple[int, int]) -> None:
    manifest = make_manifest(make_project(tmp_path), pool, api={})
    with pytest.raises(UsageError, match='no service named "apy"'):
        allocate_ports(manifest, ["apy"])


CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from orchestrator.config.manifest import Manifest, ServiceSpec, Settings
    from orchestrator.ports.allocation import allocate_ports

    root, lo, hi = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    names = [f"svc{i}" for i in range(5)]
    specs = {n: ServiceSpec(name=n, cmd="true", cwd=root) for n in names}
    manifest = Manifest(root / "devports.toml", Settings(port_range=(lo, hi)), specs)
    sys.stdin.read()  # every child starts allocating when the test closes its stdin
    print(json.dumps(allocate_ports(manifest, names).ports))
    """
)


def test_concurrent_runs_never_share_a_port(tmp_path: Path, pool: tuple[int, int]) -> None:
    roots = [make_project(tmp_path, f"p{i}") for i in range(12)]
    # One pipe as every child's stdin: closing its write end releases them all at once.
    start_read, start_write = os.pipe()
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", CHILD, str(root), str(pool[0]), str(pool[1])],
                stdin=start_read,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for root in roots
        ]
    finally:
        os.close(start_read)
        os.close(start_write)
    try:
        results = [proc.communicate(timeout=30) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    assert all(proc.returncode == 0 for proc in procs), [err for _, err in results]
    plans = [json.loads(out) for out, _ in results]
    ports = [port for plan in plans for port in plan.values()]
    assert len(ports) == 60
    assert len(set(ports)) == 60
    assert all(pool[0] <= p <= pool[1] for p in ports)
    assert Registry().read() == {project_key(r): plan for r, plan in zip(roots, plans, strict=True)}
