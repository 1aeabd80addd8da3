"""`devup who PORT`: the processes listening on a port, and whether each belongs to this project's
devup run, another project's, a killed run's leftovers, or nothing of ours.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.base.errors import DevupError, UsageError
from orchestrator.base.gitbranch import branch_of
from orchestrator.base.paths import project_key
from orchestrator.ports.holders import Holder, find_holders
from orchestrator.ports.registry import Registry
from orchestrator.system import runstate

START_SLACK_S = 0.01  # create_time is rounded differently on some platforms


@dataclass(frozen=True)
class Run:
    """A project's run record as far as `who` cares."""

    root: str
    devup_pid: int | None
    alive: bool  # the devup that wrote it still runs
    groups: dict[str, tuple[int, float]]  # service -> (pgid, leader start time)


def who(port: int, project_root: Path | None) -> dict[str, Any]:
    """The listeners on `port`, one entry per process, with their owner (the --json shape)."""
    if not 1 <= port <= 65535:
        raise UsageError(f"port must be 1-65535, got {port}")
    holders = find_holders(port)
    runs = _known_runs(project_root)
    here = project_key(project_root) if project_root is not None else None
    listeners: list[dict[str, Any]] = []
    by_pid: dict[int | None, dict[str, Any]] = {}
    for holder in holders:
        entry = by_pid.get(holder.pid) if holder.pid is not None else None
        if entry is not None:
            entry["addresses"].append(holder.address)
            continue
        entry = _entry(holder, runs, here)
        by_pid[holder.pid] = entry
        listeners.append(entry)
    return {"port": port, "listeners": listeners}


def format_who(report: dict[str, Any]) -> str:
    rows: list[str] = []
    for entry in report["listeners"]:
        if entry["pid"] is None:
            rows.append(
                f"port {report['port']}: a process devup may not look at (another user's?)"
                f"\n  address  {', '.join(entry['addresses'])}"
            )
            continue
        rows.append(f"port {report['port']}: {entry['name']} (pid {entry['pid']})")
        rows.append(f"  address  {', '.join(entry['addresses'])}")
        rows.append(f"  user     {entry['user'] or 'unknown'}")
        # One line per field: a `python -c` script's newlines are shown as \n.
        command = entry["cmdline"].replace("\n", "\\n") or "(unknown)"
        rows.append(f"  command  {command}")
        rows.append(f"  folder   {entry['cwd'] or '(unknown)'}")
        rows.append(f"  devup    {_describe_owner(entry['owner'])}")
        owner = entry["owner"]
        if owner is not None:  # worktrees of one repository: the folder and branch tell them apart
            branch = f" (branch {owner['branch']})" if owner["branch"] else ""
            rows.append(f"  project  {owner['project']}{branch}")
    return "\n".join(rows)


def _describe_owner(owner: dict[str, Any] | None) -> str:
    if owner is None:
        return "not started by devup"
    service = owner["service"]
    if owner["kind"] == "this":
        return f"{service} of this project's run (devup pid {owner['devup_pid']})"
    if owner["kind"] == "other":
        return f"{service} of the devup run in {owner['project']} (devup pid {owner['devup_pid']})"
    where = "this project" if owner["kind"] == "leftover-this" else owner["project"]
    return f"{service}, left behind by a devup run in {where} that is gone"


def _entry(holder: Holder, runs: list[Run], here: str | None) -> dict[str, Any]:
    owner = _owner(holder.pid, runs, here) if holder.pid is not None else None
    return {
        "pid": holder.pid,
        "name": holder.name,
        "user": holder.user,
        "cmdline": holder.cmdline,
        "cwd": holder.cwd,
        "addresses": [holder.address],
        "owner": owner,
    }


def _owner(pid: int, runs: list[Run], here: str | None) -> dict[str, Any] | None:
    """The run whose service group holds `pid` or one of its ancestors (a service that started
    a daemon in a new session is still found through its parent chain while that lives)."""
    import psutil

    try:
        chain = [psutil.Process(pid), *psutil.Process(pid).parents()]
    except psutil.Error:
        return None
    for proc in chain:
        try:
            pgid = os.getpgid(proc.pid)
            started = proc.create_time()
        except (OSError, psutil.Error):
            continue
        for run in runs:
            for service, (group, leader_started) in run.groups.items():
                if pgid == group and started + START_SLACK_S >= leader_started:
                    ours = run.root == here
                    kind = ("this" if ours else "other") if run.alive else None
                    if kind is None:
                        kind = "leftover-this" if ours else "leftover-other"
                    return {
                        "kind": kind,
                        "project": run.root,
                        "branch": branch_of(run.root),
                        "service": service,
                        "devup_pid": run.devup_pid if run.alive else None,
                    }
    return None


def _known_runs(project_root: Path | None) -> list[Run]:
    """This project's run record and those of every project with leases in the registry."""
    roots: list[str] = []
    if project_root is not None:
        roots.append(project_key(project_root))
    with contextlib.suppress(DevupError):
        roots.extend(r for r in Registry().read() if r not in roots)
    runs = []
    for root in roots:
        run = _read_run(root)
        if run is not None:
            runs.append(run)
    return runs


def _read_run(root: str) -> Run | None:
    state = runstate.read_state(Path(root))
    if state is None or not isinstance(state.get("services"), dict):
        return None
    groups = {
        service: (group.pgid, group.leader_started_at)
        for service, group in runstate.recorded_groups(state)
    }
    pid = state.get("pid")
    pid = pid if isinstance(pid, int) else None
    return Run(root, pid, _devup_alive(pid, state.get("started_at")), groups)


def _devup_alive(pid: int | None, started_at: object) -> bool:
    """True if the devup that wrote a run record still runs: same pid and same start time, so
    a recycled pid does not count."""
    import psutil

    if pid is None or not isinstance(started_at, (int, float)):
        return False
    try:
        return abs(psutil.Process(pid).create_time() - float(started_at)) < START_SLACK_S
    except psutil.Error:
        return False
