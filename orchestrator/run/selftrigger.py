"""Gathers each file-change restart (which file to name, what else changed) and spots a service
whose own writes keep restarting it, suspending watching it only on evidence (pure: the
supervisor passes in what it saw).

Evidence is either of:
- the changed file is open for writing by a process of the service's group (`holder_of`);
- the same file, and no other, changed within the first second of each of STARTS consecutive
  starts, and the first of those starts was not itself caused by a change of that file. A person
  saving app.py every 0.5 s also changes it soon after every start, but each of those starts was
  caused by their own previous save of it; a service that writes out.json at start began doing so
  after a start that out.json did not cause (devup's own start, a crash, `devup restart`, another
  file's change). Left: a person whose rapid saves begin within a second of such a start looks
  like such a service (without the writer's pid, which Linux tells only privileged watchers).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # psutil is imported where it is used: not on the path to the first spawn
    import psutil


STARTS = 5
SOON_AFTER_START_S = 1.0
LONE_OTHERS_MAX = 5  # more paths in one restart than this is a burst, never a self-trigger
WRITE_MODES = frozenset({"w", "a", "r+", "w+", "a+"})


# Plain classes, not dataclasses: `import dataclasses` costs ms before the first spawn.
class _Restart:
    """A file-change restart being gathered, until it is announced."""

    __slots__ = ("generation", "label", "paths", "pid", "soon")

    def __init__(
        self, generation: int, pid: int | None, label: str, soon: bool, paths: set[str]
    ) -> None:
        self.generation = generation  # of the process the first change came in
        self.pid = pid
        self.label = label  # the file to name: the first one, or where a later move put a file
        self.soon = soon  # the first change came within SOON_AFTER_START_S of its process's start
        self.paths = paths


class _Streak:
    __slots__ = ("generation", "path", "self_started", "starts")

    def __init__(self, path: str, starts: int, self_started: bool, generation: int) -> None:
        self.path = path
        self.starts = starts
        self.self_started = self_started  # its first start was not caused by a change of `path`
        self.generation = generation  # the last one in it


class SelfTriggerGuard:
    def __init__(self, starts: int = STARTS, soon_s: float = SOON_AFTER_START_S) -> None:
        self.starts = starts
        self.soon_s = soon_s
        self.suspended: set[str] = set()
        self._gathering: dict[str, _Restart] = {}
        self._last: dict[str, _Restart] = {}
        self._streaks: dict[str, _Streak] = {}

    def began(
        self,
        name: str,
        generation: int,
        pid: int | None,
        path: str,
        up_for_s: float | None,
    ) -> None:
        """A change of `path` restarts `name` (its process of `generation` up for `up_for_s`)."""
        soon = up_for_s is not None and up_for_s <= self.soon_s
        self._gathering[name] = _Restart(generation, pid, path, soon, {path})

    def folded(self, name: str, path: str, moved_here: bool) -> None:
        """Another change folded into the restart under way."""
        restart = self._gathering.get(name)
        if restart is None:
            return
        restart.paths.add(path)
        if moved_here and len(restart.paths) <= LONE_OTHERS_MAX:
            restart.label = path  # saved by a move into place: sed -i's sedXXXXXX -> app.py

    def announce(self, name: str, exists: Callable[[str], bool]) -> tuple[str, str] | None:
        """The restart's gathering is over: (file to name, suspension text or "") or None if
        there is nothing to announce. `exists(path)`: whether a path of the restart still is
        (a temporary file moved into place is not another file changed)."""
        restart = self._gathering.pop(name, None)
        if restart is None:
            return None
        previous = self._last.get(name)
        self._last[name] = restart
        others = restart.paths - {restart.label}
        alone = len(others) <= LONE_OTHERS_MAX and not any(exists(p) for p in others)
        if not (restart.soon and alone):
            self._streaks.pop(name, None)
            return restart.label, ""
        streak = self._streaks.get(name)
        if (
            streak is not None
            and streak.path == restart.label
            and streak.generation == restart.generation - 1
        ):
            streak.starts += 1
            streak.generation = restart.generation
        else:
            caused_by_it = (
                previous is not None
                and previous.generation == restart.generation - 1
                and previous.label == restart.label
            )
            streak = _Streak(restart.label, 1, not caused_by_it, restart.generation)
            self._streaks[name] = streak
        if streak.starts < self.starts or not streak.self_started or name in self.suspended:
            return restart.label, ""
        self.suspended.add(name)
        self._streaks.pop(name, None)
        who = f"{name} (pid {restart.pid})" if restart.pid is not None else name
        return restart.label, (
            f"{name}: {restart.label} changed within {self.soon_s:g}s of each of its last"
            f" {streak.starts} starts, and no other file did: {who} writes it itself."
            + _suspended(name, restart.label)
        )

    def suspend_for_holder(self, name: str, path: str, holder: tuple[int, str]) -> str:
        """`path` changed while a process of `name` holds it open for writing."""
        self.suspended.add(name)
        self._gathering.pop(name, None)
        pid, process_name = holder
        return (
            f"{name}: {path} changed, and {name} writes it itself"
            f" (pid {pid} {process_name} holds it open for writing)." + _suspended(name, path)
        )


def _suspended(name: str, path: str) -> str:
    return (
        f' Watching {name} is suspended: add "{path}" to its `ignore` in devports.toml;'
        f" `devup restart {name}` watches it again"
    )


def holder_of(path: str, processes: Iterable[psutil.Process]) -> tuple[int, str] | None:
    """The first of `processes` that holds `path` open for writing (Linux: psutil reads the
    open mode from /proc/PID/fdinfo; elsewhere no mode is known and None is returned)."""
    import psutil

    wanted = os.path.realpath(path)
    for proc in processes:
        try:
            for opened in proc.open_files():
                mode = getattr(opened, "mode", None)
                if mode in WRITE_MODES and os.path.realpath(opened.path) == wanted:
                    return proc.pid, proc.name()
        except (psutil.Error, OSError):
            continue
    return None
