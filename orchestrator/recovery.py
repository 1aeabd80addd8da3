"""After a devup was killed (SIGKILL, closed terminal, crash): stops what its run left behind.

The run record (.devup/run.json) names each service's process group and its leader's start time;
a group is stopped only while it still holds a process that started no earlier than that leader
(process.group_members), never by name. Runs before ports are allocated, under the run lock.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import process, runstate
from orchestrator.manifest import Manifest

POLL_S = 0.02
KILL_WAIT_S = 2.0  # after SIGKILL: how long to wait for the kernel to take them


@dataclass(frozen=True)
class Leftover:
    name: str
    group: process.GroupId
    processes: int


def find_leftovers(record: dict[str, Any]) -> list[Leftover]:
    """Recorded groups that still have members; a leader that died counts as long as one of
    its group (started after it) lives on."""
    found = []
    for name, group in runstate.recorded_groups(record):
        members = process.group_members(group)
        if members:
            found.append(Leftover(name, group, len(members)))
    return found


def stop_leftovers(
    root: Path,
    manifest: Manifest,
    say: Callable[[str], None],
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[Leftover]:
    """Stop the groups a killed run left (stop signal, SIGKILL after stop_timeout); say what."""
    record = runstate.read_state(root)
    if record is None:
        return []
    leftovers = find_leftovers(record)
    if not leftovers:
        runstate.clear_state(root)
        return []
    for item in leftovers:
        spec = manifest.services.get(item.name)
        stop_signal = spec.stop_signal if spec is not None else signal.SIGTERM
        process.signal_group(item.group, stop_signal)
    timeout_s = manifest.settings.stop_timeout_s
    alive = _wait_gone(leftovers, timeout_s, sleep, clock)
    if alive:
        names = ", ".join(item.name for item in alive)
        say(f"{names} (left by a killed devup) did not stop within {timeout_s:g}s, sending SIGKILL")
        for item in alive:
            process.signal_group(item.group, signal.SIGKILL)
        alive = _wait_gone(alive, KILL_WAIT_S, sleep, clock)
    total = sum(item.processes for item in leftovers)
    groups = ", ".join(f"{item.name} (pgid {item.group.pgid})" for item in leftovers)
    noun = "process" if total == 1 else "processes"
    say(f"stopped {total} {noun} left by a killed devup (pid {record.get('pid', '?')}): {groups}")
    for item in alive:
        say(f"{item.name}: process group {item.group.pgid} survived SIGKILL")
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
        alive = [item for item in alive if process.group_members(item.group)]
        if not alive or clock() >= deadline:
            return alive
        sleep(POLL_S)
