"""What the fixture processes recorded (pid + start time), and which of them are still there."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
from proc import start_ticks

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "proc.py"
PROC = f"{shlex.quote(sys.executable)} {shlex.quote(str(FIXTURE))}"


def recorded(folder: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def same_process(entry: dict[str, object]) -> psutil.Process | None:
    """The recorded process if it is still the same one (pid AND start time), zombie or not."""
    pid = int(entry["pid"])  # type: ignore[call-overload]
    try:
        if start_ticks(pid) != entry["start_ticks"]:
            return None  # the pid was reused: not ours
        return psutil.Process(pid)
    except (OSError, ValueError, psutil.Error):
        return None


def still_there(folder: Path) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """(live, zombie) recorded processes."""
    live, zombies = [], []
    for entry in recorded(folder):
        proc = same_process(entry)
        if proc is None:
            continue
        try:
            zombie = proc.status() == psutil.STATUS_ZOMBIE
        except psutil.Error:
            continue
        (zombies if zombie else live).append(entry)
    return live, zombies


def roles(folder: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in recorded(folder):
        role = str(entry["role"])
        counts[role] = counts.get(role, 0) + 1
    return counts


CYCLE_SERVICES = f"""
[services.obedient]
cmd = "{PROC} server"

[services.slow]
cmd = "{PROC} slow-server 0.2"

[services.wrapper]
cmd = "{PROC} ignore-term; echo never"
port = false
ready_log = "ignoring SIGTERM"

[services.outlive]
cmd = "{PROC} outlive"
port = false
ready_log = "leader up"

[services.spawner]
cmd = "{PROC} spawner"

[services.daemon]
cmd = "{PROC} daemon"
port = false
ready_log = "daemon up"

[services.setsid]
cmd = "{PROC} daemon-setsid"
port = false
ready_log = "daemon up"
"""
