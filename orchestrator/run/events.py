"""Facts that reader threads, the watcher, the control server and signal handlers post to the
supervisor's queue. Each names the service generation it is about, so a late event of an old
process never changes the new one's state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class OutputRead:
    name: str
    generation: int
    data: bytes
    # The reader's own budget of chunks in flight, given back once this one is handled: that of
    # its own process, which a late chunk of an old one must not take from the new one.
    slot: threading.Semaphore | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class OutputClosed:
    name: str
    generation: int


@dataclass(frozen=True)
class SignalReceived:
    signum: int


@dataclass(frozen=True)
class SignalArrived:
    """A signal's C handler ran, maybe on another thread (signalwake.py): this only wakes the
    loop, whose thread then runs the Python handlers (they post SignalReceived)."""

    signum: int


@dataclass(frozen=True)
class ChildrenChanged:
    """SIGCHLD: some child may have exited; the supervisor reaps."""


@dataclass(frozen=True)
class FilesChanged:
    name: str
    path: str  # relative to the service's cwd, for the message
    # time.monotonic() when the watcher read it: the quiet time counts from the change itself,
    # not from when the supervisor got round to it (it may be busy stopping the old process).
    seen_at: float | None = field(default=None, compare=False)
    # `path` is where a file was moved to: a save by move into place (sed -i, atomic writers)
    moved_here: bool = field(default=False, compare=False)
    # time.monotonic() of the file's mtime, when known: when it was written, however late the
    # watcher's thread read the event (a burst of thousands of files on a busy machine)
    written_at: float | None = field(default=None, compare=False)


@dataclass(frozen=True)
class WatcherSaid:
    """A line of the watcher's (it runs on threads of its own; the supervisor prints it)."""

    text: str


@dataclass(frozen=True)
class ControlRequested:
    """A command from `devup status/restart/stop/start`; `reply` is called with the answer."""

    verb: str
    names: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    reply: Callable[[dict[str, Any]], None] = field(default=lambda answer: None)


@dataclass(frozen=True)
class ManifestChanged:
    """devports.toml or an env file it names was written; the supervisor waits for quiet, then
    reads them again (live.py)."""


Event = (
    OutputRead
    | OutputClosed
    | SignalReceived
    | SignalArrived
    | ChildrenChanged
    | FilesChanged
    | ControlRequested
    | ManifestChanged
    | WatcherSaid
)
