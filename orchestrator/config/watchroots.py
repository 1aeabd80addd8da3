"""Which folders a service may watch: not `/` (the whole machine) and not a pseudo file system
(/proc, /sys, /dev, cgroups, ...), whose files change without file events and whose walk floods
the terminal with watchdog's warnings. Decided by the mount's file system type, not by the path."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

from orchestrator.base.mounts import MOUNTINFO, mount_types

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
    fstype = _device_types().get(f"{os.major(device)}:{os.minor(device)}")
    if fstype in PSEUDO_FILE_SYSTEMS:
        return f"is on a {fstype} file system, which has no file events to watch"
    for mount_point, fstype in _pseudo_mounts():
        if path in mount_point.parents:  # /sys/fs/cgroup is a tmpfs holding cgroup mounts
            return f"holds a {fstype} file system ({mount_point}), which has no file events"
    return None


# Read once per process: a manifest with many watched services reads them once, and mounts
# below a project do not come and go during a run.
@functools.lru_cache(maxsize=1)
def _device_types() -> dict[str, str]:
    return mount_types()


@functools.lru_cache(maxsize=1)
def _pseudo_mounts() -> list[tuple[Path, str]]:
    """The mount points of pseudo file systems, from /proc/self/mountinfo (Linux only)."""
    mounts = []
    try:
        with open(MOUNTINFO, encoding="utf-8", errors="replace") as f:
            for line in f:
                fields, _, rest = line.partition(" - ")
                parts = fields.split()
                fstype = rest.split()[0] if rest.strip() else ""
                if len(parts) > 4 and fstype in PSEUDO_FILE_SYSTEMS:
                    # mountinfo writes space, tab, newline and backslash as octal escapes
                    where = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), parts[4])
                    mounts.append((Path(where), fstype))
    except OSError:
        pass
    return mounts
