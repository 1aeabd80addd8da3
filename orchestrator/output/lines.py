"""Turns a child's raw output chunks into whole, decoded lines.

Per-child and pure: bytes in, str lines out. Keeps a partial line across chunks (so a multi-byte
character split over two writes is reassembled), cuts lines over 64 KiB, replaces invalid UTF-8.
"""

from __future__ import annotations

from codecs import getincrementaldecoder

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
        block = self.feed_block(data)
        return [] if block is None else block.decode("utf-8", "replace").split("\n")

    def feed_block(self, data: bytes) -> bytes | None:
        """The complete lines that `data` finishes as one UTF-8 block joined by newlines (no
        newline at its end), or None when it finishes none.

        The fast path of the output: a block of ASCII lines goes through as bytes, never split
        into line objects, so a chunk of a thousand lines costs a few C calls.
        """
        last_nl = data.rfind(b"\n")
        if last_nl < 0:
            self._extend_partial(data)
            return None
        head: bytes | None = data[:last_nl]
        tail = data[last_nl + 1 :]
        parts: list[bytes] = []
        if self._partial or self._discarding:
            assert head is not None
            first_nl = head.find(b"\n")
            self._extend_partial(head if first_nl < 0 else head[:first_nl])
            parts.append(self._take_partial().encode("utf-8", "surrogateescape"))
            head = None if first_nl < 0 else head[first_nl + 1 :]
        if head is not None:
            parts.append(_clean_block(head, self._max))
        self._extend_partial(tail)
        return parts[0] if len(parts) == 1 else b"\n".join(parts)

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
        if self._discarding:
            # Like a cut inside one chunk: a character the cut split in half is dropped, not shown
            # as U+FFFD (a final=False decode holds back an incomplete last sequence).
            text = getincrementaldecoder("utf-8")("replace").decode(self._partial, final=False)
            text += CUT_MARKER
        else:
            text = _decode(bytes(self._partial))
        self._partial.clear()
        self._discarding = False
        return text


def _decode(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    return text[:-1] if text.endswith("\r") else text


def _clean_block(block: bytes, max_line_bytes: int) -> bytes:
    """Whole lines (newlines between them, none at the end) made valid UTF-8, trimmed, cut."""
    # isascii() is a word-at-a-time scan: an ASCII block without CR, shorter than the cap, is
    # already what the printer needs (no line in it can be over the cap).
    if len(block) <= max_line_bytes and block.isascii() and b"\r" not in block:
        return block
    return "\n".join(_decode_lines(block, max_line_bytes)).encode("utf-8", "surrogateescape")


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
