"""Port choice: whether a port is free on every address, the ports browsers refuse, and the
port plan of a run (leases, preferred ports, then the pool), chosen under the registry lock.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
from typing import Literal, NamedTuple

from orchestrator.base.errors import DevupError, UsageError
from orchestrator.base.paths import project_key
from orchestrator.config.manifest import Manifest, ServiceSpec
from orchestrator.ports.holders import UNKNOWN, Holder, describe_all, find_holders
from orchestrator.ports.registry import Leases, Registry, Temporary

# The Fetch standard's "bad ports", which Chrome (net/base/port_util.cc kRestrictedPorts) and
# Firefox (nsIOService.cpp gBadPortList) refuse with ERR_UNSAFE_PORT: a dev server there works
# with curl but not in a browser.
BLOCKED_PORTS: frozenset[int] = frozenset(
    {
        1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95,
        101, 102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161,
        179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563,
        587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060,
        5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
    }
)  # fmt: skip

# A server may listen on any of these; on macOS/BSD, SO_REUSEADDR lets a wildcard bind succeed
# next to a specific listener (and the reverse), so each one is probed on its own.
_PROBE_ADDRESSES = (
    (socket.AF_INET, "127.0.0.1"),
    (socket.AF_INET, "0.0.0.0"),
    (socket.AF_INET6, "::1"),
    (socket.AF_INET6, "::"),
)
# What a host without an IPv6 stack (or without ::1, as in some containers) answers.
_NO_IPV6 = frozenset({errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT})


# "up": a run starts (leases taken and moved, temporary ports reserved for it);
# "plan": what a run would use (`devup ports`, `env`, `run`, `check`): only missing leases taken;
# "running": the ports this project's live run uses (leases and its temporary ports, kept if busy).
Mode = Literal["up", "plan", "running"]


class PortPlan(NamedTuple):
    ports: dict[str, int | None]  # None: `port = false`
    holders: dict[str, Holder | None]  # who holds a port that was kept although busy
    messages: tuple[str, ...]  # lines for the user: moves, registry repairs
    leases: dict[str, int | None]  # differs from ports: temporary


def is_port_free(port: int) -> bool:
    """True if nothing listens on `port` on 127.0.0.1, ::1, 0.0.0.0 or ::. Binds each address
    with SO_REUSEADDR (so a TIME_WAIT leftover, which servers bind over, counts as free), never
    listens, and closes at once."""
    for family, address in _PROBE_ADDRESSES:
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:
            if family == socket.AF_INET6 and exc.errno in _NO_IPV6:
                continue
            raise
        with sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                # Keeps the :: probe about IPv6; the IPv4 probes cover IPv4.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind((address, port))
            except OSError as exc:
                if family == socket.AF_INET6 and exc.errno in _NO_IPV6:
                    continue
                return False
    return True


def allocate_ports(
    manifest: Manifest,
    services: list[str],
    *,
    mode: Mode = "up",
    registry: Registry | None = None,
) -> PortPlan:
    """Choose ports for `services`: see Mode. A lease moves only when its port is leased to
    another project's service; a leased (or preferred) port that a foreign process holds gives
    the service a temporary port for one run, and the lease stays."""
    for name in services:
        if name not in manifest.services:
            raise UsageError(f'no service named "{name}" in {manifest.path.name}')
    registry = registry if registry is not None else Registry()
    with registry.locked() as leases:
        chooser = _Chooser(manifest, leases, registry.temporary, mode)
        for name in dict.fromkeys(services):
            chooser.choose(name, manifest.services[name])
        chooser.finish()
    return PortPlan(
        ports=chooser.ports,
        holders=chooser.holders,
        messages=(*registry.warnings, *chooser.messages),
        leases={name: chooser.own.get(name) for name in chooser.ports},
    )


class _Chooser:
    """One plan's choices over the locked leases; mutates them as it goes."""

    def __init__(
        self, manifest: Manifest, leases: Leases, temporary: Temporary, mode: Mode
    ) -> None:
        self.manifest = manifest
        self.lo, self.hi = manifest.settings.port_range
        self.mode = mode
        self.leases = leases
        self.temporary = temporary
        self.key = project_key(manifest.root)
        self.own = leases.setdefault(self.key, {})
        # A service removed from the manifest, or now `port = false`, gives its port back.
        for name in list(self.own):
            spec = manifest.services.get(name)
            if spec is None or not spec.needs_port:
                del self.own[name]
        self.had_lease = set(self.own)
        # The live run's temporary ports ("running"); a starting run replaces its own ("up").
        temporary_pid, own_temporary = temporary.get(self.key, (0, {}))
        self.own_temporary = dict(own_temporary)
        # A live reload ("up" in the running devup itself) keeps the temporary ports of the
        # services it does not choose again; a new run starts afresh.
        self.kept_temporary = self.own_temporary if temporary_pid == os.getpid() else {}
        if mode == "up":
            temporary.pop(self.key, None)
        # Every lease is reserved for its owner, running or not; ports chosen in this plan
        # become leases at once, so they are excluded the same way.
        self.owners: dict[int, tuple[str, str]] = {
            port: (root, service)
            for root, ports in leases.items()
            for service, port in ports.items()
        }
        # Other runs' temporary ports are theirs while those runs live.
        self.reserved: dict[int, tuple[str, str]] = {
            port: (root, service)
            for root, (_pid, ports) in temporary.items()
            if root != self.key
            for service, port in ports.items()
        }
        # A live reload: the temporary ports this run keeps are its services', not free ports.
        self.reserved.update({port: (self.key, name) for name, port in self.kept_temporary.items()})
        self.ports: dict[str, int | None] = {}
        self.holders: dict[str, Holder | None] = {}
        self.messages: list[str] = []
        self.temporary_ports: dict[str, int] = {}

    def choose(self, name: str, spec: ServiceSpec) -> None:
        if not spec.needs_port:
            self.ports[name] = None
            self.holders[name] = None
            return
        old = self.own.get(name)
        preferred = spec.preferred_port
        if old is not None and not (old == preferred or self._in_pool(old)):
            old = None  # the pool changed under it
        if self.mode == "running" and old is not None and self._claim(old, name) is None:
            port = self.own_temporary.get(name, old)
            holder = None if is_port_free(port) else _first_holder(find_holders(port))
            self._use(name, port, holder)
            return
        first = preferred if preferred is not None else old
        if first is None:
            self._lease(name, self._scan(name, start=self.lo, avoid=None))
            return
        problem = self._claim(first, name)
        if problem is None:
            if is_port_free(first):
                self._lease(name, first)
                if first in BLOCKED_PORTS:
                    self.messages.append(
                        f"{name}: port {first} is on the browsers' unsafe-port list; "
                        "browsers will refuse to open it"
                    )
                return
            held_by = describe_all(find_holders(first))
            if spec.strict_port and first == preferred:
                raise DevupError(
                    f"{name}: port {first} is held by {held_by} and strict_port is set",
                    hint=f"`devup who {first}` shows who holds it; "
                    f"or drop strict_port to let devup move {name}",
                )
            self._lease(name, first)
            self._temporary(name, first, held_by)
            return
        if spec.strict_port and first == preferred:
            raise DevupError(
                f"{name}: port {first} {problem} and strict_port is set",
                hint="`devup ports --release` in the project holding that lease frees it; "
                f"or drop strict_port to let devup move {name}",
            )
        # Another service's lease: the one case where a lease moves.
        fallback = self._fallback(name, first, old)
        if self.mode == "up" or name not in self.had_lease:
            self._lease(name, fallback)
            updated = " (lease updated)" if first == old else ""
            self.messages.append(f"port {first} {problem}: {name} moved to {fallback}{updated}")
        else:
            self._use(name, fallback)
            self.messages.append(
                f"port {first} {problem}: `devup up` will move {name} to {fallback}"
            )

    def finish(self) -> None:
        if not self.own:
            del self.leases[self.key]
        if self.mode == "up":
            kept = {n: p for n, p in self.kept_temporary.items() if n not in self.ports}
            if kept or self.temporary_ports:
                self.temporary[self.key] = (os.getpid(), {**kept, **self.temporary_ports})

    def _temporary(self, name: str, port: int, held_by: str) -> None:
        """A foreign process holds `name`'s own port: another one for this run only."""
        start = port + 1 if self.lo <= port < self.hi else self.lo
        other = self._scan(name, start=start, avoid=port)
        self._use(name, other)
        self.reserved[other] = (self.key, name)
        self.temporary_ports[name] = other
        using = (
            f"using {other} for this run" if self.mode == "up" else f"`devup up` would use {other}"
        )
        self.messages.append(
            f"{name}: {port} is held by {held_by}; {using} ({port} stays {name}'s)"
        )

    def _fallback(self, name: str, first: int, old: int | None) -> int:
        # The port of the last run, if it was already a fallback, keeps the URL stable.
        if old is not None and old != first and self._usable(old, name):
            return old
        start = first + 1 if self.lo <= first < self.hi else self.lo
        return self._scan(name, start=start, avoid=first)

    def _scan(self, name: str, start: int, avoid: int | None) -> int:
        """The first usable pool port from `start` up, wrapping around to the pool's start."""
        for port in itertools.chain(range(start, self.hi + 1), range(self.lo, start)):
            if port != avoid and port not in BLOCKED_PORTS and self._usable(port, name):
                return port
        leased = sum(1 for port in self.owners if self.lo <= port <= self.hi)
        raise DevupError(
            f"{name}: no free port left in {self.lo}-{self.hi} "
            f"({leased} leased, the rest busy or blocked by browsers)",
            hint=f'widen "ports" in the [devup] table of {self.manifest.path.name}, or run '
            "`devup ports --release` in projects you no longer use",
        )

    def _usable(self, port: int, name: str) -> bool:
        return self._claim(port, name) is None and is_port_free(port)

    def _claim(self, port: int, name: str) -> str | None:
        """Why `port` is reserved for someone other than `name` of this project, or None."""
        owner = self.owners.get(port) or self.reserved.get(port)
        if owner is None or owner == (self.key, name):
            return None
        root, service = owner
        how = "leased to" if port in self.owners else "used for this run by"
        if root == self.key:
            return f"is {how} {service}"
        return f"is {how} {service} of {root}"

    def _in_pool(self, port: int) -> bool:
        return self.lo <= port <= self.hi and port not in BLOCKED_PORTS

    def _lease(self, name: str, port: int) -> None:
        """`name` uses `port` and, where this mode may, leases it ("plan" and "running" only
        take a lease a service has none of: they never move one)."""
        if self.mode == "up" or name not in self.had_lease:
            old = self.own.get(name)
            if old is not None and self.owners.get(old) == (self.key, name):
                del self.owners[old]
            self.owners[port] = (self.key, name)
            self.own[name] = port
        self._use(name, port)

    def _use(self, name: str, port: int, holder: Holder | None = None) -> None:
        self.ports[name] = port
        self.holders[name] = holder


def _first_holder(found: list[Holder]) -> Holder:
    # Busy with no visible listener (say, a client socket bound to it): still report it as held.
    return found[0] if found else Holder(None, UNKNOWN, "", None, None, "")
