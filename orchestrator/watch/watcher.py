"""The file watcher of a run: one watchdog observer for every service's `watch` paths; posts
FilesChanged(service, path relative to its cwd) for each change that service does not ignore.

Its threads only filter and post; the supervisor debounces and restarts. On Linux, ignored
folders (node_modules and the like) get no inotify watch at all (inotify_tree.py), and the mask
leaves out opened and closed-without-write events (with them, walking a tree of thousands of
folders floods the kernel queue, and watchdog re-walks, overflows again and spins at 100% CPU).
On macOS, watchdog's FSEvents observer watches each tree as one stream.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from watchdog.events import (
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserverVFS

try:
    from watchdog.events import FileAttribEvent
except ImportError:  # watchdog 6 (Python 3.10) reports a chmod or a touch as a modification
    FileAttribEvent = FileModifiedEvent  # type: ignore[misc,assignment]

from orchestrator.config.ignore import GITIGNORE, Ignorer, read_gitignores
from orchestrator.config.manifest import Manifest
from orchestrator.run.events import Event, FilesChanged, WatcherSaid
from orchestrator.watch.catchup import CatchUp
from orchestrator.watch.filememory import FileMemory

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
GONE_POLL_S = 0.25  # how often a deleted watched folder is looked for
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
        if path in self.files:
            return True  # named in `watch` (or selfreload's list): .env is gitignored, yet counts
        # (below a `files` entry: it was made as a folder after the start)
        if not any(_inside(path, d) for d in (*self.dirs, *self.files)):
            return False
        return not self.ignorer.ignored(path, is_dir)

    def needs_folder(self, folder: str) -> bool:
        """Whether changes at or below `folder` can matter to this service."""
        if folder in self._anchors:
            return True  # a watched path lies at or below it
        return any(
            _inside(folder, d) for d in (*self.dirs, *self.files)
        ) and not self.ignorer.ignored(folder, True)

    def needs_folders_in(self, folder: str, names: Sequence[str]) -> list[bool]:
        """needs_folder(folder/name) for each name: a walk asks about a folder's subfolders at
        once, and they share the folder's verdict and .gitignore layers."""
        sep = "" if folder.endswith(os.sep) else os.sep
        anchors = self._anchors
        if not any(_inside(folder, d) for d in (*self.dirs, *self.files)):
            return [folder + sep + name in anchors for name in names]  # only a watched path
        ignored = self.ignorer.ignored_folders_in(folder, names)
        return [
            not no or folder + sep + name in anchors
            for name, no in zip(names, ignored, strict=True)
        ]


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
    """Sets up its watches on a thread of its own, started by the supervisor before the services
    (the walk of a big tree then costs their start nothing), and looks after them on that thread
    until stopped: a watched folder that is deleted is watched again when it comes back (a git
    checkout of a branch without it, then back), and a tree where inotify watches run out is
    polled instead."""

    def __init__(
        self,
        services: Sequence[WatchedService],
        post: Callable[[Event], None],
        say: Callable[[str], None],
    ) -> None:
        self.services = list(services)
        self._post = post
        self._say = say
        self._handler = _Poster(self.services, post, self._on_root_deleted)
        self._observers: list[BaseObserver] = []
        self._native: BaseObserver | None = None
        self._polling: BaseObserver | None = None
        self._watches: dict[str, tuple[BaseObserver, ObservedWatch]] = {}
        self._recursive: dict[str, bool] = {}  # every root scheduled: whether recursively
        self._gone: set[str] = set()  # roots deleted, waited for
        self._told_polled: set[str] = set()  # services said to be polled
        self._told_gone: set[str] = set()
        self._requests: queue.SimpleQueue[tuple[str, str, str]] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.started = threading.Event()  # every root is watched (or polled)
        self.polled: list[str] = []  # roots that fell back to polling
        # When watching began, if its start is not waited for (watchlater.py): once the walk is
        # done, what changed since then in a folder before its watch is reported (catchup.py).
        self.catch_up_since_ns: int | None = None
        # The watched paths that were folders then (watchlater.py): one deleted before the walk
        # reached it is said to be, as one deleted later.
        self.folders_at_start: frozenset[str] = frozenset()

    def wait_started(self, timeout_s: float) -> bool:
        return self.started.wait(timeout_s)

    def start(self, wait: bool = False) -> None:
        """Begin watching on the watcher's thread; `wait`: return once every root is watched."""
        self._thread = threading.Thread(target=self._run, name="devup-watch", daemon=True)
        self._thread.start()
        if wait:
            self.started.wait()

    def busy(self) -> bool:
        """Whether changes are still on their way to the supervisor: in an observer's queue, or
        (inotify) unread by its threads. A restart's quiet is not over while they are."""
        for observer in list(self._observers):
            if observer.event_queue.unfinished_tasks:  # queued, or being handed over
                return True
            pending = getattr(observer, "events_pending", None)  # PrunedInotifyObserver's
            if pending is not None and pending():
                return True
        return False

    def stop(self) -> None:
        self._stopping.set()
        self._requests.put(("stop", "", ""))
        if self._thread is not None:
            self._thread.join(timeout=30)  # a walk under way ends at its next root
        for observer in self._observers:
            observer.stop()
        for observer in self._observers:
            observer.join(timeout=2)
        self._observers.clear()

    def _run(self) -> None:
        try:
            self._set_up()
        finally:
            self.started.set()
        while not self._stopping.is_set():
            try:
                kind, root, folder = self._requests.get(timeout=GONE_POLL_S if self._gone else None)
            except queue.Empty:
                kind = ""
            if kind == "gone":
                self._forget_root(root)
            elif kind == "exhausted":
                self._poll_instead(root, folder)
            self._rewatch_returned()

    def _set_up(self) -> None:
        dirs = _outermost([d for s in self.services for d in s.dirs])
        file_parents = sorted({os.path.dirname(f) for s in self.services for f in s.files})
        try:
            self._native = _native_observer(
                self._prune, self._wanted_in, self._on_exhausted, self._catch_up
            )
            self._native.start()
            self._observers.append(self._native)
        except OSError as exc:  # EMFILE: the user's inotify instances (max_user_instances) ran out
            self._native_unusable(exc)
        for path, recursive in [(d, True) for d in dirs] + [(p, False) for p in file_parents]:
            if self._stopping.is_set():
                return
            self._recursive[path] = recursive
            self._schedule(path)
        # A watched path that does not exist yet is watched as a file (through its folder); should
        # it be made as a folder (`mkdir src`), it is watched as one from then on: also when that
        # happened since the services were looked at (the services do not wait for this).
        made = {
            f for s in self.services for f in s.files if not os.path.lexists(f) or os.path.isdir(f)
        }
        # A watched folder there when watching began and gone now was deleted since: a change.
        deleted = {d for d in self.folders_at_start if not os.path.isdir(d)}
        for path in made | deleted:
            self._recursive[path] = True
            self._gone.add(path)
        for path in sorted(deleted):
            self._gone.discard(path)
            self._post_change(path)
            self._forget_root(path)
        self._say_polled(self.polled)

    def _native_unusable(self, exc: OSError) -> None:
        """No inotify instance to be had: every path is polled, which is said once."""
        self._native = None
        fix = "; raise fs.inotify.max_user_instances to watch instantly"
        self._say(
            f"cannot use {_NATIVE} ({exc.strerror or exc}): polling every"
            f" {POLL_INTERVAL_S:g}s instead{fix if _NATIVE == 'inotify' else ''}"
        )
        self._told_polled.update(s.name for s in self.services)

    def _schedule(self, path: str) -> None:
        """Watch `path` natively, else (no inotify instance, or no watches left) poll it."""
        recursive = self._recursive[path]
        if self._native is not None:
            try:
                watch = self._native.schedule(
                    self._handler, path, recursive=recursive, event_filter=WATCH_EVENTS
                )
            except OSError as exc:
                if exc.errno == errno.ENOENT and path in self.folders_at_start:
                    return  # deleted since watching began: _set_up says so
                if exc.errno == errno.EMFILE:  # watchdog 6 opens its inotify instance here
                    self._native_unusable(exc)
                elif exc.errno != errno.ENOSPC:
                    self._say(f"cannot watch {path}: {exc.strerror or exc}")
                    return
            else:
                self._watches[path] = (self._native, watch)
                return
        if self._polling is None:
            self._polling = PollingObserverVFS(
                os.stat, self._pruned_listdir, polling_interval=POLL_INTERVAL_S
            )
            self._polling.start()
            self._observers.append(self._polling)
        watch = self._polling.schedule(
            self._handler, path, recursive=recursive, event_filter=WATCH_EVENTS
        )
        self._watches[path] = (self._polling, watch)
        self.polled.append(path)

    def _say_polled(self, roots: Sequence[str]) -> None:
        names = [
            s.name
            for s in self.services
            if s.name not in self._told_polled and any(_covers(p, s) for p in roots)
        ]
        if not names or self._native is None:
            return
        self._told_polled.update(names)
        self._say(
            f"inotify watches ran out ({_max_user_watches()}): polling every"
            f" {POLL_INTERVAL_S:g}s for {', '.join(names)} instead; to watch them instantly,"
            f" raise the limit: {SYSCTL_FIX}"
        )

    def _unschedule(self, root: str) -> None:
        found = self._watches.pop(root, None)
        if found is not None:
            observer, watch = found
            with contextlib.suppress(KeyError, RuntimeError):
                observer.unschedule(watch)
        if root in self.polled:
            self.polled.remove(root)

    def _on_root_deleted(self, root: str) -> None:
        if root in self._recursive:  # on an observer's thread: hand it to the watcher's
            self._requests.put(("gone", root, ""))

    def _on_exhausted(self, root: str, folder: str) -> None:
        self._requests.put(("exhausted", root, folder))  # on an emitter's thread, likewise

    def _forget_root(self, root: str) -> None:
        """A watched folder was deleted; its watch ended with it. Wait for it to come back."""
        if root in self._gone:
            return
        self._unschedule(root)
        self._gone.add(root)
        if root not in self._told_gone:
            self._told_gone.add(root)
            covering = [s for s in self.services if _covers(root, s)]
            shown = os.path.relpath(root, covering[0].cwd) if covering else root
            names = ", ".join(s.name for s in covering)
            self._say(f"{shown} was deleted; watching it again for {names} once it is back")
        self._rewatch_returned()

    def _rewatch_returned(self) -> None:
        for root in sorted(self._gone):
            if not os.path.isdir(root):
                continue
            self._gone.discard(root)
            self._schedule(root)
            if root in self.polled:
                self._say_polled([root])
            self._post_change(root)  # what was made in it before its watch was set up

    def _poll_instead(self, root: str, folder: str) -> None:
        """A folder made below `root` could not be watched: poll the whole of `root`."""
        found = self._watches.get(root)
        if found is None or found[0] is not self._native:
            return  # polled already, or gone
        self._unschedule(root)
        native, self._native = self._native, None  # poll, as when no watch is left
        self._schedule(root)
        self._native = native
        self._say_polled([root])
        self._post_change(folder)

    def _post_change(self, path: str, ctime_ns: int | None = None) -> None:
        """Something changed in folder `path` before its watch (at `ctime_ns`, if known)."""
        seen_at = time.monotonic()
        written_at = None
        if ctime_ns is not None:
            written_at = seen_at - max(0, time.time_ns() - ctime_ns) / 1e9
        for service in self.services:
            if service.wants(path, True) or _covers(path, service):
                rel = os.path.relpath(path, service.cwd)
                self._post(FilesChanged(service.name, rel, seen_at, False, written_at))

    @cached_property
    def _catch_up(self) -> CatchUp:
        # only for the first walk: a root watched again later posts its own change
        since = lambda: None if self.started.is_set() else self.catch_up_since_ns  # noqa: E731
        return CatchUp(since, self._post_change, self._stopping.is_set)

    def _prune(self, folder: str) -> bool:
        return self._keeps_out(folder)

    def _wanted_in(self, folder: str, names: list[str]) -> list[bool]:
        """not _prune(folder/name) for each name, asked of each service once for them all."""
        wanted = [False] * len(names)
        for service in self.services:
            for i, needed in enumerate(service.needs_folders_in(folder, names)):
                wanted[i] = wanted[i] or needed
        return wanted

    def _keeps_out(self, folder: str) -> bool:
        return not any(s.needs_folder(folder) for s in self.services)

    def _pruned_listdir(self, path: str | None) -> Iterator[os.DirEntry[str]]:
        for entry in os.scandir(path):
            if not (entry.is_dir(follow_symlinks=False) and self._prune(entry.path)):
                yield entry


