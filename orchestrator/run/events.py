"""Facts that reader threads, the watcher, the control server and signal handlers post to the
supervisor's queue. Each names the service generation it is about, so a late event of an old
process never changes the new one's state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from orchestrator.base.records import compared_fields, same_type_equality

# Records are NamedTuples, not dataclasses: `import dataclasses` (inspect, ast, dis) and its
# exec()-built methods cost a few ms before the first spawn (issue 15).


@compared_fields(3)
class OutputRead(NamedTuple):
    name: str
    generation: int
    data: bytes
    # The reader's own budget of chunks in flight, given back once this one is handled: that of
    # its own process, which a late chunk of an old one must not take from the new one.
    slot: threading.Semaphore | None = None  # not compared, not shown

    def __repr__(self) -> str:
        return f"OutputRead(name={self.name!r}, generation={self.generation!r}, data={self.data!r})"


@same_type_equality
class OutputClosed(NamedTuple):
    name: str
    generation: int


@same_type_equality
class SignalReceived(NamedTuple):
    signum: int


@same_type_equality
class SignalArrived(NamedTuple):
    """A signal's C handler ran, maybe on another thread (signalwake.py): this only wakes the
    loop, whose thread then runs the Python handlers (they post SignalReceived)."""

    signum: int


@same_type_equality
class ChildrenChanged(NamedTuple):
    """SIGCHLD: some child may have exited; the supervisor reaps."""

    def __bool__(self) -> bool:  # a record, not an empty tuple
        return True


@compared_fields(2)
class FilesChanged(NamedTuple):
    name: str
    path: str  # relative to the service's cwd, for the message
    # time.monotonic() when the watcher read it: the quiet time counts from the change itself,
    # not from when the supervisor got round to it (it may be busy stopping the old process).
    # Not compared, nor the two after it: a change is its service and path.
    seen_at: float | None = None
    # `path` is where a file was moved to: a save by move into place (sed -i, atomic writers)
    moved_here: bool = False
    # time.monotonic() of the file's mtime, when known: when it was written, however late the
    # watcher's thread read the event (a burst of thousands of files on a busy machine)
    written_at: float | None = None


@same_type_equality
class WatcherSaid(NamedTuple):
    """A line of the watcher's (it runs on threads of its own; the supervisor prints it)."""

    text: str


@same_type_equality
class ControlRequested(NamedTuple):
    """A command from `devup status/restart/stop/start`; `reply` is called with the answer."""

    verb: str
    names: tuple[str, ...]
    options: dict[str, Any]
    reply: Callable[[dict[str, Any]], None] = lambda answer: None


@same_type_equality
class ManifestChanged(NamedTuple):
    """devports.toml or an env file it names was written; the supervisor waits for quiet, then
    reads them again (live.py)."""

    def __bool__(self) -> bool:  # a record, not an empty tuple
        return True


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
