"""Where each key of a TOML document sits, so manifest errors can name a line.

Hand-written because tomllib returns values without positions. It only scans text that tomllib has
already accepted, so it skips values rather than parsing them and never reports syntax errors.
"""

from __future__ import annotations

import bisect
import contextlib
import re
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

KeyPath = tuple[str, ...]
Position = tuple[int, int]  # 1-based line and column

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR_END = re.compile(r"[,\]}#\r\n]")


class KeyPositions:
    """The position of each key path (`("services", "api", "port")`) where it first appears."""

    def __init__(self, positions: dict[KeyPath, Position]) -> None:
        self.positions = positions

    def line(self, path: KeyPath) -> int | None:
        """The line of `path`, else of its nearest recorded parent (its table), else None."""
        while path:
            if path in self.positions:
                return self.positions[path][0]
            path = path[:-1]
        return None


def key_positions(source: str) -> KeyPositions:
    """Scan valid TOML `source`; on anything unexpected keep what was found so far."""
    scanner = _Scanner(source)
    with contextlib.suppress(_ScanError, IndexError):
        scanner.scan()
    return KeyPositions(scanner.found)


class _ScanError(Exception):
    pass


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.found: dict[KeyPath, Position] = {}
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def scan(self) -> None:
        table: KeyPath = ()
        while True:
            self.skip_blank(newlines=True)
            if self.i >= len(self.text):
                return
            start = self.i
            if self.text.startswith("[", self.i):
                array_of_tables = self.text.startswith("[[", self.i)
                self.i += 2 if array_of_tables else 1
                table = self.key()
                self.expect("]]" if array_of_tables else "]")
                self.record(table, start)
            else:
                path = table + self.key()
                self.expect("=")
                self.record(path, start)
                self.value(path)

    def record(self, path: KeyPath, index: int) -> None:
        line = bisect.bisect_right(self.line_starts, index)
        position = (line, index - self.line_starts[line - 1] + 1)
        # A table first named through a dotted key (`services.api.cmd = ...`) is located there.
        for end in range(1, len(path) + 1):
            self.found.setdefault(path[:end], position)

    def skip_blank(self, newlines: bool) -> None:
        text = self.text
        while self.i < len(text):
            char = text[self.i]
            if char in " \t" or (newlines and char in "\r\n"):
                self.i += 1
            elif char == "#":
                end = text.find("\n", self.i)
                self.i = len(text) if end < 0 else end
            else:
                return

    def expect(self, token: str) -> None:
        self.skip_blank(newlines=False)
        if not self.text.startswith(token, self.i):
            raise _ScanError(token)
        self.i += len(token)

    def key(self) -> KeyPath:
        parts: list[str] = []
        while True:
            self.skip_blank(newlines=False)
            char = self.text[self.i]
            if char in "\"'":
                start = self.i
                self.skip_string(char)
                # Let tomllib decode the escapes of a quoted key rather than re-implementing them.
                parts.append(str(tomllib.loads("k = " + self.text[start : self.i])["k"]))
            else:
                match = _BARE_KEY.match(self.text, self.i)
                if match is None:
                    raise _ScanError("key")
                parts.append(match.group())
                self.i = match.end()
            self.skip_blank(newlines=False)
            if not self.text.startswith(".", self.i):
                return tuple(parts)
            self.i += 1

    def skip_string(self, quote: str) -> None:
        text = self.text
        triple = quote * 3
        if text.startswith(triple, self.i):
            self.i += 3
            while not text.startswith(triple, self.i):
                self.i += 2 if quote == '"' and text[self.i] == "\\" else 1
                if self.i >= len(text):
                    raise _ScanError(triple)
            self.i += 3
            # Up to two quotes may end the content right before the closing delimiter.
            for _ in range(2):
                if text.startswith(quote, self.i):
                    self.i += 1
            return
        self.i += 1
        while text[self.i] != quote:
            self.i += 2 if quote == '"' and text[self.i] == "\\" else 1
        self.i += 1

    def value(self, path: KeyPath) -> None:
        self.skip_blank(newlines=False)
        char = self.text[self.i]
        if char in "\"'":
            self.skip_string(char)
        elif char == "{":
            self.i += 1
            self.items(path, closer="}")
        elif char == "[":
            self.i += 1
            self.items(path, closer="]")
        else:
            match = _SCALAR_END.search(self.text, self.i)
            self.i = len(self.text) if match is None else match.start()

    def items(self, path: KeyPath, closer: str) -> None:
        """The rest of an inline table (`key = value, ...}`) or an array (`value, ...]`)."""
        while True:
            self.skip_blank(newlines=True)
            if self.text.startswith(closer, self.i):
                self.i += 1
                return
            before = self.i
            if closer == "}":
                item_path = path + self.key()
                self.expect("=")
                self.record(item_path, before)
                self.value(item_path)
            else:
                self.value(path)
            self.skip_blank(newlines=True)
            if self.text.startswith(",", self.i):
                self.i += 1
            elif self.i == before:
                raise _ScanError(closer)
