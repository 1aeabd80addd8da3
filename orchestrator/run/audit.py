"""The listen audit: what a service's process group really listens on once it is up (public
addresses without `expose`, a port other than its PORT), and who holds a port a service could
not bind. Runs on the supervisor's thread: on Linux it asks the kernel over netlink (~0.5 ms;
listening.py); psutil, which reads all of /proc/net/tcp (~12 ms), answers elsewhere."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, NamedTuple, Protocol

from orchestrator.config.manifest import Manifest, ServiceSpec
from orchestrator.ports.holders import Holder, describe_all, find_holders, format_address
from orchestrator.ports.listening import ListenSocket, listen_sockets
from orchestrator.ports.reach import only_ipv6_loopback, reach
from orchestrator.run.changes import Notice, ServiceStateChanged, Subscriber, TurnEnded
from orchestrator.run.states import State
from orchestrator.system.process import GroupId, group_members, groups_members

if TYPE_CHECKING:  # psutil is imported where it is used: not on the path to the first spawn
    import psutil

# A server may open its public socket a moment after the PORT one (a dev server's HMR socket,
# a second listener): look again after these delays from the first audit.
RECHECK_AFTER_S = (1.0, 5.0)
# The first audit of a service waits while others are still starting, at most this long: the
# audits of many would hold back the next one's ready and the "N services up" line.
HOLD_WHILE_STARTING_S = 0.5
# Bind failures show up in the first output of a process; later lines are not inspected.
BIND_WINDOW_S = 10.0
_PUBLIC = frozenset({"0.0.0.0", "::", "::ffff:0.0.0.0"})
_NAMED_PORT = re.compile(r"(?:[Pp]ort |:)(\d{2,5})\b")
# Frameworks that ignore PORT, recognised in the command line, and how to pass it to them.
_HINTS = (
    (re.compile(r"\bvite\b"), "vite does not read PORT: run it with --port $PORT --strictPort"),
    (
        re.compile(r"\bmanage\.py\b.*\brunserver\b|\bdjango-admin\b.*\brunserver\b"),
        "django does not read PORT: run `manage.py runserver 127.0.0.1:$PORT`",
    ),
    (re.compile(r"\bflask\b"), "flask does not read PORT: run `flask run --port $PORT`"),
)


class Listener(NamedTuple):
    pid: int
    ip: str
    port: int

    @property
    def address(self) -> str:
        return format_address(self.ip, self.port)


class Findings(NamedTuple):
    """The audit of one service generation, for `devup status` and the run record."""

    generation: int
    listening: tuple[str, ...] = ()  # addresses, "127.0.0.1:3001"
    pids: tuple[int, ...] = ()  # the process on each of `listening`
    warnings: tuple[str, ...] = ()  # said once each in this generation
    audits: int = 0  # checks done so far in this generation


def group_listeners(group: GroupId, sockets: list[ListenSocket] | None = None) -> list[Listener]:
    """The LISTEN sockets of the processes in `group` (started no earlier than its leader);
    `sockets`: the kernel's listening sockets when the caller has just read them."""
    members = group_members(group)
    return _listeners_of(members, sockets) if members else []


def groups_listeners(groups: Collection[GroupId]) -> dict[GroupId, list[Listener]]:
    """`group_listeners` of many groups: one pass over the processes and one read of the
    kernel's sockets for all of them (the audit of every service that became ready in a turn)."""
    by_group = groups_members(groups)
    sockets = listen_sockets() if any(by_group.values()) else []
    return {group: _listeners_of(members, sockets) for group, members in by_group.items()}


def _listeners_of(
    members: list[psutil.Process], sockets: list[ListenSocket] | None
) -> list[Listener]:
    found = _listeners_by_kernel(members, sockets)
    return found if found is not None else _listeners_by_psutil(members)


def leader_listeners(group: GroupId, sockets: list[ListenSocket]) -> list[Listener]:
    """What the group's leader itself listens on, among the kernel's `sockets`: the readiness
    probe's fast path (/proc/PID/fd of one process, not a pass over all of them). A server its
    shell exec'd is the leader, whose pid is devup's child: not reused while devup has not
    reaped it."""
    try:
        inodes = _socket_inodes(group.pgid)
    except OSError:
        return []  # gone, or no /proc
    by_inode = {sock.inode: sock for sock in sockets}
    held = (by_inode.get(inode) for inode in inodes)
    return [Listener(group.pgid, sock.ip, sock.port) for sock in held if sock is not None]


