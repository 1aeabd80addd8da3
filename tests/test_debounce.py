"""The supervisor's timing decisions on a fake clock (no process is started): the quiet time of a
file change counts from when the watcher saw it, and a starting service's port is probed more
often the younger it is."""

from __future__ import annotations

import queue
import socket
from pathlib import Path

import pytest

from orchestrator.config.manifest import load_manifest
from orchestrator.output.printer import Printer
from orchestrator.run.debounce import BURST_QUIET_S
from orchestrator.run.events import FilesChanged
from orchestrator.run.readiness import POLL_GRID_S, PortListening
from orchestrator.run.states import State
from orchestrator.run.supervisor import Supervisor
from orchestrator.system.process import GroupId

DEBOUNCE_S = 0.05


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def supervisor(tmp_path: Path, clock: Clock, port: int) -> Supervisor:
    (tmp_path / "devports.toml").write_text(
        f'[devup]\ndebounce_ms = {DEBOUNCE_S * 1000:g}\n[services.api]\ncmd = "true"\n'
        f"port = {port}\n"
    )
    manifest = load_manifest(tmp_path / "devports.toml")

    def no_spawn(*_: object) -> None:
        raise AssertionError("these tests start no process")

    return Supervisor(
        manifest,
        ["api"],
        {"api": port},
        {"api": {}},
        Printer(["api"], lambda _b: None, color=False),
        events=queue.SimpleQueue(),
        clock=clock,
        spawn=no_spawn,  # type: ignore[arg-type]
    )


@pytest.fixture
def port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("seen_ago_s", "due_in_s"),
    [
        (0.0, DEBOUNCE_S),  # read at once
        (0.03, DEBOUNCE_S - 0.03),  # the supervisor was busy 30 ms: those count as quiet
        (5.0, 0.0),  # never more than the debounce itself (another clock, a stalled loop)
        (None, DEBOUNCE_S),  # no stamp: from now
    ],
)
def test_the_quiet_time_counts_from_when_the_watcher_saw_the_change(
    tmp_path: Path, port: int, seen_ago_s: float | None, due_in_s: float
) -> None:
    clock = Clock()
    sup = supervisor(tmp_path, clock, port)
    api = sup.services["api"]
    api.state = State.STOPPED  # it exited: its next change starts it
    seen_at = None if seen_ago_s is None else clock.now - seen_ago_s
    sup._on_files_changed(FilesChanged("api", "app.py", seen_at))
    assert api.state is State.RESTARTING
    assert api.restart_due == pytest.approx(clock.now + due_in_s)
    assert sup.timers.timeout(10.0) == pytest.approx(due_in_s)


def test_a_change_folded_into_a_restart_pushes_it_from_when_it_was_seen(
    tmp_path: Path, port: int
) -> None:
    clock = Clock()
    sup = supervisor(tmp_path, clock, port)
    api = sup.services["api"]
    api.state = State.STOPPED
    sup._on_files_changed(FilesChanged("api", "a.py", clock.now))
    clock.now += 0.04
    sup._on_files_changed(FilesChanged("api", "b.py", clock.now - 0.01))  # read 10 ms late
    assert api.restart_due == pytest.approx(clock.now - 0.01 + DEBOUNCE_S)
    assert api.burst_events == 2


@pytest.mark.parametrize("state", [State.READY, State.STARTING, State.STOPPED, State.CRASHED])
@pytest.mark.parametrize(
    ("seen_after_spawn_s", "restarts"),
    [
        (-0.005, False),  # posted late by a busy watcher thread: the process read the new files
        (0.001, True),  # after the spawn: it may have read the old ones
    ],
)
def test_a_change_seen_before_the_process_was_spawned_does_not_restart_it(
    tmp_path: Path, port: int, state: State, seen_after_spawn_s: float, restarts: bool
) -> None:
    clock = Clock()
    sup = supervisor(tmp_path, clock, port)
    api = sup.services["api"]
    api.state = state
    api.spawn.started_at = clock.now - 0.03
    seen_at = api.spawn.started_at + seen_after_spawn_s
    sup._on_files_changed(FilesChanged("api", "app.py", seen_at))
    assert (api.state is not state) is restarts
    assert (api.restart_due is not None) is restarts


@pytest.mark.parametrize(
    ("up_for_s", "quiet_s"),
    [(0.1, BURST_QUIET_S), (0.29, BURST_QUIET_S), (0.31, DEBOUNCE_S), (30.0, DEBOUNCE_S)],
)
def test_a_change_soon_after_the_start_waits_for_a_bursts_quiet(
    tmp_path: Path, port: int, up_for_s: float, quiet_s: float
) -> None:
    """A checkout starved for CPU trickles its files: each restart's new process met the next
    file and restarted again (8 restarts for one burst); the rest of it now folds into one."""
    clock = Clock()
    sup = supervisor(tmp_path, clock, port)
    api = sup.services["api"]
    api.state = State.READY
    api.spawn.started_at = clock.now - up_for_s
    sup._on_files_changed(FilesChanged("api", "src/f9.py", clock.now))
    assert api.restart_due == pytest.approx(clock.now + quiet_s)


@pytest.mark.parametrize("state", [State.READY, State.STARTING])
@pytest.mark.parametrize(
    ("written_after_spawn_s", "restarts"),
    [
        (-0.05, False),  # written before the spawn, read 0.2 s after it by a lagging watcher
        (-0.005, True),  # within the coarse mtime clock's tick of the spawn: it may be after
        (0.01, True),
    ],
)
def test_a_change_written_before_the_spawn_but_read_after_it_does_not_restart_it(
    tmp_path: Path, port: int, state: State, written_after_spawn_s: float, restarts: bool
) -> None:
    """bench/restart's 5,000-file burst: the watcher's thread, behind the writer, read the 90th
    file after the new process was spawned; that file had been written before."""
    clock = Clock()
    sup = supervisor(tmp_path, clock, port)
    api = sup.services["api"]
    api.state = state
    api.spawn.started_at = clock.now - 0.2
    written_at = api.spawn.started_at + written_after_spawn_s
    sup._on_files_changed(FilesChanged("api", "src/f90.py", clock.now, written_at=written_at))
    assert (api.state is not state) is restarts
    assert (api.restart_due is not None) is restarts


@pytest.mark.parametrize(
    ("starting_for_s", "shared_in_s", "alone_in_s"),
    # A hundredth of its age where the probes share the kernel's table (netlink), else a tenth;
    # within 5-50 ms.
    [(0.02, 0.005, 0.005), (1.0, 0.01, 0.05), (10.0, 0.05, 0.05)],
)
def test_a_starting_service_is_probed_more_often_the_younger_it_is(
    tmp_path: Path, port: int, starting_for_s: float, shared_in_s: float, alone_in_s: float
) -> None:
    clock = Clock()
    sup = supervisor(tmp_path, clock, port)
    api = sup.services["api"]
    api.state = State.STARTING
    api.spawn.started_at = clock.now - starting_for_s
    readiness = PortListening(GroupId(2**22 + 7, 0.0), port, sup.host)  # no such group
    api.spawn.readiness = readiness
    sup._poll_ready(api, api.generation)  # nothing listens on the port: probe again later
    assert api.state is State.STARTING
    next_probe_in_s = shared_in_s if readiness.probe.shares_reads else alone_in_s
    # Due on the next step of the grid the probes of many services share (readiness.py).
    assert next_probe_in_s <= sup.timers.timeout(10.0) + 1e-9 < next_probe_in_s + POLL_GRID_S
