"""The per-service log files under `.devup/logs/`: NAME.log, rotated to NAME.log.1 past a size cap.

They keep every line whatever the terminal does (the terminal catches up from them). A write that
fails (a full disk, EIO) never ends the run: the bytes are kept, up to a bound, and retried; the
failure and the recovery are each said once.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Past this a log file is rotated (NAME.log -> NAME.log.1, the older .1 is removed), so a chatty
# child cannot fill the disk. Large enough that a flood of a million lines stays whole in the two
# files: `devup logs` and a terminal catching up lose nothing recent. DEVUP_LOG_MAX_MB overrides.
LOG_MAX_MB = 128
LOG_MAX_ENV = "DEVUP_LOG_MAX_MB"
PENDING_MAX_BYTES = 8 * 1024 * 1024  # kept for a retry while the disk is full; past it, counted
RETRY_S = 1.0
PREVIOUS_SUFFIX = ".prev"  # the previous run's last file: NAME.log.prev


def log_cap_bytes(environ: dict[str, str] | None = None) -> int:
    """The rotation size from DEVUP_LOG_MAX_MB (a positive number of MiB), or the default."""
    text = (environ if environ is not None else os.environ).get(LOG_MAX_ENV, "")
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    return int((value if 0 < value < 1e7 else LOG_MAX_MB) * 1024 * 1024)


def open_new(path: Path) -> int:
    """A new 0600 log file, readable too (a terminal catching up preads it), never a symlink's
    target."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(path, flags, 0o600)


def start_fresh(folder: Path, name: str) -> Path:
    """Make room for this run's NAME.log: the previous run's becomes NAME.log.prev, its rotated
    part is removed (a NAME.log.1 is then always this run's older part)."""
    path = folder / f"{name}.log"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(folder / f"{name}.log.1")
    with contextlib.suppress(FileNotFoundError):
        os.replace(path, folder / f"{name}.log{PREVIOUS_SUFFIX}")
    return path


class LogFile:
    """One service's log. Only the supervisor's thread writes it."""

    def __init__(
        self,
        path: Path,
        *,
        cap_bytes: int | None = None,
        on_problem: Callable[[str], None] = lambda _text: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.fd = open_new(path)
        self.segment = 0  # counts rotations: (segment, offset) names a byte of this log for good
        self.size = 0  # bytes in the current file (devup is its only writer)
        self._cap = cap_bytes if cap_bytes is not None else log_cap_bytes()
        self._say = on_problem
        self._clock = clock
        self._pending = bytearray()  # written to nothing yet: the file refused it
        self._lost = 0
        self._failing = False
        self._retry_at = 0.0
        self._rotate_retry_at = 0.0
        self._rotate_said = False

    def write(self, data: bytes) -> tuple[int, int, int] | None:
        """Append `data`. Where it landed, (segment, start, end), or None if it is not (all) in
        the file yet: kept for a retry, or lost past the bound."""
        if self._pending or self._failing:
            self._keep(data)
            self.retry()
            return None
        if self.size >= self._cap and self._clock() >= self._rotate_retry_at:
            self._rotate()  # first: a range handed out stays in the file it names
        start = self.size
        written = self._write(data)
        if written < len(data):
            self._keep(data[written:])
            return None
        return self.segment, start, start + written

    def retry(self) -> None:
        """Write what a failure left over, at most once per RETRY_S while it keeps failing."""
        if not self._failing or self._clock() < self._retry_at:
            return
        if self._pending:
            written = self._write(bytes(self._pending))
            del self._pending[:written]
            if self._pending:
                return
        self._failing = False
        lost = f"; {self._lost} bytes of log were lost meanwhile" if self._lost else ""
        self._lost = 0
        self._say(f"writing {self.path.name} again{lost}")

    def close(self) -> None:
        if self._pending:
            self._failing, self._retry_at = True, 0.0
            self.retry()  # one last try
        os.close(self.fd)
        self.fd = -1

    def _write(self, data: bytes) -> int:
        view, done = memoryview(data), 0
        while done < len(data):
            try:
                written = os.write(self.fd, view[done:])
            except InterruptedError:
                continue
            except OSError as exc:
                self._failed(f"cannot write {self.path}: {exc.strerror or exc}")
                break
            done += written
        self.size += done
        return done

    def _keep(self, data: bytes) -> None:
        if len(self._pending) + len(data) > PENDING_MAX_BYTES:
            self._lost += len(data)  # whole blocks: what is kept stays whole lines
        else:
            self._pending += data

    def _failed(self, text: str) -> None:
        self._retry_at = self._clock() + RETRY_S
        if not self._failing:
            self._failing = True  # before saying it: the saying writes devup's own log
            self._say(f"{text}; the services keep running, devup retries every {RETRY_S:g}s")

    def _rotate(self) -> None:
        """NAME.log -> NAME.log.1 and a fresh NAME.log. On failure the current file grows on and
        the rotation is retried after RETRY_S (said once)."""
        try:
            with contextlib.suppress(FileNotFoundError):  # moved by an attempt whose open failed
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            fd = open_new(self.path)
        except OSError as exc:
            self._rotate_retry_at = self._clock() + RETRY_S
            if not self._rotate_said:
                self._rotate_said = True
                self._say(f"cannot rotate {self.path}: {exc.strerror or exc}; it grows on")
            return
        old, self.fd = self.fd, fd
        self.segment += 1
        self.size = 0
        self._rotate_said = False
        os.close(old)


def capped_stderr(path: Path) -> LogFile:
    """Make fd 2 and sys.stderr a fresh `path`, rotated as the log files are (to NAME.1 past the
    cap): a background devup's stderr (`up -d`), where `--debug` traces, cannot fill the disk."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    log = LogFile(path)
    os.dup2(log.fd, 2)
    sys.stderr = io.TextIOWrapper(
        io.BufferedWriter(_Stderr(log)),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )
    return log


class _Stderr(io.RawIOBase):
    """Writes through the LogFile (which rotates) and keeps fd 2 on its current file, so what is
    written to fd 2 directly (a child's inherited stderr, a C library) follows the rotation."""

    def __init__(self, log: LogFile) -> None:
        self._log = log

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return 2  # a write straight to it (up.py's last words at exit) lands in the same file

    def write(self, data: bytes) -> int:  # type: ignore[override]
        fd = self._log.fd
        self._log.write(bytes(data))
        if self._log.fd != fd:
            os.dup2(self._log.fd, 2)
        return len(data)
