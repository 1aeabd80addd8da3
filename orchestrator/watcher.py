"""The file watcher of a run: one watchdog observer for every service's `watch` paths; posts
FilesChanged(service, path relative to its cwd) for each change that service does not ignore.

Its threads only filter and post; the supervisor debounces and restarts. Ignored folders
(node_modules and the like) get no inotify watch at all, and the inotify mask leaves out opened and
closed-without-write events (with them, walking a tree of thousands of folders floods the kernel
queue, and watchdog re-walks, overflows again and spins at 100% CPU).
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

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
from watchdog.observers.inotify import InotifyEmitter, InotifyWatchGroup
from watchdog.observers.inotify_c import InotifyFD
from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper
from watchdog.observers.polling import PollingObserverVFS

from orchestrator.events import Event, FilesChanged
from orchestrator.ignore import Ignorer, read_gitignores
from orchestrator.manifest import Manifest
from orchestrator.treewalk import walk_folders

# Everything that changes a file's content, name or mode; never opened / closed-without-write.
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
# A rename's two halves arrive together; watchdog holds a lone "moved from" 0.5 s for its pair,
# which would delay every event queued behind it (an editor's atomic save).
MOVE_PAIR_WAIT_S = 0.02
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
        inotify: BaseObserver | None = None
        try:
            inotify = _PrunedInotifyObserver(self._prune)
            inotify.start()
            self._observers.append(inotify)
        except OSError as exc:  # EMFILE: the user's inotify instances (max_user_instances) ran out
            inotify = None
            self._say(
                f"cannot use inotify ({exc.strerror or exc}): polling every"
                f" {POLL_INTERVAL_S:g}s instead; raise fs.inotify.max_user_instances to watch"
                " instantly"
            )
        polling: BaseObserver | None = None
        for path, recursive in [(d, True) for d in dirs] + [(p, False) for p in file_parents]:
            try:
                if inotify is None:
                    raise OSError(errno.ENOSPC, "no inotify instance")  # poll, as when full
                inotify.schedule(
                    self._handler, path, recursive=recursive, event_filter=WATCH_EVENTS
                )
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
        if self.polled and inotify is not None:
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
    """Runs on the observer's thread: match the event against each service, post, nothing else."""

    def __init__(self, services: list[WatchedService], post: Callable[[Event], None]) -> None:
        self.services = services
        self.post = post

    def dispatch(self, event: FileSystemEvent) -> None:
        if not isinstance(event, WATCH_CLASSES):
            return  # the polling fallback reports folder mtimes too
        # A move counts by either end: vim moves app.py to app.py~ (ignored) before writing app.py.
        seen_at = time.monotonic()
        paths = [os.fsdecode(event.src_path)]
        if event.dest_path:
            paths.append(os.fsdecode(event.dest_path))
        for service in self.services:
            for path in paths:
                if service.wants(path, event.is_directory):
                    rel = os.path.relpath(path, service.cwd)
                    self.post(FilesChanged(service.name, rel, seen_at))
                    break


class _FastMoveGrouper(InotifyMoveEventGrouper):
    delay = MOVE_PAIR_WAIT_S


def _never(_path: bytes) -> bool:
    return False


@dataclass
class _PrunedWatchGroup(InotifyWatchGroup):
    """watchdog's recursive inotify watch, minus the folders `prune` says nobody needs."""

    prune: Callable[[bytes], bool] = _never
    exhausted: bool = field(default=False, init=False)
    _move_event_grouper: InotifyMoveEventGrouper = field(
        default_factory=_FastMoveGrouper, init=False
    )

    def _add_all_callbacks(self, path: bytes) -> None:
        if path != self.path and self.prune(path):
            return
        self._add_callback(path)
        if not (self.is_recursive and os.path.isdir(path)):
            return
        for folder in walk_folders(path, self.prune, self.follow_symlink):
            if self.exhausted:
                return
            self._add_callback(folder)

    def _add_callback(self, path: bytes) -> None:
        try:
            super()._add_callback(path)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            self.exhausted = True

    def _recursive_simulate(self, src_path: bytes) -> list[Any]:
        return [] if self.prune(src_path) else list(super()._recursive_simulate(src_path))


class _PrunedEmitter(InotifyEmitter):
    def __init__(self, *args: Any, prune: Callable[[bytes], bool], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._prune = prune

    def on_thread_start(self) -> None:
        group = _PrunedWatchGroup(
            self._inotify_fd,
            os.fsencode(self.watch.path),
            event_mask=self.get_event_mask_from_filter(),
            is_recursive=self.watch.is_recursive,
            follow_symlink=self.watch.follow_symlink,
            prune=self._prune,
        )
        if group.exhausted:
            group.deactivate()
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        self._inotify = group


class _PrunedInotifyObserver(BaseObserver):
    """watchdog's InotifyObserver (one inotify instance for all watches) with pruned watches."""

    def __init__(self, prune: Callable[[str], bool]) -> None:
        self._inotify_fd = InotifyFD()
        self._inotify_fd.start()
        super().__init__(
            _PrunedEmitter,
            inotify_fd=self._inotify_fd,
            prune=lambda path: prune(os.fsdecode(path)),
        )

    def on_thread_stop(self) -> None:
        super().on_thread_stop()
        self._inotify_fd.stop()
        self._inotify_fd.join()


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
