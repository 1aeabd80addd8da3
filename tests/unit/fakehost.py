"""A scripted operating system for the supervisor (run/host.py's Host), a fake clock, and `Run`, a
supervisor on both turned by hand: no process is spawned, no socket opened, no time slept.

A test scripts each fake child event by event (it prints, listens, exits, leaves members of its
group behind, ignores SIGTERM); the fake host posts what the OS would tell devup (OutputRead,
OutputClosed, ChildrenChanged) and records what it was asked (spawns, signals), as watchfiles'
tests script its watcher and honcho's tests swap its process constructor.
"""

from __future__ import annotations

import queue
import signal
import textwrap
import threading
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.config.manifest import ServiceSpec, load_manifest, start_order
from orchestrator.control.server import handle
from orchestrator.output.printer import Printer
from orchestrator.ports.holders import Holder
from orchestrator.ports.listening import ListenSocket
from orchestrator.run.audit import Listener
from orchestrator.run.events import (
    ChildrenChanged,
    ControlRequested,
    Event,
    FilesChanged,
    OutputClosed,
    OutputRead,
    SignalReceived,
)
from orchestrator.run.host import LOST_CHILD_STATUS
from orchestrator.run.supervisor import Supervisor
from orchestrator.system.process import Child, GroupId

START = 1000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


