"""The kernel's listening TCP sockets, asked without touching a port: whether something listens
on a port (the readiness probe) and every listening socket with its address and inode (the
listen audit).

A starting service's port is probed every few ms. The bind probe (ports.is_port_free) holds the
port for a moment, and a server binding without SO_REUSEADDR at that instant fails with
EADDRINUSE; so on Linux the kernel's table of listening sockets is read instead, over netlink
sock_diag as `ss -tln` does (/proc/net/tcp walks every socket bucket: ~10 ms a read). Elsewhere,
or where netlink is refused, the bind probe answers.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Container, Iterator
from typing import NamedTuple

from orchestrator.ports.allocation import is_port_free

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
TCP_LISTEN = 10
FAMILIES = (socket.AF_INET, socket.AF_INET6)
NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, seq, pid
DIAG_REQUEST = struct.Struct("=BBBBI48x")  # family, protocol, ext, pad, states, an empty sockid
# inet_diag_msg: family, state, timer, retrans; sockid: sport (big-endian), dport, src (16 bytes,
# IPv4 in the first 4), dst, if, cookie; expires, rqueue, wqueue, uid; then the inode.
DIAG_MSG = struct.Struct("=4x2s2x16s44xI")
ANSWER_TIMEOUT_S = 1.0
_NO_FAMILY = frozenset({errno.ENOENT, errno.EAFNOSUPPORT, errno.EINVAL})  # no IPv6 here


class ListenSocket(NamedTuple):
    family: int  # socket.AF_INET or AF_INET6
    ip: str  # as psutil shows it: "127.0.0.1", "::", "::ffff:127.0.0.1"
    port: int
    inode: int


class _NotAnswered(Exception):
    """Netlink is refused here, or answered with something sock_diag does not send."""


def is_listening(port: int) -> bool:
    listed = _listening_by_netlink(port)
    return listed if listed is not None else not is_port_free(port)


def listen_sockets(inodes: Container[int] | None = None) -> list[ListenSocket] | None:
    """The listening TCP sockets (IPv4, then IPv6) of this network namespace, only those with
    one of `inodes` if given; None if netlink cannot be asked (not Linux, or refused)."""
    try:
        with _diag_socket() as sock:
            return [
                ListenSocket(family, socket.inet_ntop(family, src[:width]), port, inode)
                for family, width in ((socket.AF_INET, 4), (socket.AF_INET6, 16))
                for port, src, inode in _dump_listeners(sock, family)
                if inodes is None or inode in inodes
            ]
    except (_NotAnswered, OSError):
        return None


def _listening_by_netlink(port: int) -> bool | None:
    """True/False from the kernel's listening TCP sockets (IPv4 and IPv6); None if not asked."""
    try:
        with _diag_socket() as sock:
            return any(
                listed == port
                for family in FAMILIES
                for listed, _src, _inode in _dump_listeners(sock, family)
            )
    except (_NotAnswered, OSError):
        return None


def _diag_socket() -> socket.socket:
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
    except (AttributeError, OSError) as exc:
        raise _NotAnswered from exc  # not Linux, or netlink refused (a seccomp profile)
    sock.settimeout(ANSWER_TIMEOUT_S)
    return sock


def _dump_listeners(sock: socket.socket, family: int) -> Iterator[tuple[int, bytes, int]]:
    """(port, source address bytes, inode) of each listening socket of `family`."""
    request = DIAG_REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, 1 << TCP_LISTEN)
    header = NLMSG_HEADER.pack(
        NLMSG_HEADER.size + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0
    )
    sock.send(header + request)
    while True:
        data = sock.recv(65536)
        offset = 0
        while offset + NLMSG_HEADER.size <= len(data):
            length, kind, _flags, _seq, _pid = NLMSG_HEADER.unpack_from(data, offset)
            if kind == NLMSG_DONE:
                return
            if kind == NLMSG_ERROR:
                code = -struct.unpack_from("=i", data, offset + NLMSG_HEADER.size)[0]
                if family == socket.AF_INET6 and code in _NO_FAMILY:
                    return  # no IPv6 in this kernel: no IPv6 listeners either
                raise _NotAnswered(f"sock_diag error {code}")
            if length < NLMSG_HEADER.size + DIAG_MSG.size or offset + length > len(data):
                raise _NotAnswered("not what sock_diag sends")
            sport, src, inode = DIAG_MSG.unpack_from(data, offset + NLMSG_HEADER.size)
            yield int.from_bytes(sport, "big"), src, inode
            offset += (length + 3) & ~3
