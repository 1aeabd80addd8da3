"""Listing every folder of a tree for the watcher without listing the leaf folders, where a folder's
link count says it has no subfolder (ext2/3/4, xfs, tmpfs): GNU find's "leaf optimisation".
Elsewhere (btrfs, overlayfs, network and FUSE file systems) every folder is listed."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

from orchestrator.base.mounts import mount_types

# The file systems whose folder link counts are known to count subfolders (names as in mountinfo).
COUNTING_FILE_SYSTEMS = frozenset({"ext2", "ext3", "ext4", "xfs", "tmpfs"})


def walk_folders(
    top: bytes,
    wanted: Callable[[bytes, list[bytes]], Sequence[bool]],
    follow_symlinks: bool = False,
) -> Iterator[list[bytes]]:
    """Every folder below `top` that `wanted(folder, names of its subfolders)` keeps, in batches
    of siblings, each batch before any folder inside them.

    A folder is listed only after the caller has had it (and so watched it): a subfolder made
    after its link count was read shows up as a creation in the folder it was made in.
    """
    # (folder, whether its file system may count subfolders): below one that does not, no
    # folder is stat'ed for its count (a mount point there is simply listed).
    stack = [(top, not follow_symlinks)]
    while stack:
        folder, may_count = stack.pop()
        try:
            if may_count:
                info = os.lstat(folder)
                may_count = counts_subfolders(info.st_dev)
                if may_count and info.st_nlink == 2:
                    continue  # no subfolder: nothing to list
            with os.scandir(folder) as entries:
                names = [e.name for e in entries if e.is_dir(follow_symlinks=follow_symlinks)]
        except OSError:
            continue  # gone or unreadable since its parent was listed
        if not names:
            continue
        prefix = folder if folder.endswith(b"/") else folder + b"/"
        keep = wanted(folder, names)
        found = [prefix + name for name, kept in zip(names, keep, strict=True) if kept]
        if found:
            yield found
            stack.extend((path, may_count) for path in found)


# Devices (st_dev) seen so far -> whether their file system counts subfolders. Mounts seldom
# change during a run; a device not seen yet makes mountinfo be read again.
_counting: dict[int, bool] = {}


def counts_subfolders(device: int) -> bool:
    """Whether the file system on `device` counts subfolders in a folder's link count."""
    known = _counting.get(device)
    if known is None:
        kinds = mount_types()
        known = kinds.get(f"{os.major(device)}:{os.minor(device)}", "") in COUNTING_FILE_SYSTEMS
        _counting[device] = known
    return known
