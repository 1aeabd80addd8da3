"""Opening devup's own state folders and files without following what someone planted there: a
state folder must be a real folder of this user, a state file is opened with O_NOFOLLOW and
must be a regular file (the log files are created with O_EXCL too: logfiles.open_new).
"""

from __future__ import annotations

import errno
import fcntl
import os
import shlex
import stat
from pathlib import Path

from orchestrator.base.errors import DevupError
from orchestrator.base.smallfile import read_up_to

PRIVATE_DIR_MODE = 0o700


class UnsafePath(DevupError):
    """A state folder or file that is a symlink, or a folder of another user: devup would
    otherwise chmod, truncate or write whatever it points at."""


def symlink_refused(path: Path, where: str = "where it keeps state") -> UnsafePath:
    try:
        target = f" (to {os.readlink(path)})"
    except OSError:
        target = ""
    return UnsafePath(
        f"{path} is a symbolic link{target}; devup does not follow links {where}",
        hint=f"remove the link (rm {shlex.quote(str(path))}); "
        "devup creates what it needs there itself",
    )


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) as a 0700 folder, or check the one there: it must be a folder
    of this user, not a symlink (lstat, then an O_NOFOLLOW open); a looser mode is tightened."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    else:
        if stat.S_ISLNK(st.st_mode):
            raise symlink_refused(path)
        if not stat.S_ISDIR(st.st_mode):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(path):
            raise symlink_refused(path) from None  # planted between the lstat and the open
        raise
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            raise UnsafePath(
                f"{path} belongs to {_user(st.st_uid)}, not to you; "
                "devup keeps private state there",
                hint=f"remove it (or have its owner remove it); devup creates its own {path.name}",
            )
        # fchmod, not chmod: the checked folder itself, whatever the name points at by now.
        if stat.S_IMODE(st.st_mode) != PRIVATE_DIR_MODE:
            os.fchmod(fd, PRIVATE_DIR_MODE)
    finally:
        os.close(fd)
    return path


def open_file(path: Path, flags: int, mode: int = 0o600) -> int:
    """os.open(path, flags) without following a symlink at `path` (UnsafePath) and only for a
    regular file: anything else is OSError(EINVAL) (a FIFO would block, a device never ends)."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        # ELOOP: a symlink with O_NOFOLLOW; EEXIST: with O_EXCL (which never follows one either).
        if exc.errno in (errno.ELOOP, errno.EEXIST) and os.path.islink(path):
            raise symlink_refused(path) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        # O_NONBLOCK was only for the open (of a FIFO); regular files ignore it, but say so.
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_file(path: Path, limit: int) -> bytes:
    """At most limit + 1 bytes of the regular file `path`, not through a symlink (the caller says
    what "too large" means)."""
    fd = open_file(path, os.O_RDONLY)
    try:
        return read_up_to(fd, limit)
    finally:
        os.close(fd)


def _user(uid: int) -> str:
    import pwd

    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"
