"""Writes devup's combined output to its stdout from a thread of its own, with a bounded buffer.

A slow reader of devup's stdout (a paused terminal, `| less`) must never block the supervisor or
the children, and should still see every line: past MAX_BUFFERED_BYTES the terminal is "behind",
output is no longer buffered but remembered as ranges of the log files (catchup.py), and once the
terminal has taken the buffer it is fed from those files, in order, until it has caught up. Only
output that is in no log file (a log write failed) is dropped, counted and reported.
"""

from __future__ import annotations

import errno
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable

from orchestrator.output.catchup import Backlog, read_round

MAX_BUFFERED_BYTES = 16 * 1024 * 1024
BEHIND_NOTE_S = 1.0  # a terminal less behind than this catches up without a word

# (segment, start, end) of a block in a log file, as logfiles.LogFile.write returns it.
Landed = tuple[int, int, int]


class TerminalWriter:
    def __init__(
        self,
        fd: int,
        max_buffered_bytes: int = MAX_BUFFERED_BYTES,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fd = fd
        self._max = max_buffered_bytes
        self._clock = clock
        self._chunks: deque[bytes] = deque()
        self._notices = 0  # urgent chunks at the front of _chunks
        self._buffered = 0
        self._dropped = 0
        self._closing = False
        self._broken = False
        self._written = 0  # bytes written so far, read by close() without the lock
        self._backlog = Backlog()
        self._behind_since: float | None = None  # set while the terminal is fed from the logs
        self._behind_said = False
        # Set by the printer: the terminal form of log lines, and of one of devup's own lines.
        self.recolor: Callable[[str, bytes], bytes] = lambda _name, block: block
        self.notice: Callable[[str], bytes] = lambda text: f"devup | {text}\n".encode()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="devup-stdout", daemon=True)
        self._thread.start()

    def write(self, data: bytes, *, urgent: bool = False) -> None:
        """Queue `data`; past the buffer's cap it is dropped and counted, unless `urgent` (devup's
        own report of the drops, a line a second at most, must reach a slow reader too)."""
        self.feed("", lambda: data, -1, None, urgent=urgent)

    def feed(
        self,
        name: str,
        render: Callable[[], bytes],
        log_fd: int,
        landed: Landed | None,
        *,
        urgent: bool = False,
    ) -> None:
        """Show a block that the printer wrote to `name`'s log file (`landed` says where; None: it
        is in no file). `render` gives its terminal form, called only if it is to be buffered."""
        with self._cond:
            if self._broken:
                return
            if urgent:
                # A notice (of drops, of a failing log) goes ahead of the backlog it is about,
                # after the notices already there; its copy in a log file is not replayed.
                data = render()
                self._chunks.insert(self._notices, data)
                self._notices += 1
                self._buffered += len(data)
                self._cond.notify()
                return
            if self._behind_since is None:
                data = render()
                if self._buffered + len(data) <= self._max:
                    self._chunks.append(data)
                    self._buffered += len(data)
                    self._cond.notify()
                    return
                if landed is None:
                    self._dropped += len(data)
                    return
                self._behind_since, self._behind_said = self._clock(), False
            if landed is not None:
                self._backlog.add(name, log_fd, *landed)
                self._cond.notify()
            else:
                self._dropped += len(render())

    @property
    def behind(self) -> bool:
        """Whether the terminal is fed from the log files (a hint: read without the lock)."""
        return self._behind_since is not None

    def take_dropped(self) -> int:
        """Bytes dropped since the last call (the supervisor reports them)."""
        with self._cond:
            dropped, self._dropped = self._dropped, 0
            return dropped

    def unwritten(self) -> int:
        """Bytes accepted but not (fully) written yet: lost if devup exits now."""
        with self._cond:
            return 0 if self._broken else self._buffered + self._backlog.pending_bytes

    def close(self, timeout_s: float = 2.0) -> None:
        """Write out what is buffered or behind: as long as the reader takes some of it every
        timeout_s (a terminal catching up), and no longer once it takes nothing (a stuck one)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        while True:
            written = self._written
            self._thread.join(timeout_s)
            if not self._thread.is_alive() or self._written == written:
                return

    def _run(self) -> None:
        try:
            while self._turn():
                pass
        except OSError as exc:
            # EPIPE: our reader went away (`devup | head`); keep supervising, stop writing.
            if exc.errno not in (errno.EPIPE, errno.EBADF, errno.EIO):
                raise
            with self._cond:
                self._broken = True
                self._chunks.clear()
                self._buffered = 0
                self._backlog.close()

    def _turn(self) -> bool:
        """Write what is buffered, else one round of what is behind; False once closed and done."""
        plan: list[tuple[str, int, int, int]] | None = None
        with self._cond:
            while not self._chunks and self._backlog.empty() and not self._closing:
                if self._behind_since is not None:
                    self._behind_since = None  # caught up: live again
                self._cond.wait()
            data = b"".join(self._chunks)
            if self._chunks:
                self._chunks.clear()
                self._notices = 0
            else:
                if self._backlog.empty():
                    return False  # closing, and nothing left
                plan = self._backlog.plan()
                behind_s = self._clock() - (self._behind_since or 0.0)
                if not self._behind_said and behind_s >= BEHIND_NOTE_S:
                    self._behind_said = True
                    data = self.notice(
                        f"the terminal is {behind_s:.1f}s behind: catching up from the log files"
                    )
        if plan is None:
            self._write_all(data)
            with self._cond:
                self._buffered -= len(data)
            return True
        blocks = read_round(plan)
        out = [data] + [self.recolor(name, lines) for name, lines, _used in blocks]
        self._write_all(b"".join(out))
        with self._cond:
            for name, _lines, used in blocks:
                self._backlog.consumed(name, used)
        return True

    def _write_all(self, data: bytes) -> None:
        _write_all(self._fd, data)
        self._written += len(data)


def _write_all(fd: int, data: bytes) -> None:
    """Write all of `data`, also to a stdout inherited with O_NONBLOCK (Node task runners set it
    on the pipe they share): on EAGAIN, wait until it takes more instead of failing."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            poller = select.poll()
            poller.register(fd, select.POLLOUT)
            poller.poll()  # also returns on POLLERR/POLLHUP: the next write then says EPIPE
            continue
        view = view[written:]
