"""Whether something listens on a port, asked of the kernel without touching the port.

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

from orchestrator.ports import is_port_free

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
TCP_LISTEN = 10
NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, seq, pid
DIAG_REQUEST = struct.Struct("=BBBBI48x")  # family, protocol, ext, pad, states, an empty sockid
SPORT_OFFSET = NLMSG_HEADER.size + 4  # inet_diag_msg: family, state, timer, retrans, then sport
ANSWER_TIMEOUT_S = 1.0
_NO_FAMILY = frozenset({errno.ENOENT, errno.EAFNOSUPPORT, errno.EINVAL})  # no IPv6 here


def is_listening(port: int) -> bool:
    listed = _listening_by_netlink(port)
    return listed if listed is not None else not is_port_free(port)


def _listening_by_netlink(port: int) -> bool | None:
    """True/False from the kernel's listening TCP sockets (IPv4 and IPv6); None if not asked."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
    except (AttributeError, OSError):
        return None  # not Linux, or netlink refused (a seccomp profile)
    with sock:
        sock.settimeout(ANSWER_TIMEOUT_S)
        try:
            for family in (socket.AF_INET, socket.AF_INET6):
                answer = _dump_listeners(sock, family, port)
                if answer is None:
                    return None
                if answer:
                    return True
        except OSError:
            return None
    return False


def _dump_listeners(sock: socket.socket, family: int, port: int) -> bool | None:
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
                return False
            if kind == NLMSG_ERROR:
                code = -struct.unpack_from("=i", data, offset + NLMSG_HEADER.size)[0]
                # No IPv6 in this kernel: no IPv6 listeners either.
                return False if family == socket.AF_INET6 and code in _NO_FAMILY else None
            if length < NLMSG_HEADER.size or offset + length > len(data):
                return None  # not what sock_diag sends
            if struct.unpack_from("!H", data, offset + SPORT_OFFSET)[0] == port:
                return True
            offset += (length + 3) & ~3
