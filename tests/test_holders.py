"""Who holds a port, seen through psutil (and lsof) for real listeners: in this process on IPv4
and IPv6, and in a child process."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import psutil
import pytest
from conftest import port_window

from orchestrator.ports.holders import (
    Holder,
    _holders_from_lsof,
    describe,
    describe_all,
    find_holders,
)


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture
def ipv4_listener() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def this_process(address: str) -> Holder:
    proc = psutil.Process()
    return Holder(
        pid=os.getpid(),
        name=proc.name(),
        cmdline=" ".join(proc.cmdline()),
        user=proc.username(),
        cwd=os.getcwd(),
        address=address,
    )


def test_finds_an_ipv4_listener_in_this_process(ipv4_listener: int) -> None:
    port = ipv4_listener
    assert find_holders(port) == [this_process(f"127.0.0.1:{port}")]


@pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback")
def test_finds_ipv6_listeners_with_bracketed_addresses() -> None:
    with socket.socket(socket.AF_INET6) as loopback:
        loopback.bind(("::1", 0))
        loopback.listen()
        port = loopback.getsockname()[1]
        with socket.socket(socket.AF_INET) as v4:
            v4.bind(("0.0.0.0", port))
            v4.listen()
            found = find_holders(port)
    assert sorted(h.address for h in found) == [f"0.0.0.0:{port}", f"[::1]:{port}"]
    assert {h.pid for h in found} == {os.getpid()}
    # Two sockets, one process: a message names it once.
    assert describe_all(found) == f"{psutil.Process().name()} (pid {os.getpid()})"


LISTENER_CHILD = textwrap.dedent(
    """
    import socket, sys
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    print(sock.getsockname()[1], flush=True)
    sys.stdin.read()  # listens until the test closes our stdin
    """
)


def test_finds_a_listener_in_another_process() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", LISTENER_CHILD, "--marker-for-holders-test"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        [holder] = find_holders(port)
        assert holder.pid == child.pid
        assert "--marker-for-holders-test" in holder.cmdline
        assert describe(holder) == f"{psutil.Process(child.pid).name()} (pid {child.pid})"
    finally:
        child.kill()
        child.wait()


def test_nothing_listening_means_no_holders() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, not listening: holds no port for a server
        port = sock.getsockname()[1]
        assert find_holders(port) == []


def test_a_client_connection_is_not_a_holder(ipv4_listener: int) -> None:
    with socket.create_connection(("127.0.0.1", ipv4_listener)) as client:
        client_port = client.getsockname()[1]
        assert find_holders(client_port) == []


def test_describe_an_invisible_owner() -> None:
    hidden = Holder(pid=None, name="unknown", cmdline="", user=None, cwd=None, address="*:3000")
    assert describe(hidden) == "an unknown process"
    assert describe_all([]) == "an unknown process"


@pytest.mark.skipif(shutil.which("lsof") is None, reason="no lsof")
def test_the_lsof_fallback_reads_the_same_listener(ipv4_listener: int) -> None:
    port = ipv4_listener
    assert _holders_from_lsof(port) == [this_process(f"127.0.0.1:{port}")]
    # A port nobody listens on: lsof exits 1 with no output.
    free = port_window(1)[0]
    if not any(c.laddr and c.laddr.port == free for c in psutil.net_connections(kind="tcp")):
        assert _holders_from_lsof(free) == []
