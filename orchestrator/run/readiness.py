"""The readiness probe of a starting service: ready once a process of its own group listens, on
its PORT, or elsewhere when PORT stays closed a moment longer (a server that ignores PORT).
Another program's listener on PORT never counts.

Probed every few ms: on Linux the kernel's listening sockets are read over netlink (~0.1 ms) and
the group's own sockets (/proc/PID/fd, ~0.5 ms) only when a listening socket appeared since the
last probe; where netlink is not available, psutil reads the group's sockets each time.
"""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.ports.reach import Reach, reach
from orchestrator.run.host import Host, PosixHost
from orchestrator.system.process import GroupId

# A server may open a side socket (a debugger, an HMR socket) a moment before its HTTP port:
# a port other than PORT counts once the group has listened there this long without PORT.
OTHER_PORT_GRACE_S = 0.3
# The group's sockets are read at least this often even with no new listener in the kernel's
# table: a read that missed a member (it was being created, /proc was slow) is not final.
RECHECK_S = 0.5


class ReadyProbe:
    def __init__(
        self,
        group: GroupId,
        port: int | None,
        clock: Callable[[], float],
        host: Host | None = None,
    ) -> None:
        self.group = group
        self.port = port
        self._clock = clock
        self._host: Host = host if host is not None else PosixHost(clock)  # what it probes
        self._seen: frozenset[int] = frozenset()  # inodes of the listening sockets last probed
        self._elsewhere_since: float | None = None
        self._checked_at = float("-inf")

    def poll(self) -> Reach | None:
        """Where the service answers once it is ready, else None."""
        sockets = self._host.listen_sockets()
        now = self._clock()
        since = self._elsewhere_since
        if sockets is not None:
            inodes = frozenset(sock.inode for sock in sockets)
            fresh = not inodes <= self._seen
            self._seen = inodes
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
