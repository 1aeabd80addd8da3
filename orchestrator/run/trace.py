"""The debug trace: with DEVUP_DEBUG=1 (`devup --debug`), each event the supervisor handles and
each state change, with the time since the run started, on stderr, so a bug report carries it:

    devup[debug] +0.123s event FilesChanged api src/app.py
    devup[debug] +0.125s api running -> stopping (gen 3)

A service's output is summarised, not traced chunk by chunk (a chatty one would flood the trace):
one line per service at most every OUTPUT_SUMMARY_S, and before any other line, so the trace
stays in order:

    devup[debug] +1.002s event OutputRead api gen 3: 412 chunks, 26104 bytes in 1.00s

A subscriber of the run's changes (changes.py), nothing more.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from typing import IO

from orchestrator.run.changes import (
    EventHandled,
    Notice,
    ServiceStateChanged,
    Subscriber,
    TurnEnded,
)
from orchestrator.run.events import (
    ControlRequested,
    Event,
    FilesChanged,
    OutputClosed,
    OutputRead,
    SignalReceived,
    WatcherSaid,
)

ENV = "DEVUP_DEBUG"
PREFIX = "devup[debug]"
OUTPUT_SUMMARY_S = 1.0  # a service's output is traced at most this often, summed up


class _Output:
    """A service's output read since its last trace line."""

    __slots__ = ("chunks", "since", "size")  # not a dataclass: no `import dataclasses` early

    def __init__(self, since: float) -> None:
        self.since = since
        self.chunks = 0
        self.size = 0


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(ENV, "") not in ("", "0")


class DebugTrace:
    def __init__(
        self, clock: Callable[[], float] = time.monotonic, stream: IO[str] | None = None
    ) -> None:
        self._clock = clock
        self._started_at = clock()
        self._stream = stream
        self._output: dict[tuple[str, int], _Output] = {}  # (service, generation) -> unsaid

    def __call__(self, notice: Notice) -> None:
        if isinstance(notice, EventHandled) and isinstance(notice.event, OutputRead):
            self._count(notice.event)
        elif isinstance(notice, EventHandled):
            self._say_output()
            self._write("event " + describe(notice.event))
        elif isinstance(notice, ServiceStateChanged):
            self._say_output()
            old, new = notice.old.value, notice.new.value
            self._write(f"{notice.name} {old} -> {new} (gen {notice.generation})")
        elif isinstance(notice, TurnEnded):
            self._say_output(self._clock() - OUTPUT_SUMMARY_S)

    def _count(self, event: OutputRead) -> None:
        key = (event.name, event.generation)
        output = self._output.get(key)
        if output is None:
            output = self._output[key] = _Output(self._clock())
        output.chunks += 1
        output.size += len(event.data)

    def _say_output(self, begun_by: float | None = None) -> None:
        """A line for each service's output not traced yet (only for output whose first unsaid
        chunk came no later than `begun_by`, when given)."""
        now = self._clock()
        for (name, generation), output in list(self._output.items()):
            if begun_by is not None and output.since > begun_by:
                continue
            del self._output[name, generation]
            chunks = "1 chunk" if output.chunks == 1 else f"{output.chunks} chunks"
            self._write(
                f"event OutputRead {name} gen {generation}: {chunks}, {output.size} bytes"
                f" in {now - output.since:.2f}s"
            )

    def _write(self, text: str) -> None:
        stream = self._stream or sys.stderr
        with contextlib.suppress(OSError, ValueError):  # a closed or full stderr: no trace
            stream.write(f"{PREFIX} +{self._clock() - self._started_at:.3f}s {text}\n")
            stream.flush()


def describe(event: Event) -> str:
    """An event in one line: its kind and what it is about."""
    kind = type(event).__name__
    if isinstance(event, OutputRead):
        return f"{kind} {event.name} gen {event.generation} ({len(event.data)} bytes)"
    if isinstance(event, OutputClosed):
        return f"{kind} {event.name} gen {event.generation}"
    if isinstance(event, FilesChanged):
        moved = " (moved here)" if event.moved_here else ""
        return f"{kind} {event.name} {event.path}{moved}"
    if isinstance(event, SignalReceived):
        return f"{kind} {signal.Signals(event.signum).name}"
    if isinstance(event, ControlRequested):
        return " ".join([kind, event.verb, *event.names])
    if isinstance(event, WatcherSaid):
        return f"{kind} {event.text!r}"
    return kind  # ChildrenChanged, ManifestChanged: nothing more to say


def install(subscribe: Callable[[Subscriber], object], forced: bool = False) -> DebugTrace | None:
    """Subscribes the trace when `forced` (`devup up --debug`) or DEVUP_DEBUG asks for it."""
    if not (forced or wanted()):
        return None
    trace = DebugTrace()
    subscribe(trace)
    return trace
