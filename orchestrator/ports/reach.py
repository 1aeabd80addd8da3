"""Where a service really answers: the port and URL its own processes listen on, which may not be
its PORT (a server that hard-codes 3000) nor 127.0.0.1 (a server on ::1 only, as `localhost`
gives Node >= 17). Pure: listening addresses in, a URL out."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import NamedTuple

# Addresses a connection to 127.0.0.1 reaches (Linux's `::` is dual-stack unless bindv6only).
_TAKES_IPV4_LOOPBACK = frozenset(
    {"127.0.0.1", "0.0.0.0", "::", "::ffff:127.0.0.1", "::ffff:0.0.0.0"}
)
# Side ports a dev server may open before its HTTP port: never taken for the service's URL while
# another port is listening (node --inspect, debugpy, Vite's old HMR socket).
SIDE_PORTS = frozenset({9229, 5678, 24678})


class Reach(NamedTuple):
    port: int
    url: str
    addresses: tuple[str, ...]  # the listening addresses on `port`, as ss shows them

    def moved_from(self, planned: int | None) -> bool:
        """Whether others must be told another port or URL than the planned 127.0.0.1:PORT."""
        return planned is None or self.port != planned or self.url != loopback_url(planned)


def loopback_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def reach(planned: int | None, listening: Iterable[tuple[str, int]]) -> Reach | None:
    """The (ip, port) pairs a service's processes listen on -> where it answers: on PORT when it
    listens there, else on its lowest other port (side ports last); None when it listens nowhere."""
    pairs = list(dict.fromkeys(listening))
    if not pairs:
        return None
    ports = {port for _ip, port in pairs}
    port = planned if planned in ports else min(ports, key=lambda p: (p in SIDE_PORTS, p))
    ips = [ip for ip, p in pairs if p == port]
    return Reach(port, f"http://{url_host(ips)}:{port}", tuple(_address(ip, port) for ip in ips))


def url_host(ips: list[str]) -> str:
    """127.0.0.1 when a connection there is accepted; else the literal address, [::1] for an
    IPv6-loopback-only server: `localhost` does not always resolve to ::1 (an /etc/hosts without
    it), and Python's urllib and Node's fetch then get ECONNREFUSED, while every client takes
    a literal [::1]."""
    if any(ip in _TAKES_IPV4_LOOPBACK for ip in ips):
        return "127.0.0.1"
    if "::1" in ips:
        return "[::1]"
    ip = ips[0].removeprefix("::ffff:")
    return f"[{ip}]" if ipaddress.ip_address(ip).version == 6 else ip


def only_ipv6_loopback(ips: Iterable[str]) -> bool:
    ips = set(ips)
    return bool(ips) and ips <= {"::1"}


def _address(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
