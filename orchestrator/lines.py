"""Turns a child's raw output chunks into whole, decoded lines.

Per-child and pure: bytes in, str lines out. Keeps a partial line across chunks (so a multi-byte
character split over two writes is reassembled), cuts lines over 64 KiB, replaces invalid UTF-8.
"""

from __future__ import annotations

MAX_LINE_BYTES = 64 * 1024
CUT_MARKER = " [devup: line cut at 64 KiB]"


class LineSplitter:
    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._max = max_line_bytes
        self._partial = bytearray()
        # After a cut, the rest of that line up to its newline is dropped.
        self._discarding = False

    def feed(self, data: bytes) -> list[str]:
        """The complete lines that `data` finishes, in order."""
        last_nl = data.rfind(b"\n")
        if last_nl < 0:
            self._extend_partial(data)
            return []
        head, tail = data[: last_nl + 1], data[last_nl + 1 :]
        lines: list[str] = []
        if self._partial or self._discarding:
            first_nl = head.find(b"\n")
            self._extend_partial(head[:first_nl])
            lines.append(self._take_partial())
            head = head[first_nl + 1 :]
        if head:
            lines.extend(_decode_lines(head[:-1], self._max))
        self._extend_partial(tail)
        return lines

    def flush(self) -> list[str]:
        """The final line that had no newline, if any (call once the child's output has closed)."""
        if self._partial or self._discarding:
            return [self._take_partial()]
        return []

    def _extend_partial(self, data: bytes) -> None:
        if self._discarding or not data:
            return
        room = self._max - len(self._partial)
        if len(data) > room:
            self._partial += data[:room]
            self._discarding = True
        else:
            self._partial += data

    def _take_partial(self) -> str:
        text = _decode(bytes(self._partial))
        if self._discarding:
            text += CUT_MARKER
        self._partial.clear()
        self._discarding = False
        return text


def _decode(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    return text[:-1] if text.endswith("\r") else text


def _decode_lines(block: bytes, max_line_bytes: int) -> list[str]:
    """Split a block of whole lines (newlines between them, none at the end)."""
    # Fast path: decoding the whole block at once is much cheaper than line by line, and is
    # equivalent because "\n" never occurs inside a UTF-8 multi-byte sequence.
    text = block.decode("utf-8", "replace")
    lines = text.split("\n")
    if "\r" in text:
        lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if len(block) > max_line_bytes:
        lines = [_cut(line, max_line_bytes) for line in lines]
    return lines


def _cut(line: str, max_line_bytes: int) -> str:
    raw = line.encode("utf-8", "surrogateescape")
    if len(raw) <= max_line_bytes:
        return line
    # "ignore" drops a character the cut split in half rather than showing U+FFFD for it.
    return raw[:max_line_bytes].decode("utf-8", "ignore") + CUT_MARKER
