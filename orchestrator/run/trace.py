"""The debug trace: with DEVUP_DEBUG=1 (`devup --debug`), each event the supervisor handles and
each state change, with the time since the run started, on stderr, so a bug report carries it:

    devup[debug] +0.123s event FilesChanged api src/app.py
    devup[debug] +0.125s api running -> stopping (gen 3)

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

from orchestrator.run.changes import EventHandled, Notice, ServiceStateChanged, Subscriber
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


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(ENV, "") not in ("", "0")


class DebugTrace:
    def __init__(
        self, clock: Callable[[], float] = time.monotonic, stream: IO[str] | None = None
    ) -> None:
        self._clock = clock
        self._started_at = clock()
        self._stream = stream

    def __call__(self, notice: Notice) -> None:
        if isinstance(notice, EventHandled):
            self._write("event " + describe(notice.event))
        elif isinstance(notice, ServiceStateChanged):
            old, new = notice.old.value, notice.new.value
            self._write(f"{notice.name} {old} -> {new} (gen {notice.generation})")

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