class FakePopen:
    """What the supervisor touches of a Popen: the returncode it sets once it has reaped."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.stdout = None


@dataclass
class FakeMember:
    """A process of a group (or an adopted orphan) as psutil shows it."""

    pid: int
    marker: str | None = None
    ignores_term: bool = False
    writing: tuple[str, ...] = ()  # paths it holds open for writing

    def name(self) -> str:
        return f"fake{self.pid}"

    def open_files(self) -> list[Any]:
        return [_OpenFile(path, "w") for path in self.writing]


@dataclass(frozen=True)
class _OpenFile:
    path: str
    mode: str


@dataclass
class FakeChild:
    """One spawn of a service: its leader, the rest of its group, what it listens on."""

    host: FakeHost
    name: str
    generation: int
    pid: int
    env: dict[str, str]
    post: Callable[[Event], None] | None = None
    status: int | None = None  # its wait status once the leader exited
    reaped: bool = False
    output_open: bool = True
    ignores_term: bool = False  # the leader survives its stop signal (SIGKILL still works)
    members: list[FakeMember] = field(default_factory=list)  # alive besides the leader
    listening: list[tuple[str, int]] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        return self.status is None

    @property
    def group_alive(self) -> bool:
        return self.alive or bool(self.members)

    # -- what a test scripts ---------------------------------------------------------------

    def print(self, *lines: str) -> None:
        assert self.post is not None and self.output_open
        self.post(OutputRead(self.name, self.generation, "".join(f"{x}\n" for x in lines).encode()))

    def listen(self, port: int, ip: str = "127.0.0.1") -> None:
        self.listening.append((ip, port))

    def leave_behind(self, count: int = 1, *, ignores_term: bool = False) -> list[FakeMember]:
        """Members of its group that will outlive its leader."""
        new = [FakeMember(self.host.new_pid(), ignores_term=ignores_term) for _ in range(count)]
        self.members.extend(new)
        return new

    def exit(self, code: int = 0, *, close_output: bool = True) -> None:
        """The leader exits on its own with `code`; SIGCHLD follows."""
        self._die(code << 8, close_output=close_output)

    def die_from(self, sig: int) -> None:
        self._die(int(sig))

    def close_output(self) -> None:
        if self.output_open:
            self.output_open = False
            assert self.post is not None
            self.post(OutputClosed(self.name, self.generation))

    def members_exit(self) -> None:
        self.members.clear()

    # -- what the host does to it ----------------------------------------------------------

    def _die(self, status: int, *, close_output: bool = True) -> None:
        assert self.alive, f"{self.name} gen {self.generation} already exited"
        self.status = status
        self.listening.clear()
        if close_output:
            self.close_output()
        self.host.events.put(ChildrenChanged())

    def signalled(self, sig: int) -> None:
        kill = sig == signal.SIGKILL
        self.members = [m for m in self.members if m.ignores_term and not kill]
        if self.alive and (kill or not self.ignores_term):
            self._die(int(sig))


class FakeHost:
    """The Host protocol on scripted children; records every spawn and signal."""

    def __init__(self, events: queue.SimpleQueue[Event], clock: FakeClock) -> None:
        self.events = events
        self.clock = clock
        self.children: list[FakeChild] = []  # every spawn, oldest first
        self.signals: list[tuple[str, int, int]] = []  # (service, generation, signal)
        self.orphan_signals: list[tuple[int, int]] = []  # (pid, signal)
        self.spawn_errors: dict[str, OSError] = {}  # the next spawn of NAME fails so
        self.busy_ports: set[int] = set()  # held by something outside the run
        self.holders: dict[int, list[Holder]] = {}
        self.adopted: list[FakeMember] = []
        self.audit_passes = 0  # groups_listeners calls: one per turn for every service audited
        self._pids = iter(range(4000, 1 << 22))
        self._spawns: dict[str, int] = {}

    def new_pid(self) -> int:
        return next(self._pids)

    # -- what tests read -------------------------------------------------------------------

    def spawned(self, name: str | None = None) -> list[FakeChild]:
        return [c for c in self.children if name is None or c.name == name]

    def last(self, name: str) -> FakeChild:
        return self.spawned(name)[-1]

    def signals_to(self, name: str) -> list[int]:
        return [sig for svc, _gen, sig in self.signals if svc == name]

    # -- Host ------------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock.now

    def spawn(self, spec: ServiceSpec, env: dict[str, str]) -> Child:
        self._spawns[spec.name] = generation = self._spawns.get(spec.name, 0) + 1
        error = self.spawn_errors.pop(spec.name, None)
        if error is not None:
            raise error
        child = FakeChild(self, spec.name, generation, self.new_pid(), env)
        self.children.append(child)
        group = GroupId(child.pid, self.clock.now, env.get("DEVUP_RUN_ID"))
        return Child(group, FakePopen(child.pid))  # type: ignore[arg-type]

    def read_output(
        self,
        child: Child,
        name: str,
        generation: int,
        post: Callable[[Event], None],
        slots: threading.Semaphore,
    ) -> None:
        fake = self._by_pid(child.pid)
        assert fake is not None and fake.generation == generation
        fake.post = post

    def wait_child(self, pid: int) -> int | None:
        fake = self._by_pid(pid)
        if fake is None or fake.reaped:
            return LOST_CHILD_STATUS
        if fake.alive:
            return None
        fake.reaped = True
        return fake.status

    def reap_exited(self) -> Iterator[tuple[int, int]]:
        for fake in self.children:
            if not fake.alive and not fake.reaped:
                fake.reaped = True
                assert fake.status is not None
                yield fake.pid, fake.status

    def group_members(self, group: GroupId) -> list[Any]:
        fake = self._by_pid(group.pgid)
        if fake is None:
            return []
        leader = [FakeMember(fake.pid)] if fake.alive else []
        return leader + list(fake.members)

    def group_alive(self, group: GroupId) -> bool:
        fake = self._by_pid(group.pgid)
        return fake is not None and fake.group_alive

    def signal_group(self, group: GroupId, sig: int, *, leader_unreaped: bool = False) -> bool:
        fake = self._by_pid(group.pgid)
        if fake is None or not fake.group_alive:
            return False
        self.signals.append((fake.name, fake.generation, int(sig)))
        fake.signalled(sig)
        return True

    def orphans(self, marker: str, leaders: set[int]) -> list[Any]:
        return [o for o in self.adopted if o.marker == marker and o.pid not in leaders]

    def signal_orphans(self, orphans: list[Any], sig: int) -> None:
        for orphan in orphans:
            self.orphan_signals.append((orphan.pid, int(sig)))
            if sig == signal.SIGKILL or not orphan.ignores_term:
                self.adopted = [o for o in self.adopted if o.pid != orphan.pid]

    def listen_sockets(self) -> list[ListenSocket] | None:
        return None  # "netlink cannot be asked": the probe reads the group each time

    def group_listeners(
        self, group: GroupId, sockets: list[ListenSocket] | None = None
    ) -> list[Listener]:
        fake = self._by_pid(group.pgid)
        if fake is None or not fake.group_alive:
            return []
        return [Listener(fake.pid, ip, port) for ip, port in fake.listening]

    def groups_listeners(self, groups: Collection[GroupId]) -> dict[GroupId, list[Listener]]:
        self.audit_passes += 1
        return {group: self.group_listeners(group) for group in groups}

    def leader_listeners(self, group: GroupId, sockets: list[ListenSocket]) -> list[Listener]:
        return []  # not asked: listen_sockets answers None here

    def port_holders(self, port: int) -> list[Holder]:
        return list(self.holders.get(port, []))

    def is_port_free(self, port: int) -> bool:
        if port in self.busy_ports:
            return False
        return not any(c.group_alive and port in (p for _, p in c.listening) for c in self.children)

    def _by_pid(self, pid: int) -> FakeChild | None:
        return next((c for c in self.children if c.pid == pid), None)


class Run:
    """A supervisor on a FakeHost and a FakeClock, for one devports.toml, turned by hand."""

    def __init__(
        self,
        root: Path,
        toml: str,
        *,
        watching: bool = True,
        run_id: str | None = None,
        ports: dict[str, int | None] | None = None,
    ) -> None:
        (root / "devports.toml").write_text(textwrap.dedent(toml))
        self.root = root
        self.manifest = load_manifest(root / "devports.toml")
        order = start_order(self.manifest)
        if ports is None:
            ports = {
                n: (s.preferred_port if s.needs_port else None)
                for n, s in self.manifest.services.items()
            }
        self.out: list[bytes] = []
        self.clock = FakeClock()
        self.events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self.host = FakeHost(self.events, self.clock)
        self.answers: list[dict[str, Any]] = []
        self.sup = Supervisor(
            self.manifest,
            order,
            ports,
            {n: {} for n in order},
            Printer(order, self.out.append, color=False, clock=lambda: 0.0),
            events=self.events,
            watching=watching,
            run_id=run_id,
            host=self.host,
            on_control=handle,
        )

    # -- turning the loop ------------------------------------------------------------------

    def start(self) -> Run:
        self.sup.start()
        self.step()
        return self

    def step(self) -> None:
        """Handle everything queued and every timer due now (what they queue too)."""
        for _ in range(1000):
            self.sup.step(0)
            if self.events.empty():
                return
        raise AssertionError("the supervisor keeps posting events to itself")

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass on the fake clock, running each timer at its time."""
        end = self.clock.now + seconds
        self.step()
        while (remaining := end - self.clock.now) > 0:
            self.clock.now += max(self.sup.timers.timeout(remaining), 1e-9)
            self.step()

    def until(self, predicate: Callable[[], bool], limit_s: float, what: str) -> float:
        """Advance the fake clock timer by timer until `predicate`; returns the time it took."""
        began = self.clock.now
        self.step()
        while not predicate():
            if self.clock.now - began > limit_s:
                raise AssertionError(f"not {what} within {limit_s}s of fake time:\n{self.said()}")
            self.clock.now += max(self.sup.timers.timeout(limit_s), 1e-9)
            self.step()
        return self.clock.now - began

    # -- scripting events ------------------------------------------------------------------

    def change(self, name: str, path: str = "app.py") -> None:
        self.events.put(FilesChanged(name, path, seen_at=self.clock.now))
        self.step()

    def signal(self, sig: int) -> None:
        self.events.put(SignalReceived(int(sig)))
        self.step()

    def control(self, verb: str, *names: str, wait: bool = False) -> None:
        self.events.put(ControlRequested(verb, names, {"wait": wait}, reply=self.answers.append))
        self.step()

    # -- reading -----------------------------------------------------------------------------

    def state(self, name: str) -> str:
        return str(self.sup.status()["services"][name]["state"])

    def states(self) -> dict[str, str]:
        return {n: s["state"] for n, s in self.sup.status()["services"].items()}

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.sup.status()["services"][name])

    def lines(self, name: str = "devup") -> list[str]:
        """What the printer printed for `name` (devup's own lines by default), without stamps."""
        found = []
        for chunk in self.out:
            for raw in chunk.decode().splitlines():
                _stamp, _, rest = raw.partition(" ")
                who, sep, text = rest.partition(" | ")
                if sep and who.strip() == name:
                    found.append(text)
        return found

    def said(self) -> str:
        return "\n".join(self.lines())

    def saw(self, fragment: str) -> bool:
        return any(fragment in line for line in self.lines())

    @property
    def exit_code(self) -> int | None:
        return self.sup.exit_code
