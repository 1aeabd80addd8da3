"""Listing every folder of a tree for the watcher, without reading the folders that have none.

Most folders of a source tree are leaves full of files; listing them is most of a walk's time.
On file systems where a folder's link count is 2 + its number of subfolders (ext2/3/4, xfs,
tmpfs), a folder with a count of 2 has no subfolder and is not listed at all: GNU find's "leaf
optimisation". Anywhere else (btrfs reports 1, network and FUSE file systems may not count),
every folder is listed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

# The file systems whose folder link counts are known to count subfolders (names as in mountinfo).
COUNTING_FILE_SYSTEMS = frozenset({"ext2", "ext3", "ext4", "xfs", "tmpfs"})
MOUNTINFO = "/proc/self/mountinfo"


def walk_folders(
    top: bytes, prune: Callable[[bytes], bool], follow_symlinks: bool = False
) -> Iterator[bytes]:
    """Every folder below `top` that `prune` keeps, each before any folder inside it.

    A folder is listed only after the caller has had it (and so watched it): a subfolder made
    after its link count was read shows up as a creation in the folder it was made in.
    """
    counting = _CountingDevices()
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            if not follow_symlinks and _is_leaf(folder, counting):
                continue
            with os.scandir(folder) as entries:
                found = [
                    entry.path
                    for entry in entries
                    if entry.is_dir(follow_symlinks=follow_symlinks) and not prune(entry.path)
                ]
        except OSError:
            continue  # gone or unreadable since its parent was listed
        for path in found:
            yield path
            stack.append(path)


def _is_leaf(folder: bytes, counting: _CountingDevices) -> bool:
    info = os.lstat(folder)
    return info.st_nlink == 2 and counting.counts(info.st_dev)


class _CountingDevices:
    """Which devices (by st_dev) hold a file system whose link counts count subfolders."""

    def __init__(self) -> None:
        self._known: dict[int, bool] = {}
        self._types: dict[str, str] | None = None  # "major:minor" -> file system type

    def counts(self, device: int) -> bool:
        known = self._known.get(device)
        if known is None:
            if self._types is None:
                self._types = _mount_types()
            kind = self._types.get(f"{os.major(device)}:{os.minor(device)}", "")
            known = self._known[device] = kind in COUNTING_FILE_SYSTEMS
        return known


def _mount_types() -> dict[str, str]:
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
