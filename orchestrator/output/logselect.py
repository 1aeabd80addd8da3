"""`devup logs --grep REGEX` and `--json`: a log line's parts (time, service, text without escapes),
the filter on its text, and one JSON object a line. The log files hold `HH:MM:SS name | text`, so
a line's time is to the second; its date comes from the file (logs.line_time).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from json.encoder import encode_basestring  # C-accelerated; json.dumps per line is ~3x slower

from orchestrator.base.ansi import strip_ansi
from orchestrator.base.errors import UsageError
from orchestrator.base.isotime import iso_local
from orchestrator.base.quoting import quoted

SEPARATOR = b" | "
STAMP_BYTES = 9  # "HH:MM:SS "
SHOWN_MAX = 80  # of a bad --grep pattern in its error line

Keyed = list[tuple[float, bytes]]


def compile_grep(pattern: str) -> re.Pattern[str]:
    """The --grep pattern (Python `re` syntax), or a usage error naming what is wrong with it."""
    try:
        return re.compile(pattern)
    except (re.error, RecursionError, OverflowError, ValueError) as exc:  # also 10,000 "(" deep
        shown = quoted(pattern[:SHOWN_MAX]) + ("..." if len(pattern) > SHOWN_MAX else "")
        raise UsageError(f"--grep {shown}: invalid regular expression: {exc}") from None


def text_of(name: bytes, line: bytes) -> str:
    """What the service `name` wrote on this line: after `HH:MM:SS name | `, escapes removed,
    decoded (invalid UTF-8 as U+FFFD). A line without devup's prefix is all text."""
    if line.startswith(name, STAMP_BYTES) and line[2:3] == line[5:6] == b":":
        at = line.find(SEPARATOR, STAMP_BYTES + len(name))
        if at >= 0:
            line = line[at + len(SEPARATOR) :]
    return strip_ansi(line).decode("utf-8", "replace")


def grep_filter(pattern: re.Pattern[str]) -> Callable[[str, Keyed], Keyed]:
    """Keep the lines whose text matches `pattern` anywhere (re.search)."""
    search = pattern.search

    def keep(name: str, keyed: Keyed) -> Keyed:
        own = name.encode()
        return [item for item in keyed if search(text_of(own, item[1]))]

    return keep


def to_json(name: str, keyed: Keyed) -> Keyed:
    """Each line as one JSON object: {"time", "service", "stream", "text"}, keeping its time.

    `stream` is null: a service's stdout and stderr share one pipe (system/process.py), so which
    of the two a line came from is not known."""
    head = '{"time":'
    service = f',"service":{encode_basestring(name)},"stream":null,"text":'
    stamps = _IsoStamps()
    own = name.encode()
    out: Keyed = []
    for at, line in keyed:
        text = encode_basestring(text_of(own, line))
        out.append((at, f"{head}{stamps.of(at)}{service}{text}}}".encode()))
    return out


class _IsoStamps:
    """ISO 8601 local times with their offset, `"2026-11-29T13:05:09+01:00"`, made once per
    second (a log has many lines a second); `null` for a line whose time is not known."""

    def __init__(self) -> None:
        self._second: float = -1.0
        self._text = "null"

    def of(self, at: float) -> str:
        if at != self._second:
            self._second = at
            self._text = f'"{iso_local(at)}"' if at > 0 else "null"
        return self._text
