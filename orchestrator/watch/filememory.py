"""Tells a change of a file's content or name from an event that changed nothing: a file opened
for writing and closed unwritten, a chmod to the mode it had, SQLite opening its database
read-write to read it. Each file an event names is remembered as (size, mtime, inode, mode).
"""

from __future__ import annotations

import os
from collections.abc import Callable

MEMORY_MAX = 100_000  # files remembered; past that the memory starts again (a verdict per rule 2)
# The kernel stamps mtimes from a coarse clock that may lag time.time_ns() by a tick.
CLOCK_SLACK_NS = 10_000_000

Signature = tuple[int, int, int, int]


class FileMemory:
    """Used from the observers' threads (inotify's, and the polling one's when some tree is
    polled): a race between the two costs at worst one verdict on one file."""

    def __init__(self, since_ns: int, stat: Callable[[str], os.stat_result] = os.stat) -> None:
        self._since_ns = since_ns - CLOCK_SLACK_NS  # when watching began
        self._stat = stat
        self._known: dict[str, Signature] = {}
        self.mtime_ns: int | None = None  # of the file last asked about, if it could be read
        # Its ctime: when its content or inode last changed, a time no copy can carry over from
        # elsewhere (`cp -p`, `tar`, `unzip` set an old mtime on what they write now).
        self.ctime_ns: int | None = None

    def changed(self, path: str, sure: bool, status_changed: bool = False) -> bool:
        """Remember `path` as it is now; whether that is a change. `sure`: the event proves one
        (a write, a creation). Otherwise the file is compared with what it was when last seen;
        a file never seen counts as changed only if its mtime is later than when watching began
        (a close of a file untouched since then changed nothing), or, for `status_changed` (a
        chmod), its ctime is: `chmod +x` changes no mtime, and the mode before is not known."""
        self.mtime_ns = self.ctime_ns = None
        try:
            st = self._stat(path)
        except OSError:
            self._known.pop(path, None)
            return True  # gone already: its deletion is the change
        self.mtime_ns, self.ctime_ns = st.st_mtime_ns, st.st_ctime_ns
        now = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode)
        before = self._known.get(path)
        if len(self._known) >= MEMORY_MAX:
            self._known.clear()
        self._known[path] = now
        if sure:
            return True
        if before is None:
            stamp = st.st_ctime_ns if status_changed else st.st_mtime_ns
            return stamp >= self._since_ns
        return now != before

    def forget(self, path: str) -> None:
        self.mtime_ns = self.ctime_ns = None
        self._known.pop(path, None)
