"""After a devup was killed (SIGKILL, closed terminal, crash): stops what its run left behind.

Found two ways, never by name: the groups the run record (.devup/run.json) names, while still the
ones it started (process.group_members: leader's start time, or the run's environment marker once
the leader is gone; none from another boot or pid namespace), and every process of this user that
carries the run's marker (runmark.py): one spawned after the last record, a daemon that left its
group. Runs before ports are allocated, under the run lock.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from orchestrator.config.manifest import Manifest
from orchestrator.system import process, runmark, runstate

if TYPE_CHECKING:  # psutil is imported where it is used: not on the path to the first spawn
    import psutil

POLL_S = 0.02
KILL_WAIT_S = 2.0  # after SIGKILL: how long to wait for the kernel to take them


class Leftover(NamedTuple):
    """A recorded group still ours, or (group None) marked processes outside every such group."""

    name: str
    group: process.GroupId | None
    procs: tuple[psutil.Process, ...]

    @property
    def processes(self) -> int:
        return len(self.procs)

    def alive(self) -> bool:
        if self.group is not None:
            return bool(process.group_members(self.group))
        return any(_running(proc) for proc in self.procs)

    def signal(self, sig: int) -> None:
        import psutil

        if self.group is not None:
            process.signal_group(self.group, sig)
            return
        for proc in self.procs:
            # psutil checks the pid still names the same process (start time) before signalling.
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)

    def describe(self) -> str:
        if self.group is not None:
            return f"{self.name} (pgid {self.group.pgid})"
        pids = ", ".join(str(proc.pid) for proc in self.procs)
        return f"{self.name} (pid {pids})" if len(self.procs) == 1 else f"{self.name} (pids {pids})"


def find_leftovers(record: dict[str, Any]) -> list[Leftover]:
    """Recorded groups that are still the run's and have members, then the run's marked
    processes outside them."""
    found = []
    pgids = set()
    for name, group in runstate.recorded_groups(record):
        members = process.group_members(group)
        if members:
            found.append(Leftover(name, group, tuple(members)))
            pgids.add(group.pgid)
    run_id = runstate.recorded_run_id(record)
    if run_id is not None:
        for name, procs in runmark.marked_processes(run_id).items():
            strays = tuple(proc for proc in procs if _pgid(proc) not in pgids)
            if strays:
                found.append(Leftover(name, None, strays))
    return found


def stop_leftovers(
    root: Path,
    manifest: Manifest,
    say: Callable[[str], None],
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[Leftover]:
    """Stop what a killed run left (stop signal, SIGKILL after stop_timeout); say what."""
    record = runstate.read_state(root)
    if record is None:
        return []
    leftovers = find_leftovers(record)
    if not leftovers:
        runstate.clear_state(root)
        return []
    for item in leftovers:
        spec = manifest.services.get(item.name)
        item.signal(spec.stop_signal if spec is not None else signal.SIGTERM)
    timeout_s = manifest.settings.stop_timeout_s
    alive = _wait_gone(leftovers, timeout_s, sleep, clock)
    if alive:
        names = ", ".join(dict.fromkeys(item.name for item in alive))
        say(f"{names} (left by a killed devup) did not stop within {timeout_s:g}s, sending SIGKILL")
        for item in alive:
            item.signal(signal.SIGKILL)
        alive = _wait_gone(alive, KILL_WAIT_S, sleep, clock)
    total = sum(item.processes for item in leftovers)
    groups = ", ".join(item.describe() for item in leftovers)
    noun = "process" if total == 1 else "processes"
    say(f"stopped {total} {noun} left by a killed devup (pid {record.get('pid', '?')}): {groups}")
    for item in alive:
        say(f"{item.describe()} survived SIGKILL")
    runstate.clear_state(root)
    return leftovers


def _wait_gone(
    leftovers: list[Leftover],
    timeout_s: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> list[Leftover]:
    deadline = clock() + timeout_s
    alive = leftovers
    while True:
        alive = [item for item in alive if item.alive()]
        if not alive or clock() >= deadline:
            return alive
        sleep(POLL_S)


def _running(proc: psutil.Process) -> bool:
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _pgid(proc: psutil.Process) -> int | None:
    try:
        return os.getpgid(proc.pid)
    except OSError:
        return None
