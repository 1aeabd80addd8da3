"""Writes devup's combined output to its stdout from a thread of its own, with a bounded buffer.

A slow reader of devup's stdout (a paused terminal, `| less`) must never block the supervisor or
the children: past MAX_BUFFERED_BYTES, output is dropped and counted, and the count is reported.
"""

from __future__ import annotations

import errno
import os
import threading
from collections import deque

MAX_BUFFERED_BYTES = 16 * 1024 * 1024


class TerminalWriter:
    def __init__(self, fd: int, max_buffered_bytes: int = MAX_BUFFERED_BYTES) -> None:
        self._fd = fd
        self._max = max_buffered_bytes
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._dropped = 0
        self._closing = False
        self._broken = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="devup-stdout", daemon=True)
        self._thread.start()

    def write(self, data: bytes, *, urgent: bool = False) -> None:
        """Queue `data`; past the buffer's cap it is dropped and counted, unless `urgent` (devup's
        own report of the drops, a line a second at most, must reach a slow reader too)."""
        with self._cond:
            if self._broken:
                return
            if self._buffered + len(data) > self._max and not urgent:
                self._dropped += len(data)
                return
            self._chunks.append(data)
            self._buffered += len(data)
            self._cond.notify()

    def take_dropped(self) -> int:
        """Bytes dropped since the last call (the supervisor reports them)."""
        with self._cond:
            dropped, self._dropped = self._dropped, 0
            return dropped

    def unwritten(self) -> int:
        """Bytes accepted but not (fully) written yet: lost if devup exits now."""
        with self._cond:
            return 0 if self._broken else self._buffered

    def close(self, timeout_s: float = 2.0) -> None:
        """Write out what is buffered, waiting at most timeout_s for a slow reader."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._chunks and not self._closing:
                    self._cond.wait()
                if not self._chunks:
                    return
                data = b"".join(self._chunks)
                self._chunks.clear()
            try:
                view = memoryview(data)
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
            except OSError as exc:
                # EPIPE: our reader went away (`devup | head`); keep supervising, stop writing.
                if exc.errno not in (errno.EPIPE, errno.EBADF, errno.EIO):
                    raise
                with self._cond:
                    self._broken = True
                    self._chunks.clear()
                    self._buffered = 0
                return
            with self._cond:
                self._buffered -= len(data)