def _listeners_by_kernel(
    members: Iterable[psutil.Process], sockets: list[ListenSocket] | None = None
) -> list[Listener] | None:
    """The members' sockets that the kernel lists as listening (netlink), matched by inode;
    None where netlink cannot be asked."""
    held: list[tuple[int, list[int]]] = []
    for proc in members:
        try:
            held.append((proc.pid, _socket_inodes(proc.pid)))
        except OSError:
            continue  # gone, not ours to look at, or no /proc (macOS: netlink answers None)
    if sockets is None:
        sockets = listen_sockets({inode for _pid, inodes in held for inode in inodes})
    if sockets is None:
        return None
    by_inode = {sock.inode: sock for sock in sockets}
    found: list[Listener] = []
    for pid, inodes in held:
        for inode in inodes:
            sock = by_inode.get(inode)
            if sock is not None:
                listener = Listener(pid, sock.ip, sock.port)
                if listener not in found:
                    found.append(listener)
    return found


def _socket_inodes(pid: int) -> list[int]:
    """The inodes of the sockets `pid` holds (/proc/PID/fd/N -> "socket:[INODE]")."""
    inodes: list[int] = []
    fds = f"/proc/{pid}/fd"
    for fd in os.listdir(fds):
        try:
            target = os.readlink(f"{fds}/{fd}")
        except FileNotFoundError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.append(int(target[8:-1]))
    return inodes


def _listeners_by_psutil(members: Iterable[psutil.Process]) -> list[Listener]:
    import psutil

    found: list[Listener] = []
    for proc in members:
        try:
            conns = proc.net_connections(kind="tcp")
        except (OSError, psutil.Error):
            continue  # gone, or not ours to look at
        pid = proc.pid
        for conn in conns:
            if conn.status == psutil.CONN_LISTEN and conn.laddr:
                listener = Listener(pid, conn.laddr.ip, conn.laddr.port)
                if listener not in found:
                    found.append(listener)
    return found


def assess(
    manifest: Manifest, spec: ServiceSpec, port: int | None, listeners: Iterable[Listener]
) -> list[str]:
    """The warnings about a service listening on `listeners`: pure, for the audit and `ports`."""
    listeners = list(listeners)
    warnings: list[str] = []
    if not (spec.expose or manifest.settings.expose):
        for lst in listeners:
            if lst.ip in _PUBLIC:
                warnings.append(
                    f"{spec.name} (pid {lst.pid}) listens on {lst.address}: reachable from your "
                    "network; bind 127.0.0.1 (HOST is set) or set expose = true"
                )
    where = reach(port, ((lst.ip, lst.port) for lst in listeners))
    if port is not None and where is not None and where.port != port:
        elsewhere = ", ".join(dict.fromkeys(lst.address for lst in listeners))
        warning = f"{spec.name} ignored PORT={port} and listens on {elsewhere}"
        hint = framework_hint(spec.cmd)
        warnings.append(f"{warning}; {hint}" if hint else warning)
    if where is not None and only_ipv6_loopback(
        lst.ip for lst in listeners if lst.port == where.port
    ):
        warnings.append(
            f"{spec.name} listens only on [::1]:{where.port} (IPv6 loopback), where "
            f"127.0.0.1:{where.port} refuses connections: its URL is {where.url}"
        )
    return warnings


def framework_hint(cmdline: str) -> str | None:
    for pattern, hint in _HINTS:
        if pattern.search(cmdline):
            return hint
    return None


class AuditedService(Protocol):
    """What the audit reads of a service (the supervisor's ServiceRun)."""

    @property
    def spec(self) -> ServiceSpec: ...
    @property
    def port(self) -> int | None: ...
    @property
    def state(self) -> State: ...
    @property
    def generation(self) -> int: ...
    @property
    def group(self) -> GroupId | None: ...


class ListenerSource(Protocol):
    """Where the audit reads a group's listeners (the supervisor's host)."""

    def group_listeners(
        self, group: GroupId, sockets: list[ListenSocket] | None = None
    ) -> list[Listener]: ...

    def groups_listeners(self, groups: Collection[GroupId]) -> dict[GroupId, list[Listener]]: ...


class AuditedRun(Protocol):
    """What the audit needs of the run (the supervisor), so it does not import it."""

    @property
    def manifest(self) -> Manifest: ...
    @property
    def host(self) -> ListenerSource: ...
    @property
    def services(self) -> Mapping[str, AuditedService]: ...
    def say(self, text: str) -> None: ...
    def call_later(self, delay_s: float, callback: Callable[[], None]) -> None: ...
    @property
    def findings(self) -> Mapping[str, Findings]: ...
    def note_findings(self, name: str, findings: Findings | None) -> None: ...
    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]: ...


