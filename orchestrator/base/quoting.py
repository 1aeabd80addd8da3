"""Showing a name the user wrote (a service, an env name, a key, a CLI argument) in a message:
double-quoted, with every character a terminal would not show as itself escaped."""

from __future__ import annotations

import json


def quoted(text: str) -> str:
    """`text` in double quotes, JSON-style: control characters, bidi controls (U+202E would turn
    the rest of the line around), other format characters, line separators and odd spaces come
    out as \\uXXXX, so what the user sees is what the name holds."""
    shown = json.dumps(text, ensure_ascii=False)
    if shown.isprintable():
        return shown
    return "".join(c if c.isprintable() else _escape(c) for c in shown)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def printable(text: object) -> str:
    """`text` (a path, mostly) as it is when every character shows as itself, else with the ones
    that do not escaped as in quoted(), without quotes around it."""
    shown = str(text)
    if shown.isprintable():
        return shown
    return "".join(c if c.isprintable() else _escape(c) for c in shown)
