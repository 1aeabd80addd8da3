"""Readiness probes ask the kernel which sockets listen, without binding the port themselves;
the kernel's list carries each listening socket's address and inode."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from orchestrator.ports import listening
from orchestrator.ports.listening import is_listening

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="netlink: Linux")


def free_port(family: int = socket.AF_INET, host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((host, 0))
    return sock


@pytest.mark.parametrize("netlink", [True, False], ids=["netlink", "bind-probe"])
@pytest.mark.parametrize(
    ("family", "host"),
    [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::1")],
)
def test_only_a_listening_socket_counts(
    netlink: bool, family: int, host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not netlink:
        monkeypatch.setattr(listening, "_listening_by_netlink", lambda port: None)
    try:
        sock = free_port(family, host)
    except OSError:
        pytest.skip(f"no {host} here")
    with sock:
        port = sock.getsockname()[1]
        if netlink:  # a bind probe cannot tell bound from listening; the kernel's table can
            assert not is_listening(port)
        sock.listen()
        assert is_listening(port)
    assert not is_listening(port)


@linux_only
def test_on_linux_the_kernel_is_asked() -> None:
    """No probe socket ever holds the port, so a server binding without SO_REUSEADDR between
    two probes cannot be refused because of one."""
    with free_port() as sock:
        sock.listen()
        assert listening._listening_by_netlink(sock.getsockname()[1]) is True


@linux_only
@pytest.mark.parametrize(
    ("family", "host"),
    [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::"), (socket.AF_INET6, "::1")],
    ids=["127.0.0.1", "::", "::1"],
)
def test_the_kernel_lists_each_listening_socket_with_its_address_and_inode(
    family: int, host: str
) -> None:
    try:
        sock = free_port(family, host)
    except OSError:
        pytest.skip(f"no {host} here")
    with sock, free_port() as bound:  # bound only: not listed
        sock.listen()
        port = sock.getsockname()[1]
        listed = listening.listen_sockets()
        assert listed is not None
        mine = [s for s in listed if s.port in (port, bound.getsockname()[1])]
        assert mine == [listening.ListenSocket(family, host, port, os.fstat(sock.fileno()).st_ino)]