class ListenAudit:
    """A subscriber of the run: audits a service when it becomes ready (or its ready_timeout
    passes) and again a little later, says each warning once per generation, and hands the
    findings to the run (note_findings), which keeps them (the one copy) and shows them in
    status and the run record. A service that stops being up has none: what its process
    listened on is no longer what it listens on (`devup stop`, a restart, a crash).

    The services that came up are audited together at the end of a turn in which no service is
    still starting (after the "N services up" line that turn may say), or in which one with
    dependents came up (its warnings come before theirs), or HOLD_WHILE_STARTING_S after the
    first of them: one pass over the processes and one read of the kernel's sockets
    for all of them, not one each on the way to the next service's ready (at 50 services, ~1 ms
    each on a quiet machine and several under load, which held back the last ones' ready); and
    those audited together are checked again together."""

    def __init__(self, run: AuditedRun) -> None:
        self.run = run
        self._due: dict[str, int] = {}  # service -> generation, audited at the end of a turn
        self._now = False  # one of them has dependents: audited at the end of this turn
        self._needed_by: tuple[Manifest | None, frozenset[str]] = (None, frozenset())

    def __call__(self, notice: Notice) -> None:
        if isinstance(notice, TurnEnded):
            if self._due and (self._now or not self._starting()):
                self._check_due()
                # The run record heard this turn end before these findings: a turn at once
                # writes them, not the next event or timer (up to a second later).
                self.run.call_later(0.0, _next_turn)
            return
        if not isinstance(notice, ServiceStateChanged):
            return
        if notice.new not in _UP:
            if notice.old in _UP and notice.name in self.run.findings:
                self.run.note_findings(notice.name, None)
            return
        svc = self.run.services.get(notice.name)
        if svc is None or (svc.port is None and svc.spec.ready_log is None):
            return  # up at once, nothing proved where it listens: not audited
        name, generation = notice.name, notice.generation
        if not self._due:
            self.run.call_later(HOLD_WHILE_STARTING_S, self._check_due)
        self._due[name] = generation
        if name in self._depended_on():
            self._now = True  # its dependents start with where it listens: say why at once

    def _check_due(self) -> None:
        due, self._due, self._now = self._due, {}, False
        if not due:
            return
        self.check_all(due)
        for delay in RECHECK_AFTER_S:  # again together: one pass for the lot
            self.run.call_later(delay, lambda: self.check_all(due))

    def _depended_on(self) -> frozenset[str]:
        manifest = self.run.manifest
        if self._needed_by[0] is not manifest:  # worked out once per manifest (a reload)
            needed = {dep for spec in manifest.services.values() for dep in spec.depends_on}
            self._needed_by = (manifest, frozenset(needed))
        return self._needed_by[1]

    def _starting(self) -> bool:
        return any(svc.state is State.STARTING for svc in self.run.services.values())

    def check_all(self, due: Mapping[str, int]) -> None:
        """Audit each service of `due` whose process of that generation is still up."""
        current = {}
        for name, generation in due.items():
            svc = self.run.services.get(name)
            if svc is None or svc.generation != generation or svc.group is None:
                continue
            if svc.state in _UP:
                current[name] = (svc, svc.group)
        if not current:
            return
        listeners_of = self.run.host.groups_listeners([group for _svc, group in current.values()])
        for name, (svc, group) in current.items():
            self._note(name, svc, listeners_of.get(group, []))

    def _note(self, name: str, svc: AuditedService, listeners: list[Listener]) -> None:
        before = self.run.findings.get(name)
        if before is None or before.generation != svc.generation:
            before = Findings(svc.generation)
        warnings = list(before.warnings)
        for warning in assess(self.run.manifest, svc.spec, svc.port, listeners):
            if warning not in warnings:
                warnings.append(warning)
                self.run.say(warning)
        findings = Findings(
            svc.generation,
            tuple(lst.address for lst in listeners),
            tuple(lst.pid for lst in listeners),
            tuple(warnings),
            before.audits + 1,
        )
        self.run.note_findings(name, findings)


_UP = (State.READY, State.RUNNING)


def _next_turn() -> None:
    """Nothing: a timer due now only makes the loop turn once more."""


def install(run: AuditedRun) -> ListenAudit:
    audit = ListenAudit(run)
    run.subscribe(audit)
    return audit


def bind_failure(
    name: str,
    port: int | None,
    lines: list[str],
    holders_of: Callable[[int], list[Holder]] = find_holders,
) -> str | None:
    """If `lines` report a failed bind ("address already in use", EADDRINUSE), the line naming
    who holds the port: the one the message names, else the service's PORT (`holders_of`: the
    supervisor's host)."""
    for line in lines:
        if "already in use" not in line and "EADDRINUSE" not in line:
            continue
        named = _NAMED_PORT.findall(line)
        busy = int(named[-1]) if named else port
        if busy is None:
            return None
        holders = holders_of(busy)
        if holders:
            return f"{name}: port {busy} is held by {describe_all(holders)}"
        if named:
            return f"{name}: port {busy} was in use; nothing listens on it now"
        return None
    return None


def status_fields(findings: Findings | None, generation: int) -> dict[str, object]:
    """`listening` (with the pid on each address), `warnings` and `audits` (checks so far) of the
    current process of a service."""
    if findings is None or findings.generation != generation:
        return {"listening": None, "listening_pids": None, "warnings": [], "audits": 0}
    return {
        "listening": list(findings.listening),
        "listening_pids": list(findings.pids),
        "warnings": list(findings.warnings),
        "audits": findings.audits,
    }
