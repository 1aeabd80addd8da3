"""The kernel's table of mounts (/proc/self/mountinfo): each device's file system type, read by
the watcher's tree walk and by the check of which folders a service may watch."""

from __future__ import annotations

MOUNTINFO = "/proc/self/mountinfo"


def mount_types() -> dict[str, str]:
    """Each mounted device's file system type, from /proc/self/mountinfo (Linux only; elsewhere
    none is known, and every folder is listed)."""
    types: dict[str, str] = {}
    try:
        with open(MOUNTINFO, encoding="utf-8", errors="replace") as f:
            for line in f:
                fields, _, rest = line.partition(" - ")
                parts = fields.split()
                if len(parts) > 2 and rest:
                    types.setdefault(parts[2], rest.split()[0])
    except OSError:
        pass
    return types
