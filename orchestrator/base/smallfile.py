"""Reading the small files a manifest points at (env files, Procfiles): a regular file only, and
no more than a cap, so a FIFO, a device or a folder is an error instead of a hang or a flood."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


def read_capped(path: Path, limit: int) -> bytes:
    """At most limit + 1 bytes of the regular file `path` (the caller says what "too large" means).

    Raises FileNotFoundError as open() does, IsADirectoryError for a folder and OSError(EINVAL)
    for anything else that is not a regular file: a FIFO would block open() for ever, and
    /dev/zero never ends.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return read_up_to(fd, limit)
    finally:
        os.close(fd)


def read_up_to(fd: int, limit: int) -> bytes:
    """At most limit + 1 bytes from `fd`: one more than allowed tells the caller it is too large."""
    chunks: list[bytes] = []
    left = limit + 1
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def nul_line(text: str) -> int | None:
    """The line (from 1) of the first NUL character in `text`, or None. No command line or
    environment value can hold one: the OS reads C strings."""
    at = text.find("\0")
    return None if at < 0 else text.count("\n", 0, at) + 1
