"""What changed in a watched tree between the start of watching and its folders' watches.

On Linux the services no longer wait for the watcher (watchlater.py): importing watchdog and
walking a big tree take from ~55 ms to ~0.5 s, and a change made meanwhile in a folder not yet
watched would be lost. So once the walk is done, every watched folder is listed and each entry's
ctime read: what changed since watching began is reported as a change (the supervisor drops what
was written before a service's process started, by its `written_at`). A ctime cannot be set
from user space (`cp -p`, `tar` and `touch -d` set mtimes): it is when the kernel last changed
the inode. A folder with a fresh ctime and no fresh entry lost one (a deletion, a move away).
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

# Where the watcher catches up (inotify_tree.py, on watchdog 7, which needs Python 3.11), so the
# services need not wait for it. Elsewhere (macOS's FSEvents, watchdog 6) they wait as before.
CATCHES_UP = sys.platform.startswith("linux") and sys.version_info >= (3, 11)


class CatchUp(NamedTuple):  # not a dataclass: imported before the first spawn
    """Asked once the walk is done: `since_ns()`, when watching began (None: nothing to catch
    up); `folder_changed(folder, ctime_ns)`, a folder lost an entry before it was watched;
    `stopping()`, whether to give up."""

    since_ns: Callable[[], int | None]
    folder_changed: Callable[[str, int], None]
    stopping: Callable[[], bool]


def changed_since(
    folders: Iterable[bytes], since_ns: int, stopping: Callable[[], bool] = lambda: False
) -> Iterator[tuple[bytes, int, bool]]:
    """(path, ctime_ns, is_folder) of each file in `folders` changed at or after `since_ns`, and
    of each folder that lost an entry since then; subfolders are left to their own listing."""
    for folder in folders:
        if stopping():
            return  # devup is stopping: on a big tree this takes seconds
        fresh_entry = False
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue  # deleted since it was listed: inotify reports that
                    if info.st_ctime_ns < since_ns:
                        continue
                    fresh_entry = True  # a new subfolder explains the folder's ctime too
                    if not stat.S_ISDIR(info.st_mode):
                        yield entry.path, info.st_ctime_ns, False
            if not fresh_entry:
                info = os.lstat(folder)
                if info.st_ctime_ns >= since_ns:
                    yield folder, info.st_ctime_ns, True
        except OSError:
            continue  # gone since it was watched: inotify reports its deletion
