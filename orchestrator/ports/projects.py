"""`devup ports --all` and `--prune`: every project in the user-wide registry (each git worktree is
one) with its folder, branch, leases and whether a run is up; and dropping the leases of projects
whose folder is gone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from orchestrator.base.gitbranch import branch_of
from orchestrator.base.isotime import iso_local
from orchestrator.ports.registry import Leases, Registry
from orchestrator.system.runalive import run_is_up
from orchestrator.system.runstate import running_pid


def all_projects(registry: Registry | None = None) -> dict[str, Any]:
    """The --json shape of `devup ports --all`."""
    registry = registry or Registry()
    leases = registry.read()
    projects = []
    for root in sorted(leases):
        exists = os.path.isdir(root)
        pid = running_pid(Path(root)) if exists else None
        # A folder removed under a running devup: its lock is gone with it, its socket is not.
        running = pid is not None or (not exists and run_is_up(root))
        since = registry.missing.get(root)
        temporary = registry.temporary.get(root)
        projects.append(
            {
                "folder": root,
                "branch": branch_of(root) if exists else None,
                "exists": exists,
                "missing_since": iso_local(since) if since is not None and not exists else None,
                "running": running,
                "devup_pid": pid if pid is not None and pid > 0 else None,
                "leases": leases[root],
                "temporary": dict(temporary[1]) if temporary is not None else {},
            }
        )
    return {"projects": projects, "warnings": list(registry.warnings)}


def format_projects(doc: dict[str, Any]) -> str:
    if not doc["projects"]:
        return "no project has leases yet"
    rows = [("FOLDER", "BRANCH", "RUN", "LEASES")]
    for project in doc["projects"]:
        if project["running"]:
            run = f"up (pid {project['devup_pid']})" if project["devup_pid"] else "up"
        elif not project["exists"]:
            run = "folder gone"
        else:
            run = "-"
        leases = ", ".join(f"{name} {port}" for name, port in project["leases"].items())
        temporary = project["temporary"]
        if temporary:
            leases += " (this run: " + ", ".join(f"{n} {p}" for n, p in temporary.items()) + ")"
        rows.append((project["folder"], project["branch"] or "-", run, leases))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[3]]).rstrip()
        for row in rows
    ]
    if any(not p["exists"] and not p["running"] for p in doc["projects"]):
        lines.append(
            "hint: a gone folder's leases are dropped 30 days after devup first saw it gone; "
            "`devup ports --prune` drops them now"
        )
    return "\n".join([*doc["warnings"], *lines])


def prune() -> dict[str, Any]:
    """The --json shape of `devup ports --prune`: the leases dropped, per folder."""
    dropped: Leases = Registry().prune()
    return {"pruned": dropped}


def format_pruned(doc: dict[str, Any]) -> str:
    if not doc["pruned"]:
        return "nothing to prune: every project folder in the registry exists (or runs)"
    return "\n".join(
        f"dropped the leases of {root}: " + ", ".join(f"{n} {p}" for n, p in leases.items())
        for root, leases in doc["pruned"].items()
    )
