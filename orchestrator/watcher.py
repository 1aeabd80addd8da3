"""The file watcher of a run: one watchdog observer for every service's `watch` paths; posts
FilesChanged(service, path relative to its cwd) for each change that service does not ignore.

Its threads only filter and post; the supervisor debounces and restarts. On Linux, ignored
folders (node_modules and the like) get no inotify watch at all (inotify_tree.py), and the mask
leaves out opened and closed-without-write events (with them, walking a tree of thousands of
folders floods the kernel queue, and watchdog re-walks, overflows again and spins at 100% CPU).
On macOS, watchdog's FSEvents observer watches each tree as one stream.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from watchdog.events import (
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserverVFS

from orchestrator.events import Event, FilesChanged
from orchestrator.filememory import FileMemory
from orchestrator.ignore import GITIGNORE, Ignorer, read_gitignores
from orchestrator.manifest import Manifest

# Everything that may change a file's content or name; never opened / closed-without-write.
# An attribute change and a close after an open for writing are confirmed against the file
# (filememory.py): a chmod to the same mode, or a close with no write, changes nothing.
# Folder creation is left out (its files get events of their own); a folder deleted or moved
# away may take files with it without a per-file event.
WATCH_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]
WATCH_CLASSES = tuple(WATCH_EVENTS)
POLL_INTERVAL_S = 1.0
SYSCTL_FIX = "sudo sysctl fs.inotify.max_user_watches=524288"


@dataclass(frozen=True)
class WatchedService:
    name: str
    cwd: str
    dirs: tuple[str, ...]  # watched recursively
    files: tuple[str, ...]  # watched by path: an editor replacing the file still counts
    ignorer: Ignorer

    @cached_property
    def _anchors(self) -> frozenset[str]:
        """Every watched path and each folder above it: one set lookup per folder of a walk."""
        anchors: set[str] = set()
        for path in (*self.dirs, *self.files):
            while path not in anchors:
                anchors.add(path)
                parent = os.path.dirname(path)
                if parent == path:
                    break
                path = parent
        return frozenset(anchors)

    def wants(self, path: str, is_dir: bool) -> bool:
        if path not in self.files and not any(_inside(path, d) for d in self.dirs):
            return False
        return not self.ignorer.ignored(path, is_dir)

    def needs_folder(self, folder: str) -> bool:
        """Whether changes at or below `folder` can matter to this service."""
        if folder in self._anchors:
            return True  # a watched path lies at or below it
        return any(_inside(folder, d) for d in self.dirs) and not self.ignorer.ignored(folder, True)


def watched_services(manifest: Manifest, names: Sequence[str]) -> list[WatchedService]:
    """Each named service with watching on; they share the work tree's .gitignore files."""
    specs = [manifest.services[n] for n in names if manifest.services[n].watch is not None]
    gitignores = read_gitignores(manifest.root)
    services = []
    for s in specs:
        paths = [str(p) for p in s.watch or ()]
        services.append(
            WatchedService(
                s.name,
                str(s.cwd),
                tuple(p for p in paths if os.path.isdir(p)),
                tuple(p for p in paths if not os.path.isdir(p)),
                Ignorer(str(s.cwd), s.ignore, gitignores),
            )
        )
    return services


class Watcher:
    """Started by the supervisor once the services are up; stopped at the end of the run."""

    def __init__(
        self,
        services: Sequence[WatchedService],
        post: Callable[[Event], None],
        say: Callable[[str], None],
    ) -> None:
        self.services = list(services)
        self._post = post
        self._say = say
        self._handler = _Poster(self.services, post)
        self._observers: list[BaseObserver] = []
        self.polled: list[str] = []  # roots that fell back to polling

    def start(self) -> None:
        dirs = _outermost([d for s in self.services for d in s.dirs])
        file_parents = sorted({os.path.dirname(f) for s in self.services for f in s.files})
        native: BaseObserver | None = None
        try:
            native = _native_observer(self._prune)
            native.start()
            self._observers.append(native)
        except OSError as exc:  # EMFILE: the user's inotify instances (max_user_instances) ran out
            native = None
            fix = "; raise fs.inotify.max_user_instances to watch instantly"
            self._say(
                f"cannot use {_NATIVE} ({exc.strerror or exc}): polling every"
                f" {POLL_INTERVAL_S:g}s instead{fix if _NATIVE == 'inotify' else ''}"
            )
        polling: BaseObserver | None = None
        for path, recursive in [(d, True) for d in dirs] + [(p, False) for p in file_parents]:
            try:
                if native is None:
                    raise OSError(errno.ENOSPC, "no inotify instance")  # poll, as when full
                native.schedule(self._handler, path, recursive=recursive, event_filter=WATCH_EVENTS)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    self._say(f"cannot watch {path}: {exc.strerror or exc}")
                    continue
                if polling is None:
                    polling = PollingObserverVFS(
                        os.stat, self._pruned_listdir, polling_interval=POLL_INTERVAL_S
                    )
                    polling.start()
                    self._observers.append(polling)
                polling.schedule(
                    self._handler, path, recursive=recursive, event_filter=WATCH_EVENTS
                )
                self.polled.append(path)
        if self.polled and native is not None:
            names = [s.name for s in self.services if any(_covers(p, s) for p in self.polled)]
            self._say(
                f"inotify watches ran out ({_max_user_watches()}): polling every"
                f" {POLL_INTERVAL_S:g}s for {', '.join(names)} instead; to watch them instantly,"
                f" raise the limit: {SYSCTL_FIX}"
            )

    def stop(self) -> None:
        for observer in self._observers:
            observer.stop()
        for observer in self._observers:
            observer.join(timeout=2)
        self._observers.clear()

    def _prune(self, folder: str) -> bool:
        return not any(s.needs_folder(folder) for s in self.services)

    def _pruned_listdir(self, path: str | None) -> Iterator[os.DirEntry[str]]:
        for entry in os.scandir(path):
            if not (entry.is_dir(follow_symlinks=False) and self._prune(entry.path)):
                yield entry


