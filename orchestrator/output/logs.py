"""`devup logs`: the per-service log files of the current (or last) run under `.devup/logs/`, merged
in time order in the `HH:MM:SS name | text` format, optionally followed like `tail -F`.

Works from the files alone, so it needs no running devup.
"""

from __future__ import annotations

import heapq
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from orchestrator.base.errors import UsageError

TYPE_CHECKING = False  # not typing's: importing typing costs every CLI start ~6 ms
if TYPE_CHECKING:
    from typing import IO

    # A service's name and its (time, line) pairs -> the pairs to keep or write instead.
    Selector = Callable[[str, list[tuple[float, bytes]]], list[tuple[float, bytes]]]

DEVUP_LOG = "devup"
FOLLOW_POLL_S = 0.1
TAIL_BLOCK_BYTES = 64 * 1024
CLOCK_SLACK_S = 60.0  # a line may be stamped a little after its file's mtime (buffered writes)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """`90`, `90s`, `10m`, `2h`, `1d` in seconds."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise UsageError(f'--since: "{text}" is not a duration', hint="for example 30s, 10m, 2h")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def log_paths(folder: Path, names: Iterable[str]) -> list[Path]:
    """The named services' log files, or with no names every log file (devup's own first)."""
    names = list(names)
    if names:
        return [folder / f"{name}.log" for name in names]
    found = sorted(folder.glob("*.log"))
    return sorted(found, key=lambda p: p.stem != DEVUP_LOG)


def line_time(line: bytes, reference: float) -> float | None:
    """The epoch time of a line stamped HH:MM:SS: the latest such moment not after `reference`
    (the file's mtime), so a run that crosses midnight still sorts right."""
    if len(line) < 9 or line[2:3] != b":" or line[5:6] != b":" or line[8:9] != b" ":
        return None
    try:
        h, m, s = int(line[0:2]), int(line[3:5]), int(line[6:8])
    except ValueError:
        return None
    ref = time.localtime(reference)
    midnight = int(reference) - (ref.tm_hour * 3600 + ref.tm_min * 60 + ref.tm_sec)
    at = midnight + h * 3600 + m * 60 + s
    return at - 86400 if at > reference + CLOCK_SLACK_S else at


def _keyed(lines: list[bytes], reference: float) -> list[tuple[float, bytes]]:
    """Each line with its time; an unstamped line takes the time of the line before it."""
    keyed: list[tuple[float, bytes]] = []
    last = 0.0
    times: dict[bytes, float | None] = {}  # by stamp: a log has many lines a second
    for line in lines:
        stamp = line[:9]  # all line_time reads
        try:
            at = times[stamp]
        except KeyError:
            at = times[stamp] = line_time(stamp, reference)
        last = at if at is not None else last
        keyed.append((last, line))
    return keyed


def merge(streams: list[list[tuple[float, bytes]]]) -> Iterator[bytes]:
    """Merge by time; heapq.merge is stable, so each file's own order is kept on equal times."""
    for _at, line in heapq.merge(*streams, key=lambda item: item[0]):
        yield line


def read_tail(file: IO[bytes], end: int, count: int | None) -> tuple[list[bytes], int]:
    """The last `count` complete lines before `end` (all with None), and the offset after them."""
    start, step, data = end, TAIL_BLOCK_BYTES, b""
    while start > 0 and (count is None or data.count(b"\n") <= count):
        start = 0 if count is None else max(0, start - step)
        step *= 2
        file.seek(start)
        data = file.read(end - start)
    complete = data.rfind(b"\n") + 1
    consumed_to = end - (len(data) - complete)
    lines = data[:complete].splitlines()
    if count is not None:
        lines = lines[-count:] if count > 0 else []
    return lines, consumed_to


