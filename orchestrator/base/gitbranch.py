"""The git branch a project folder is on, read from `.git` without running git: each worktree of a
repository is its own project, and `who`, `status` and `ports --all` name its branch.

A folder's `.git` (in it or a parent) is the repository's folder, or in a linked worktree (and a
submodule) a file `gitdir: PATH`; that folder's HEAD holds `ref: refs/heads/NAME`, or a commit id
when detached.
"""

from __future__ import annotations

import os
import stat

HEAD_MAX_BYTES = 4096  # a HEAD or a `gitdir:` file is one short line; more is not git's
SHORT_COMMIT = 7  # git's shortest abbreviation (core.abbrev's floor)
_HEADS = "refs/heads/"


def branch_of(folder: str | os.PathLike[str]) -> str | None:
    """The branch checked out in the worktree holding `folder`; the short commit on a detached
    HEAD; None outside git, or when HEAD cannot be read (reftable's placeholder included)."""
    git_dir = _git_dir(os.path.abspath(folder))
    if git_dir is None:
        return None
    head = _first_line(os.path.join(git_dir, "HEAD"))
    if head is None:
        return None
    if head.startswith("ref:"):
        ref = head[4:].strip()
        name = ref[len(_HEADS) :] if ref.startswith(_HEADS) else ref
        # The reftable backend keeps HEAD in its tables; the file names ".invalid".
        return None if not name or name == ".invalid" else name
    if len(head) in (40, 64) and all(c in "0123456789abcdef" for c in head):
        return head[:SHORT_COMMIT]
    return None


def _git_dir(folder: str) -> str | None:
    """The git folder of the worktree holding `folder`: the nearest `.git` upwards."""
    while True:
        dot_git = os.path.join(folder, ".git")
        if os.path.isdir(dot_git):
            return dot_git
        if os.path.isfile(dot_git):
            line = _first_line(dot_git)
            if line is None or not line.startswith("gitdir:"):
                return None
            # Relative to the folder holding the file (a submodule's `gitdir: ../.git/modules/x`).
            return os.path.join(folder, line[len("gitdir:") :].strip())
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _first_line(path: str) -> str | None:
    # Plain os calls on str paths: pathlib objects would cost more than the reads (`status`
    # runs this on every call). O_NONBLOCK: a FIFO named HEAD must not hang it.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, HEAD_MAX_BYTES)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data.decode("utf-8", "replace").split("\n", 1)[0].strip()
