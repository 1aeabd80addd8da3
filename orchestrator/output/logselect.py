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

SHOWN_MAX = 80  # of a bad --grep pattern in its error line

Keyed = list[tuple[float, bytes]]


def compile_grep(pattern: str) -> re.Pattern[str]:
    """The --grep pattern (Python `re` syntax), or a usage error naming what is wrong with it."""
    try:
        return re.compile(pattern)
    except (re.error, RecursionError, OverflowError, ValueError) as exc:  # also 10,000 "(" deep
        shown = quoted(pattern[:SHOWN_MAX]) + ("..." if len(pattern) > SHOWN_MAX else "")
        raise UsageError(f"--grep {shown}: invalid regular expression: {exc}") from None


def texts_of(name: str, lines: list[bytes]) -> list[str]:
    """What the service `name` wrote on each line: after `HH:MM:SS name | `, escapes removed,
    decoded (invalid UTF-8 as U+FFFD). A line without devup's prefix is all text."""
    if not lines:
        return []
    # One strip, one decode and one prefix removal for the whole list, in C: no escape sequence
    # and no invalid UTF-8 sequence spans a newline, and the lines hold none.
    block = strip_ansi(b"\n".join(lines)).decode("utf-8", "replace")
    prefix = re.compile(rf"^\d\d:\d\d:\d\d {re.escape(name)} +\| ", re.MULTILINE)
    return prefix.sub("", block).split("\n")


def grep_filter(pattern: re.Pattern[str]) -> Callable[[str, Keyed], Keyed]:
    """Keep the lines whose text matches `pattern` anywhere (re.search)."""
    search = pattern.search

    def keep(name: str, keyed: Keyed) -> Keyed:
        texts = texts_of(name, [line for _at, line in keyed])
        return [item for item, text in zip(keyed, texts, strict=True) if search(text)]

    return keep


def to_json(name: str, keyed: Keyed) -> Keyed:
    """Each line as one JSON object: {"time", "service", "stream", "text"}, keeping its time.

    `stream` is null: a service's stdout and stderr share one pipe (system/process.py), so which
    of the two a line came from is not known."""
    service = f',"service":{encode_basestring(name)},"stream":null,"text":'
    heads: dict[float, str] = {}  # by time: a log has many lines a second
    out: Keyed = []
    for (at, _line), text in zip(keyed, texts_of(name, [line for _at, line in keyed]), strict=True):
        head = heads.get(at)
        if head is None:
            stamp = f'"{iso_local(at)}"' if at > 0 else "null"
            head = heads[at] = f'{{"time":{stamp}{service}'
        out.append((at, (head + encode_basestring(text) + "}").encode()))
    return out
