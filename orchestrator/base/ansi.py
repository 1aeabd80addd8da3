"""ANSI escape sequences in service output: found and removed on bytes, for output with colour
off (`NO_COLOR`, `--no-color`, a pipe). Log files keep the bytes as the service wrote them."""

from __future__ import annotations

import re

# ECMA-48: CSI (ESC [ params intermediates final: colours, cursor moves, erase), OSC (ESC ] ...
# BEL or ST: titles, hyperlinks; an unterminated one ends at the line's end, so it never eats the
# lines after it), and the short escapes (ESC 7, ESC =, a charset's ESC ( B).
_ESCAPE = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b\n]*(?:\x07|\x1b\\)?|[ -/]*[0-~])")


def strip_ansi(data: bytes) -> bytes:
    """`data` without escape sequences; the common case (none) costs one scan."""
    return _ESCAPE.sub(b"", data) if b"\x1b" in data else data
