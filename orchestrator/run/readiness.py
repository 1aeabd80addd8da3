"""How a starting service proves it is ready: one small strategy per spawn (`readiness_for`),
chosen from its spec: its port listening, a line of its log, its exit (a task), or nothing.

The port probe: ready once a process of its own group listens, on its PORT, or elsewhere when
PORT stays closed a moment longer (a server that ignores PORT). Another program's listener on PORT
never counts.

Probed every few ms: on Linux the kernel's listening sockets are read over netlink (~0.1 ms, one
read shared by every probe of the turn: ListenTable); a socket new on its PORT is looked up in
the leader's /proc/PID/fd first (~0.05 ms), the whole group's (a pass over every process, ~1 ms)
only when the leader does not hold it or a socket appeared on a port no service was given; where
netlink is not available, psutil reads the group's sockets each time. So a start of N services
costs O(1) group reads per service, not one per service each time any of them listens.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable

from orchestrator.config.manifest import ServiceSpec
from orchestrator.ports.holders import describe_all
from orchestrator.ports.listening import ListenSocket
from orchestrator.ports.reach import Reach, reach
from orchestrator.run.host import Host, PosixHost
from orchestrator.system.process import GroupId

# A server may open a side socket (a debugger, an HMR socket) a moment before its HTTP port:
# a port other than PORT counts once the group has listened there this long without PORT.
OTHER_PORT_GRACE_S = 0.3
# The group's sockets are read at least this often even with no new listener in the kernel's
# table: a read that missed a member (it was being created, /proc was slow) is not final.
RECHECK_S = 0.5
# Probes polled this close together (the timers of one turn) share one read of the kernel's table.
SHARE_READ_S = 0.001
ADDED_KEPT = 256  # the last reads whose new sockets a probe may still ask about


class ListenTable:
    """The kernel's listening sockets as the probes of one run see them: one netlink read shared
    by every probe polled within SHARE_READ_S; what each read added, so a probe finds what is
    new since it last looked in O(new sockets) (nothing new: O(1)); and the ports the run's
    probes were given (a new socket on another service's PORT is not worth a look at this one's
    group)."""

    def __init__(self, host: Host) -> None:
        self._host = host
        self._read_at = float("-inf")
        self._sockets: list[ListenSocket] | None = None
        self._inodes: frozenset[int] = frozenset()
        self.version = 0  # how many reads changed the set of listening sockets
        self._added: deque[tuple[int, list[ListenSocket]]] = deque(maxlen=ADDED_KEPT)
        self.claimed: set[int] = set()  # every probed PORT so far (a stale one costs a recheck)

    def read(self) -> list[ListenSocket] | None:
        now = self._host.now()
        if now - self._read_at > SHARE_READ_S:
            self._read_at = now
            self._sockets = sockets = self._host.listen_sockets()
            if sockets is not None:
                inodes = frozenset(sock.inode for sock in sockets)
                if inodes != self._inodes:
                    self.version += 1
                    added = [sock for sock in sockets if sock.inode not in self._inodes]
                    self._added.append((self.version, added))
                    self._inodes = inodes
        return self._sockets

    @property
    def inodes(self) -> frozenset[int]:
        return self._inodes

    def added_since(self, version: int) -> list[ListenSocket] | None:
        """The sockets that appeared after `version`; None if that is too long ago to tell."""
        if version == self.version:
            return []
        if not self._added or self._added[0][0] > version + 1:
            return None
        return [sock for at, added in self._added if at > version for sock in added]


class ReadyProbe:
    def __init__(
        self,
        group: GroupId,
        port: int | None,
        clock: Callable[[], float],
        host: Host | None = None,
        table: ListenTable | None = None,
    ) -> None:
        self.group = group
        self.port = port
        self._clock = clock
        self._host: Host = host if host is not None else PosixHost(clock)  # what it probes
        self._table = table if table is not None else ListenTable(self._host)
        if port is not None:
            self._table.claimed.add(port)
        self._seen: frozenset[int] = frozenset()  # inodes of the listening sockets last probed
        self._seen_version = -1  # the table's version when this probe last looked
        self.shares_reads = False  # the kernel's table answered: a probe costs little
        self._elsewhere_since: float | None = None
        self._checked_at = float("-inf")

    def poll(self) -> Reach | None:
        """Where the service answers once it is ready, else None."""
        sockets = self._table.read()
        now = self._clock()
        since = self._elsewhere_since
        self.shares_reads = sockets is not None
        if sockets is not None:
            added = self._table.added_since(self._seen_version)
            if added is None:
                added = [sock for sock in sockets if sock.inode not in self._seen]
            new = [sock for sock in added if sock.inode not in self._seen]
            if self._seen_version != self._table.version:
                self._seen_version = self._table.version
                self._seen = self._table.inodes
            if self.port is not None and any(sock.port == self.port for sock in new):
                # Most servers are their shell's exec'd leader: its own sockets say it at once.
                held = self._host.leader_listeners(self.group, sockets)
                where = reach(self.port, ((lst.ip, lst.port) for lst in held))
                if where is not None and where.port == self.port:
                    return where
            # A socket on another service's PORT is that one's; one on a port nobody was
            # given may be this service's, listening elsewhere than its PORT.
            claimed = self._table.claimed
            fresh = any(sock.port == self.port or sock.port not in claimed for sock in new)
            due = since is not None and now - since >= OTHER_PORT_GRACE_S
            if not fresh and not due and now - self._checked_at < RECHECK_S:
                return None  # no new listener anywhere: nothing of the group's can have changed
        self._checked_at = now
        listeners = self._host.group_listeners(self.group, sockets)
        where = reach(self.port, ((lst.ip, lst.port) for lst in listeners))
        if where is None:
            self._elsewhere_since = None
            return None
        if self.port is None or where.port == self.port:
            return where
        if since is None:
            self._elsewhere_since = now
            return None
        return where if now - since >= OTHER_PORT_GRACE_S else None

    def where_now(self) -> Reach | None:
        """Where the group listens right now (for a service proved ready by its log)."""
        listeners = self._host.group_listeners(self.group)
        return reach(self.port, ((lst.ip, lst.port) for lst in listeners))


# -- how a service proves it is ready: one strategy per spawn, chosen from its spec --------------

# A starting service's port is probed every tenth of the time it has been starting, within these
# bounds: a fast start is seen within ~5 ms, a slow one costs 20 probes a second. Where the probes
# share the kernel's table (Linux: a probe with nothing new is a few comparisons), every
# hundredth: the last of 50 services, spawned ~0.5 s after the first, is still probed every 5 ms.
READY_POLL_MIN_S = 0.005
POLL_AGE_SHARE = 10
SHARED_POLL_AGE_SHARE = 100
READY_POLL_MAX_S = 0.05
# Polls fall due on a grid of this step, so the polls of many starting services come in one turn
# and share one read of the kernel's table (ListenTable).
POLL_GRID_S = READY_POLL_MIN_S
# After ready_timeout, a service that still listens nowhere is looked at this often: it becomes
# ready when it finally listens (a slow first compile).
LATE_READY_POLL_S = 1.0


class Readiness:
    """How one spawn of a service proves it is ready; the supervisor drives it (a timer for
    `poll`, its lines for `matches`, its exit for a task) and owns the states. A new check (an
    HTTP answer, a command) is one subclass and one manifest key in `readiness_for`."""

    up_at_once = False  # nothing to wait for: up once it runs
    times_out = True  # not ready after ready_timeout: said, and its dependents start anyway
    first_poll_s: float | None = None  # polled on a timer from this long after the spawn
    polls_late = False  # still polled after ready_timeout, to become ready late
    reads_output = False  # its lines are searched while it starts

    def poll(self) -> Reach | None:
        """Where it answers once it is ready; None: not yet."""
        return None

    def next_poll_s(self, starting_s: float, late: bool) -> float:
        return LATE_READY_POLL_S if late else READY_POLL_MAX_S

    def matches(self, lines: list[str]) -> bool:
        return False

    def where(self) -> Reach | None:
        """Where it answers, once proved ready by something else than a poll (its log)."""
        return None

    def not_ready(self, name: str) -> str:
        """Why it is not ready at ready_timeout, for the line that says so."""
        return "not ready"


class UpOnceRunning(Readiness):
    """A worker without a port or ready_log: up once it runs."""

    up_at_once = True
    times_out = False


class TaskExit(Readiness):
    """A task (`port = false`, `restart = "no"`): done when it exits 0, which its dependents
    wait for however long it takes (the supervisor's exit handling)."""

    times_out = False


class PortListening(Readiness):
    """Ready once a process of its own group listens (ReadyProbe), probed more often the younger
    the spawn is, and about once a second after ready_timeout."""

    first_poll_s = READY_POLL_MIN_S
    polls_late = True

    def __init__(
        self, group: GroupId, port: int, host: Host, table: ListenTable | None = None
    ) -> None:
        self.port = port
        self.probe = ReadyProbe(group, port, host.now, host, table)
        self._host = host

    def poll(self) -> Reach | None:
        return self.probe.poll()

    def next_poll_s(self, starting_s: float, late: bool) -> float:
        if late:
            return LATE_READY_POLL_S
        share = SHARED_POLL_AGE_SHARE if self.probe.shares_reads else POLL_AGE_SHARE
        interval = min(READY_POLL_MAX_S, max(READY_POLL_MIN_S, starting_s / share))
        now = self._host.now()
        return math.ceil((now + interval) / POLL_GRID_S) * POLL_GRID_S - now

    def not_ready(self, name: str) -> str:
        holders = self._host.port_holders(self.port)
        if holders:  # another program's: it does not make this service ready
            return f"port {self.port} is held by {describe_all(holders)}, not by {name}"
        return f"nothing listens on port {self.port}"


class LogMatches(Readiness):
    """Ready once a line of its output matches `ready_log`; where it then listens is read once."""

    reads_output = True

    def __init__(
        self, pattern: str, group: GroupId, port: int | None, host: Host, task: bool
    ) -> None:
        self.regex = re.compile(pattern)
        self.probe = ReadyProbe(group, port, host.now, host)
        self.port = port
        self.times_out = not task

    def matches(self, lines: list[str]) -> bool:
        return any(map(self.regex.search, lines))

    def where(self) -> Reach | None:
        return self.probe.where_now() if self.port is not None else None

    def not_ready(self, name: str) -> str:
        return "ready_log did not match"


def readiness_for(
    spec: ServiceSpec,
    port: int | None,
    task: bool,
    group: GroupId,
    host: Host,
    table: ListenTable | None = None,
) -> Readiness:
    """The check a spawn of `spec` proves itself ready by: its manifest's ready_log, else its
    port, else its exit (a task), else nothing."""
    if spec.ready_log:
        return LogMatches(spec.ready_log, group, port, host, task)
    if port is not None:
        return PortListening(group, port, host, table)
    if task:
        return TaskExit()
    return UpOnceRunning()
