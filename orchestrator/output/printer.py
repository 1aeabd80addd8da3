"""Formats log lines as `HH:MM:SS name | text` and hands them to the log files and the terminal.

Owned by the supervisor's thread; formatting is batched per chunk, on bytes, so a fast child costs
a few C calls per chunk, not a call per line.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from orchestrator.base.ansi import strip_ansi
from orchestrator.output.catchup import colorizer

if TYPE_CHECKING:
    from orchestrator.output.logfiles import LogFile
    from orchestrator.output.writer import TerminalWriter

# Foreman's palette order; devup's own lines are left uncoloured so they stand out.
COLORS = ("36", "33", "32", "35", "34", "31", "96", "93", "92", "95", "94", "91")
RESET = "\x1b[0m"
DEVUP = "devup"


class Printer:
    def __init__(
        self,
        names: Iterable[str],
        write: Callable[[bytes], None],
        *,
        color: bool,
        clock: Callable[[], float] = time.time,
        write_urgent: Callable[[bytes], None] | None = None,
        terminal: TerminalWriter | None = None,
    ) -> None:
        """Lines go to `terminal` (which catches up from the log files when it falls behind),
        or without one to `write`."""
        self._write = write
        self._write_urgent = write_urgent or write  # for lines that must pass a full buffer
        self._clock = clock
        self._color = color
        names = list(names)
        self._width = max([len(DEVUP), *(len(n) for n in names)])
        self._colors = {name: COLORS[i % len(COLORS)] for i, name in enumerate(names)}
        self._logs: dict[str, LogFile] = {}
        self._stamp_second = -1
        self._stamp = ""
        self._terminal = terminal
        if terminal is not None:
            # What the terminal catches up on from the log files is coloured the same way, or,
            # with colour off, loses the services' own escapes as live lines do.
            terminal.recolor = colorizer(self._color_code, self._width) if color else _strip_block
            terminal.notice = self._notice

    def add_log(self, name: str, log: LogFile) -> None:
        self._logs[name] = log

    def has_log(self, name: str) -> bool:
        return name in self._logs

    def add_name(self, name: str) -> None:
        """A service added while running (devports.toml edited): its own colour; the name column
        keeps its width, so a longer name only shifts its own lines."""
        self._colors.setdefault(name, COLORS[len(self._colors) % len(COLORS)])

    def lines(self, name: str, lines: list[str], *, urgent: bool = False) -> None:
        """Print one service's (or devup's) lines, in order, as one write."""
        if lines:
            self.block(name, "\n".join(lines).encode("utf-8", "surrogateescape"), urgent=urgent)

    def block(self, name: str, block: bytes, *, urgent: bool = False) -> None:
        """Print whole UTF-8 lines joined by newlines (none at the end) as one write.

        Works on bytes: the prefix goes in with one replace, so a chunk of many lines costs a few
        C calls rather than a call per line. `urgent` lines pass a full terminal buffer.
        """
        stamp = self._timestamp()
        plain = f"{stamp} {name.ljust(self._width)} | ".encode()
        data = plain + block.replace(b"\n", b"\n" + plain) + b"\n"
        log = self._logs.get(name)
        landed = log.write(data) if log is not None else None
        code = self._colors.get(name) if self._color else None

        def render() -> bytes:
            if code is None:
                # Colour off: the services' own escapes go too (the log file keeps them).
                return data if self._color else strip_ansi(data)
            pretty = f"\x1b[{code}m{stamp} {name.ljust(self._width)} {RESET}| ".encode()
            return pretty + block.replace(b"\n", b"\n" + pretty) + b"\n"

        if self._terminal is not None:
            fd = log.fd if log is not None else -1
            self._terminal.feed(name, render, fd, landed, urgent=urgent)
        else:
            (self._write_urgent if urgent else self._write)(render())

    def say(self, text: str, *, urgent: bool = False) -> None:
        """One of devup's own lines."""
        self.lines(DEVUP, text.split("\n"), urgent=urgent)

    def flush_logs(self) -> None:
        """Retry what a failed log write left over (a no-op unless one failed)."""
        for log in self._logs.values():
            log.retry()

    def close_logs(self) -> None:
        for log in self._logs.values():
            log.close()
        self._logs.clear()

    def _color_code(self, name: str) -> bytes | None:
        code = self._colors.get(name) if self._color else None
        return None if code is None else f"\x1b[{code}m".encode()

    def _notice(self, text: str) -> bytes:
        """One of devup's own lines for the terminal only."""
        stamp = time.strftime("%H:%M:%S")  # the writer's thread: not the supervisor's cached stamp
        return f"{stamp} {DEVUP.ljust(self._width)} | {text}\n".encode()

    def _timestamp(self) -> str:
        now = self._clock()
        second = int(now)
        if second != self._stamp_second:
            self._stamp_second = second
            self._stamp = time.strftime("%H:%M:%S", time.localtime(now))
        return self._stamp


def _strip_block(_name: str, block: bytes) -> bytes:
    return strip_ansi(block)
