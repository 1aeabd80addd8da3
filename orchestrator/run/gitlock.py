"""A git operation in progress (checkout, switch, rebase, merge, pull, reset) holds the repository's
`index.lock` while it rewrites the work tree: a file-change restart waits until it is gone, as
watchman (defer_vcs) and IDEs do, so the whole operation is one restart that reads the files as git
left them, however long git pauses midway: while the lock is empty (git writes the new index into
it once the work tree is done). A lock left behind by a killed git is waited for at most
HOLD_MAX_S, once."""

from __future__ import annotations

import enum
import os

LOCK = "index.lock"
HOLD_MAX_S = 10.0
RECHECK_S = 0.05


class GitHold(enum.Enum):
    NONE = "none"  # no git operation under way: restart
    WAIT = "wait"  # one is: check again in RECHECK_S
    STALE = "stale"  # its lock has been there HOLD_MAX_S: restart, and say so (once per lock)


def git_dir(start: str) -> str | None:
    """The git directory of the work tree `start` is in (a linked worktree's or a submodule's
    own, named by its `.git` file), or None outside any."""
    folder = os.path.abspath(start)
    while True:
        dot_git = os.path.join(folder, ".git")
        if os.path.isdir(dot_git):
            return dot_git
        if os.path.isfile(dot_git):
            try:
                with open(dot_git, encoding="utf-8") as file:
                    first = file.readline()
            except (OSError, UnicodeDecodeError):
                return None
            key, _, path = first.partition(":")
            return os.path.join(folder, path.strip()) if key == "gitdir" and path else None
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


class GitHolds:
    """Per service: whether a git operation holds its restart, and since when."""

    def __init__(self) -> None:
        self._dirs: dict[str, str | None] = {}  # service cwd -> its git directory
        self._since: dict[str, float] = {}  # lock path -> when a restart first waited for it
        self._stale: set[tuple[str, int, int]] = set()  # (path, inode, mtime) given up on

    def check(self, cwd: str, now: float) -> GitHold:
        if cwd not in self._dirs:
            self._dirs[cwd] = git_dir(cwd)
        found = self._dirs[cwd]
        if found is None:
            return GitHold.NONE
        lock = os.path.join(found, LOCK)
        try:
            stat = os.lstat(lock)
        except OSError:
            self._since.pop(lock, None)
            return GitHold.NONE
        if stat.st_size > 0:
            # git writes the new index into its lock once the work tree is as it leaves it
            # (a checkout's lock is empty while it rewrites files); `git commit -a` holds a
            # written lock for as long as its editor is open, and that must not hold a restart.
            self._since.pop(lock, None)
            return GitHold.NONE
        identity = (lock, stat.st_ino, stat.st_mtime_ns)
        if identity in self._stale:
            return GitHold.NONE
        if now - self._since.setdefault(lock, now) < HOLD_MAX_S:
            return GitHold.WAIT
        self._stale.add(identity)
        self._since.pop(lock, None)
        return GitHold.STALE
