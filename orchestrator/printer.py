"""Formats log lines as `HH:MM:SS name | text` and hands them to the terminal writer and log files.

Owned by the supervisor's thread; formatting is batched per chunk, on bytes, so a fast child costs
a few C calls per chunk, not a call per line.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import IO

from orchestrator.ansi import strip_ansi

# Foreman's palette order; devup's own lines are left uncoloured so they stand out.
COLORS = ("36", "33", "32", "35", "34", "31", "96", "93", "92", "95", "94", "91")
RESET = "\x1b[0m"
DEVUP = "devup"
# Past this a log file is rotated (NAME.log -> NAME.log.1), so a chatty child cannot fill the disk.
LOG_CAP_BYTES = 10 * 1024 * 1024


class Printer:
    def __init__(
        self,
        names: Iterable[str],
        write: Callable[[bytes], None],
        *,
        color: bool,
        clock: Callable[[], float] = time.time,
        write_urgent: Callable[[bytes], None] | None = None,
    ) -> None:
        self._write = write
        self._write_urgent = write_urgent or write  # for lines that must pass a full buffer
        self._clock = clock
        self._color = color
        names = list(names)
        self._width = max([len(DEVUP), *(len(n) for n in names)])
        self._colors = {name: COLORS[i % len(COLORS)] for i, name in enumerate(names)}
        self._log_files: dict[str, IO[bytes]] = {}
        self._log_sizes: dict[str, int] = {}
        self._log_reopen: dict[str, Callable[[], IO[bytes]]] = {}
        self._stamp_second = -1
        self._stamp = ""

    def add_log_file(
        self, name: str, file: IO[bytes], reopen: Callable[[], IO[bytes]] | None = None
    ) -> None:
        """`reopen` rotates: it is called for a fresh file once this one passes LOG_CAP_BYTES."""
        self._log_files[name] = file
        self._log_sizes[name] = 0
        if reopen is not None:
            self._log_reopen[name] = reopen

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
        write = self._write_urgent if urgent else self._write
        stamp = self._timestamp()
        plain = f"{stamp} {name.ljust(self._width)} | ".encode()
        data = plain + block.replace(b"\n", b"\n" + plain) + b"\n"
        log = self._log_files.get(name)
        if log is not None:
            self._log_sizes[name] += log.write(data)
            if self._log_sizes[name] > LOG_CAP_BYTES and name in self._log_reopen:
                log.close()
                self._log_files[name] = self._log_reopen[name]()
                self._log_sizes[name] = 0
        code = self._colors.get(name) if self._color else None
        if code is None:
            # Colour off: the services' own escapes go too (the log file above keeps them).
            write(data if self._color else strip_ansi(data))
            return
        pretty = f"\x1b[{code}m{stamp} {name.ljust(self._width)} {RESET}| ".encode()
        write(pretty + block.replace(b"\n", b"\n" + pretty) + b"\n")

    def say(self, text: str, *, urgent: bool = False) -> None:
        """One of devup's own lines."""
        self.lines(DEVUP, text.split("\n"), urgent=urgent)

    def flush_logs(self) -> None:
        for file in self._log_files.values():
            file.flush()

    def close_logs(self) -> None:
        for file in self._log_files.values():
            file.close()
        self._log_files.clear()

    def _timestamp(self) -> str:
        now = self._clock()
        second = int(now)
        if second != self._stamp_second:
            self._stamp_second = second
            self._stamp = time.strftime("%H:%M:%S", time.localtime(now))
        return self._stamp
