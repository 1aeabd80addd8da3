"""The port probe's cost at many services (run/readiness.py), on a scripted kernel table: the
polls of one turn share one read of it, a socket on another service's PORT does not send this one
to read its group, and a leader holding its PORT is ready without a pass over every process.
Readiness itself stays: its own PORT, or elsewhere after the grace, never another program's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from orchestrator.ports.listening import ListenSocket
from orchestrator.run.audit import Listener
from orchestrator.run.host import Host
from orchestrator.run.readiness import (
    OTHER_PORT_GRACE_S,
    POLL_GRID_S,
    READY_POLL_MIN_S,
    ListenTable,
    PortListening,
    ReadyProbe,
)
from orchestrator.system.process import GroupId

from .fakehost import START


@dataclass
class ScriptedKernel:
    """The Host calls a probe makes; each group's sockets, and who holds each (leader or not)."""

    now_s: float = START
    sockets: list[ListenSocket] = field(default_factory=list)
    held: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # pgid -> (pid, inode)
    reads: int = 0
    group_reads: int = 0
    leader_reads: int = 0

    def now(self) -> float:
        return self.now_s

    def listen(self, pgid: int, port: int, *, by_leader: bool = True) -> None:
        inode = 100 + len(self.sockets)
        self.sockets.append(ListenSocket(2, "127.0.0.1", port, inode))
        self.held.setdefault(pgid, []).append((pgid if by_leader else pgid + 1, inode))

    def listen_sockets(self) -> list[ListenSocket] | None:
        self.reads += 1
        return list(self.sockets)

    def _listeners(self, group: GroupId, leader_only: bool) -> list[Listener]:
        by_inode = {s.inode: s for s in self.sockets}
        return [
            Listener(pid, by_inode[inode].ip, by_inode[inode].port)
            for pid, inode in self.held.get(group.pgid, [])
            if not leader_only or pid == group.pgid
        ]

    def group_listeners(self, group: GroupId, sockets: Any = None) -> list[Listener]:
        self.group_reads += 1
        return self._listeners(group, leader_only=False)

    def leader_listeners(self, group: GroupId, sockets: Any) -> list[Listener]:
        self.leader_reads += 1
        return self._listeners(group, leader_only=True)


def probes(kernel: ScriptedKernel, ports: list[int]) -> list[ReadyProbe]:
    host = cast(Host, kernel)
    table = ListenTable(host)
    return [
        ReadyProbe(GroupId(4000 + i, 0.0), p, kernel.now, host, table) for i, p in enumerate(ports)
    ]


def test_the_polls_of_one_turn_share_one_read_of_the_kernels_table() -> None:
    kernel = ScriptedKernel()
    many = probes(kernel, list(range(3001, 3051)))
    assert [p.poll() for p in many] == [None] * 50
    assert kernel.reads == 1
    kernel.now_s += READY_POLL_MIN_S
    for p in many:
        p.poll()
    assert kernel.reads == 2  # a later turn reads the table again


def test_a_socket_on_another_services_port_does_not_read_this_group() -> None:
    kernel = ScriptedKernel()
    a, b, c = probes(kernel, [3001, 3002, 3003])
    for p in (a, b, c):
        p.poll()
    reads = kernel.group_reads
    kernel.now_s += READY_POLL_MIN_S
    kernel.listen(b.group.pgid, 3002)
    assert a.poll() is None and c.poll() is None
    assert b.poll() is not None
    assert kernel.group_reads == reads  # neither a, nor c, nor b (its leader holds it)


def test_a_leader_on_its_port_is_ready_from_its_own_sockets() -> None:
    kernel = ScriptedKernel()
    (probe,) = probes(kernel, [3001])
    probe.poll()
    reads = kernel.group_reads
    kernel.now_s += READY_POLL_MIN_S
    kernel.listen(probe.group.pgid, 3001)
    where = probe.poll()
    assert where is not None and where.port == 3001
    assert kernel.group_reads == reads and kernel.leader_reads == 1


def test_a_member_that_is_not_the_leader_is_found_by_the_group_read() -> None:
    """npm -> node: the listener is a child of the leader."""
    kernel = ScriptedKernel()
    (probe,) = probes(kernel, [3001])
    probe.poll()
    kernel.now_s += READY_POLL_MIN_S
    kernel.listen(probe.group.pgid, 3001, by_leader=False)
    where = probe.poll()
    assert where is not None and where.port == 3001


def test_another_programs_socket_on_port_never_makes_it_ready() -> None:
    kernel = ScriptedKernel()
    (probe,) = probes(kernel, [3001])
    probe.poll()
    kernel.now_s += READY_POLL_MIN_S
    kernel.listen(9999, 3001)  # some other group
    assert probe.poll() is None
    kernel.now_s += 1.0
    assert probe.poll() is None


def test_a_socket_on_a_port_nobody_was_given_is_looked_at_and_counts_after_the_grace() -> None:
    kernel = ScriptedKernel()
    a, b = probes(kernel, [3001, 3002])
    a.poll()
    b.poll()
    kernel.now_s += READY_POLL_MIN_S
    kernel.listen(a.group.pgid, 5173)  # ignores PORT
    reads = kernel.group_reads
    assert a.poll() is None and b.poll() is None
    assert kernel.group_reads == reads + 2  # may be either's: both look
    kernel.now_s += OTHER_PORT_GRACE_S + 0.001
    where = a.poll()
    assert where is not None and where.port == 5173
    assert b.poll() is None


@pytest.mark.parametrize("starting_s", [0.0, 0.012, 0.2, 3.0])
def test_polls_fall_due_on_a_grid_so_the_services_share_turns(starting_s: float) -> None:
    kernel = ScriptedKernel(now_s=START + 0.0031)
    check = PortListening(GroupId(4000, 0.0), 3001, cast(Host, kernel))
    delay = check.next_poll_s(starting_s, late=False)
    due = kernel.now_s + delay
    assert delay >= min(max(starting_s / 10, READY_POLL_MIN_S), 0.05) - 1e-9
    assert abs(due / POLL_GRID_S - round(due / POLL_GRID_S)) < 1e-6


def test_the_table_tells_what_appeared_since_a_read_and_nothing_when_nothing_did() -> None:
    kernel = ScriptedKernel()
    table = ListenTable(cast(Host, kernel))
    table.read()
    first = table.version
    kernel.listen(4000, 3001)
    kernel.now_s += READY_POLL_MIN_S
    table.read()
    assert [s.port for s in table.added_since(first) or []] == [3001]
    assert table.added_since(table.version) == []
    kernel.now_s += READY_POLL_MIN_S
    table.read()  # nothing changed: the same version
    assert table.added_since(first + 1) == []
    assert table.added_since(-1) is None  # before the history kept: the probe compares itself


@pytest.mark.parametrize(("netlink", "expected_s"), [(True, 0.005), (False, 0.05)])
def test_a_service_half_a_second_into_its_start_is_probed_every_5_ms_where_probes_are_cheap(
    netlink: bool, expected_s: float
) -> None:
    kernel = ScriptedKernel(now_s=START)
    if not netlink:
        kernel.listen_sockets = lambda: None  # type: ignore[method-assign]
    check = PortListening(GroupId(4000, 0.0), 3001, cast(Host, kernel))
    check.poll()
    delay = check.next_poll_s(0.5, late=False)
    assert expected_s - 1e-9 <= delay < expected_s + POLL_GRID_S