class _Poster(FileSystemEventHandler):
    """Runs on the observer's thread: match the event against each service, confirm that it
    changed something, post; nothing else."""

    def __init__(self, services: list[WatchedService], post: Callable[[Event], None]) -> None:
        self.services = services
        self.post = post
        self.memory = FileMemory(time.time_ns())

    def dispatch(self, event: FileSystemEvent) -> None:
        if not isinstance(event, WATCH_CLASSES):
            return  # the polling fallback reports folder mtimes too
        seen_at = time.monotonic()
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(event.dest_path) if event.dest_path else ""
        # A move counts by either end, its destination first (the file saved, for sed -i and
        # atomic writers); vim moves app.py to app.py~ (ignored) before writing app.py.
        paths = [dest, src] if dest else [src]
        if any(os.path.basename(path) == GITIGNORE for path in paths):
            for service in self.services:
                service.ignorer.forget()  # as git would, from now on by the file as it is now
        wanted: list[tuple[WatchedService, str]] = []
        for service in self.services:
            for path in paths:
                if service.wants(path, event.is_directory):
                    wanted.append((service, path))
                    break
        if not wanted or not self._changed_something(event, src, dest):
            return
        for service, path in wanted:
            rel = os.path.relpath(path, service.cwd)
            self.post(FilesChanged(service.name, rel, seen_at, moved_here=path == dest))

    def _changed_something(self, event: FileSystemEvent, src: str, dest: str) -> bool:
        """A write, creation, deletion or move did; an attribute change or a close-after-write
        did only if the file is not what it was (the kernel reports a close after an open for
        writing, and a chmod to the same mode, as much as a real write or `touch`)."""
        if event.is_directory:
            return True
        if isinstance(event, FileDeletedEvent):
            self.memory.forget(src)
            return True
        if isinstance(event, FileMovedEvent):
            self.memory.forget(src)
            self.memory.changed(dest, sure=True)
            return True
        doubtful = isinstance(event, (FileAttribEvent, FileClosedEvent))
        return self.memory.changed(src, sure=not doubtful)


_NATIVE = "inotify" if sys.platform.startswith("linux") else "FSEvents"


def _native_observer(prune: Callable[[str], bool]) -> BaseObserver:
    """Linux: one inotify instance whose recursive watches skip the folders `prune` names.
    Elsewhere (macOS): watchdog's own observer (FSEvents), which watches a tree as one stream, so
    an ignored folder costs nothing and its events are dropped as they come (`_Poster`)."""
    if _NATIVE == "inotify":
        from orchestrator.inotify_tree import PrunedInotifyObserver

        return PrunedInotifyObserver(prune)
    from watchdog.observers import Observer

    observer: BaseObserver = Observer()
    return observer


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _outermost(dirs: list[str]) -> list[str]:
    """The folders not inside another one of them: one recursive watch covers the rest."""
    unique = sorted(set(dirs))
    return [d for d in unique if not any(o != d and _inside(d, o) for o in unique)]


def _covers(root: str, service: WatchedService) -> bool:
    return any(_inside(p, root) or _inside(root, p) for p in (*service.dirs, *service.files))


def _max_user_watches() -> str:
    try:
        limit = Path("/proc/sys/fs/inotify/max_user_watches").read_text().strip()
    except OSError:
        return "max_user_watches"
    return f"max_user_watches={limit}"


def make_watcher(
    manifest: Manifest,
    names: Sequence[str],
    post: Callable[[Event], None],
    say: Callable[[str], None],
) -> Watcher:
    return Watcher(watched_services(manifest, names), post, say)