class _Poster(FileSystemEventHandler):
    """Runs on the observer's thread: match the event against each service, confirm that it
    changed something, post; nothing else."""

    def __init__(
        self,
        services: list[WatchedService],
        post: Callable[[Event], None],
        on_deleted: Callable[[str], None],
    ) -> None:
        self.services = services
        self.post = post
        self.folder_deleted = on_deleted  # told of every folder deleted; it knows the roots
        self.memory = FileMemory(time.time_ns())

    def dispatch(self, event: FileSystemEvent) -> None:
        if not isinstance(event, WATCH_CLASSES):
            return  # the polling fallback reports folder mtimes too
        seen_at = time.monotonic()
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(event.dest_path) if event.dest_path else ""
        if isinstance(event, DirDeletedEvent):
            self.folder_deleted(src)
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
        written_at = None
        if isinstance(event, (FileModifiedEvent, FileClosedEvent)) and self.memory.ctime_ns:
            # When it was written: its ctime (`cp -p` or `tar` give it an old mtime, not ctime).
            written_at = seen_at - max(0, time.time_ns() - self.memory.ctime_ns) / 1e9
        for service, path in wanted:
            rel = os.path.relpath(path, service.cwd)
            self.post(
                FilesChanged(
                    service.name,
                    rel,
                    seen_at,
                    path == dest,
                    written_at,
                )
            )

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
        return self.memory.changed(
            src, sure=not doubtful, status_changed=isinstance(event, FileAttribEvent)
        )


_NATIVE = "inotify" if sys.platform.startswith("linux") else "FSEvents"


def _native_observer(
    prune: Callable[[str], bool],
    wanted: Callable[[str, list[str]], Sequence[bool]],
    on_exhausted: Callable[[str, str], None],
    catch_up: CatchUp,
) -> BaseObserver:
    """Linux: one inotify instance whose recursive watches skip the folders `prune` names.
    Elsewhere (macOS): watchdog's own observer (FSEvents), which watches a tree as one stream, so
    an ignored folder costs nothing and its events are dropped as they come (`_Poster`)."""
    if _NATIVE == "inotify":
        try:
            from orchestrator.watch.inotify_tree import PrunedInotifyObserver
        except ImportError:  # watchdog 6 (Python 3.10): its own recursive inotify watch, unpruned
            pass
        else:
            return PrunedInotifyObserver(prune, on_exhausted, wanted, catch_up)
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
    manifest: Manifest, names: Sequence[str], post: Callable[[Event], None]
) -> Watcher:
    """The run's watcher; its lines go through the supervisor's queue, as its events do."""
    return Watcher(watched_services(manifest, names), post, lambda text: post(WatcherSaid(text)))
