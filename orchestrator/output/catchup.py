"""What the terminal has not shown yet while it is behind: ranges of the log files, not bytes.

The log files hold every line, so a terminal that falls behind is later fed from them, in order,
with memory bounded by the number of ranges (about one per service and log file). The supervisor's
thread adds ranges, the terminal writer's thread reads them; the caller holds one lock for both.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable

READ_BYTES = 256 * 1024  # per service and round: more than a cut line (64 KiB) plus its prefix


class _Range:
    __slots__ = ("end", "key", "start")

    def __init__(self, key: tuple[str, int], start: int, end: int) -> None:
        self.key, self.start, self.end = key, start, end


class Backlog:
    def __init__(self) -> None:
        self._ranges: dict[str, deque[_Range]] = {}
        self._fds: dict[tuple[str, int], int] = {}  # our own dups: a rotation closes the log's fd
        self.pending_bytes = 0

    def add(self, name: str, fd: int, segment: int, start: int, end: int) -> None:
        """Bytes start..end of the log file `fd` (its `segment`-th file) are not shown yet."""
        key = (name, segment)
        if key not in self._fds:
            self._fds[key] = os.dup(fd)
        ranges = self._ranges.setdefault(name, deque())
        last = ranges[-1] if ranges else None
        if last is not None and last.key == key and last.end == start:
            last.end = end
        else:
            ranges.append(_Range(key, start, end))
        self.pending_bytes += end - start

    def empty(self) -> bool:
        return not self._ranges

    def plan(self) -> list[tuple[str, int, int, int]]:
        """The next read of each service: (name, fd, offset, length)."""
        plan = []
        for name, ranges in self._ranges.items():
            head = ranges[0]
            length = min(head.end - head.start, READ_BYTES)
            plan.append((name, self._fds[head.key], head.start, length))
        return plan

    def consumed(self, name: str, count: int) -> None:
        """`count` bytes of the service's first range were read (or are gone from the file)."""
        ranges = self._ranges[name]
        head = ranges[0]
        head.start += count
        self.pending_bytes -= count
        if head.start < head.end:
            return
        ranges.popleft()
        if not ranges:
            del self._ranges[name]
        if not any(r.key == head.key for r in ranges):
            os.close(self._fds.pop(head.key))

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._ranges.clear()
        self.pending_bytes = 0


def read_round(plan: list[tuple[str, int, int, int]]) -> list[tuple[str, bytes, int]]:
    """Read each planned range up to its last whole line: (name, lines, bytes consumed), the
    services' blocks ordered by their first line's HH:MM:SS stamp (stable, so in plan order on a
    tie). A range that the file no longer holds (truncated by hand) counts as consumed."""
    blocks: list[tuple[bytes, int, str, bytes, int]] = []
    for index, (name, fd, offset, length) in enumerate(plan):
        try:
            data = os.pread(fd, length, offset)
        except OSError:
            data = b""
        if len(data) < length:  # not in the file any more: skip it rather than stall
            blocks.append((b"", index, name, data[: data.rfind(b"\n") + 1], length))
            continue
        whole = data.rfind(b"\n") + 1
        if whole == 0:  # a line longer than a read: cannot happen with the 64 KiB cut
            whole = len(data)
        blocks.append((data[:8], index, name, data[:whole], whole))
    blocks.sort(key=lambda b: (b[0], b[1]))
    return [(name, lines, used) for _stamp, _i, name, lines, used in blocks]


def colorizer(color_of: Callable[[str], bytes | None], width: int) -> Callable[[str, bytes], bytes]:
    """Turn a block of plain log lines (`HH:MM:SS name | text`) into the terminal's coloured form
    with two C-level replaces, not a call per line."""
    reset = b"\x1b[0m"

    def recolor(name: str, block: bytes) -> bytes:
        code = color_of(name)
        if code is None or not block:
            return block
        middle = b" " + name.ljust(width).encode() + b" "
        body = block[:-1].replace(middle + b"| ", middle + reset + b"| ")
        return code + body.replace(b"\n", b"\n" + code) + b"\n"

    return recolor