class _Followed:
    # A plain class, not a dataclass: importing dataclasses (inspect, ast, ...) costs `devup logs
    # -n` ~20 ms.
    def __init__(self, path: Path) -> None:
        self.path = path
        self.file: IO[bytes] | None = None
        self.inode: int | None = None
        self.offset = 0
        self.partial = b""

    def open_at(self, file: IO[bytes], offset: int) -> None:
        self.file = file
        self.inode = os.fstat(file.fileno()).st_ino
        self.offset = offset
        self.partial = b""

    def read_new(self) -> list[bytes]:
        """New complete lines, switching to the new file when the log was rotated or replaced."""
        lines = self._drain()
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return lines
        if self.file is None or st.st_ino != self.inode:
            lines += self._drain()  # the last lines written to the old file before the switch
            if self.file is not None:
                self.file.close()
            self.open_at(open(self.path, "rb"), 0)  # noqa: SIM115 (kept open while following)
            lines += self._drain()
        elif st.st_size < self.offset:  # truncated in place
            self.offset, self.partial = 0, b""
            lines += self._drain()
        return lines

    def _drain(self) -> list[bytes]:
        if self.file is None:
            return []
        self.file.seek(self.offset)
        data = self.file.read()
        if not data:
            return []
        self.offset += len(data)
        data = self.partial + data
        complete = data.rfind(b"\n") + 1
        self.partial = data[complete:]
        return data[:complete].splitlines()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def show(
    folder: Path,
    names: list[str],
    write: Callable[[bytes], None],
    *,
    count: int | None = None,
    since_s: float | None = None,
    follow: bool = False,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    keep: Selector | None = None,
    render: Selector | None = None,
) -> None:
    """Write the merged logs (the last `count` lines, or those of the last `since_s` seconds);
    with `follow`, keep writing new lines until interrupted. `keep` drops a service's lines
    before they are counted (--grep); `render` turns each kept line into what is written
    (--json); both are given the service's name and its (time, line) pairs."""
    paths = log_paths(folder, names)
    cutoff = clock() - since_s if since_s is not None else None
    followed: dict[Path, _Followed] = {}
    streams: list[list[tuple[float, bytes]]] = []
    for path in paths:
        entry = _Followed(path)
        followed[path] = entry
        try:
            file = open(path, "rb")  # noqa: SIM115 (kept open while following)
        except FileNotFoundError:
            continue
        st = os.fstat(file.fileno())
        wanted = count if cutoff is None and keep is None else None
        lines, consumed = read_tail(file, st.st_size, wanted)
        keyed = _older_part(path, None if wanted is None else wanted - len(lines))
        keyed += _keyed(lines, st.st_mtime)
        if keep is not None:
            keyed = keep(_service(path), keyed)
        if cutoff is not None:
            keyed = [item for item in keyed if item[0] >= cutoff]
        if count is not None and wanted is None:
            keyed = keyed[-count:] if count > 0 else []
        streams.append(render(_service(path), keyed) if render is not None else keyed)
        if follow:
            entry.open_at(file, consumed)
        else:
            file.close()
    merged = list(merge(streams))
    if count is not None:
        merged = merged[-count:] if count > 0 else []
    _write_lines(write, merged)
    if not follow:
        return
    try:
        while True:
            sleep(FOLLOW_POLL_S)
            if not names:  # a service's log that appeared since (a new run, a new service)
                for path in log_paths(folder, []):
                    followed.setdefault(path, _Followed(path))
            now = clock()
            batch = []
            for path, entry in followed.items():
                keyed = _keyed(entry.read_new(), now)
                keyed = keep(_service(path), keyed) if keep is not None and keyed else keyed
                batch.append(render(_service(path), keyed) if render is not None else keyed)
            _write_lines(write, list(merge(batch)))
    finally:
        for entry in followed.values():
            entry.close()


def _service(path: Path) -> str:
    return path.name[: -len(".log")]


def _older_part(path: Path, count: int | None) -> list[tuple[float, bytes]]:
    """The last `count` (None: all) lines of NAME.log.1, this run's part rotated away: a flood
    that has just rotated the log still shows its recent lines."""
    if count is not None and count <= 0:
        return []
    try:
        with open(path.with_name(path.name + ".1"), "rb") as file:
            st = os.fstat(file.fileno())
            lines, _ = read_tail(file, st.st_size, count)
    except OSError:
        return []
    return _keyed(lines, st.st_mtime)


def _write_lines(write: Callable[[bytes], None], lines: list[bytes]) -> None:
    if lines:
        write(b"\n".join(lines) + b"\n")
