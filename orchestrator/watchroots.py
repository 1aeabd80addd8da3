"""Which folders a service may watch: not `/` (the whole machine) and not a pseudo file system
(/proc, /sys, /dev, cgroups, ...), whose files change without file events and whose walk floods
the terminal with watchdog's warnings. Decided by the mount's file system type, not by the path."""

from __future__ import annotations

import os
from pathlib import Path

# Kernel file systems (names as in /proc/self/mountinfo): no files a developer edits live there.
PSEUDO_FILE_SYSTEMS = frozenset(
    {
        "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
        "devtmpfs", "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "proc", "pstore",
        "rpc_pipefs", "securityfs", "selinuxfs", "sysfs", "tracefs",
    }
)  # fmt: skip


def watch_problem(path: Path) -> str | None:
    """Why `path` (absolute, resolved) cannot be watched, or None. A path that does not exist
    (yet) is no problem here: the watcher waits for it."""
    if path == Path(path.anchor):
        return "is the root folder: that would watch the whole machine"
    try:
        device = os.stat(path).st_dev
    except OSError:
        return None
    from orchestrator.treewalk import _mount_types  # the one reader of mountinfo

    fstype = _mount_types().get(f"{os.major(device)}:{os.minor(device)}")
    if fstype in PSEUDO_FILE_SYSTEMS:
        return f"is on a {fstype} file system, which has no file events to watch"
    return None
