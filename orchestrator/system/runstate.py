"""The record of a devup run in its project folder: a lock held for the run's whole life (one devup
per project; the kernel drops it if devup is killed) and `.devup/run.json`, naming each service's
process group and start time so other commands and the next run can find what it started.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
from pathlib import Path
from typing import Any

from orchestrator.base.errors import DevupError
from orchestrator.base.paths import (
    ensure_private_dir,
    project_key,
    project_state_dir,
    write_private_atomic,
)
from orchestrator.base.safefs import open_file, read_file
from orchestrator.system import runmark
from orchestrator.system.process import GroupId, created_at

LOCK_NAME = "run.lock"
STATE_NAME = "run.json"
MAX_STATE_BYTES = 16 * 1024 * 1024


class RunLock:
    """Held by the running devup of a project; a second `devup up` there fails naming its pid."""

    def __init__(self, root: Path) -> None:
        self._dir = project_state_dir(root)
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            ensure_private_dir(self._dir)
            fd = open_file(self._dir / LOCK_NAME, os.O_RDWR | os.O_CREAT)
        except OSError as exc:  # .devup is a file, the folder is read-only, ...
            raise DevupError(
                f"cannot create {exc.filename or self._dir}: {exc.strerror or exc}",
                hint="devup keeps its run state and logs in .devup/ in the project folder",
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DevupError(
                f"devup is already running in this project (pid {holder})",
                hint="`devup status`, `devup logs -f` and `devup restart SERVICE` work with it",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


def running_pid(root: Path) -> int | None:
    """The pid of the devup running in this project, or None."""
    path = project_state_dir(root) / LOCK_NAME
    try:
        fd = open_file(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def write_state(root: Path, run_id: str, services: dict[str, dict[str, Any]]) -> None:
    """Record the run atomically: devup's pid and start time, the run id its children carry
    (runmark.py), the boot and pid namespace its pids mean something in, each service's group.
    A project folder deleted under the run (a removed git worktree) is not made again for it."""
    if not root.is_dir():
        return
    folder = ensure_private_dir(project_state_dir(root))
    doc = {
        "version": 2,
        "pid": os.getpid(),
        "started_at": _devup_started_at(),
        "run_id": run_id,
        "root": project_key(root),  # a record copied into another checkout is not that one's
        "boot_id": runmark.boot_id(),
        "pid_ns": runmark.pid_namespace(),
        "services": services,
    }
    # Atomic against a killed devup (what it guards against), without the two fsyncs a power
    # loss would need (after a reboot the record is not acted on anyway: another boot id).
    write_private_atomic(folder / STATE_NAME, json.dumps(doc).encode(), durable=False)


@functools.cache
def _devup_started_at() -> float:
    return created_at(os.getpid())  # as psutil reads it, without importing psutil


def read_state(root: Path) -> dict[str, Any] | None:
    """The last run's record, or None if there is none, it cannot be read, or it is another
    folder's: a .devup/ committed to git and checked out in a second worktree holds the first
    worktree's record, whose running services must not pass for this one's leftovers."""
    try:
        doc = json.loads(read_file(project_state_dir(root) / STATE_NAME, MAX_STATE_BYTES))
    except (OSError, ValueError, RecursionError):  # a folder, garbage, nested 100,000 deep
        return None
    if not isinstance(doc, dict) or doc.get("root", project_key(root)) != project_key(root):
        return None
    return doc


def clear_state(root: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (project_state_dir(root) / STATE_NAME).unlink()


def recorded_run_id(record: dict[str, Any]) -> str | None:
    run_id = record.get("run_id")
    return run_id if isinstance(run_id, str) and run_id else None


def same_boot(record: dict[str, Any]) -> bool:
    """Whether the record was written in this boot and this pid namespace: outside them its pids
    and pgids name unrelated processes (a record without them is from before devup kept them)."""
    return (
        record.get("boot_id") == runmark.boot_id()
        and record.get("pid_ns") == runmark.pid_namespace()
    )


def recorded_groups(record: dict[str, Any]) -> list[tuple[str, GroupId]]:
    """The (service, group) pairs a run record names; none from another boot or pid namespace;
    malformed entries are skipped."""
    services = record.get("services")
    if not isinstance(services, dict) or not same_boot(record):
        return []
    run_id = recorded_run_id(record)
    groups = []
    for name, entry in services.items():
        if not isinstance(entry, dict):
            continue
        pgid, started_at = entry.get("pgid"), entry.get("started_at")
        if isinstance(pgid, int) and pgid > 1 and isinstance(started_at, (int, float)):
            marker = runmark.marker(run_id, str(name)) if run_id else None
            groups.append((str(name), GroupId(pgid, float(started_at), marker)))
    return groups
