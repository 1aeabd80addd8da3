"""Linux only: watchdog's recursive inotify watch, minus the folders nobody needs.

watchdog adds an inotify watch to every folder of a tree, node_modules and .git included, and with
its default mask queues "opened" events while it walks; on a big tree the kernel queue overflows
and it re-walks for ever. Here a `prune` callback keeps ignored folders out of the walk (and out of
the inotify watch limit), and the folders are found by treewalk.walk_folders. It subclasses
watchdog 7's InotifyWatchGroup/InotifyEmitter, whose internals it relies on (hence watchdog>=7).
"""

from __future__ import annotations

import array
import ctypes
import errno
import fcntl
import os
import termios
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from watchdog.events import FileModifiedEvent
from watchdog.observers import inotify_c
from watchdog.observers.api import BaseObserver
from watchdog.observers.inotify import InotifyEmitter, InotifyWatchGroup
from watchdog.observers.inotify_c import DEFAULT_EVENT_BUFFER_SIZE, InotifyFD, Watch
from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper
from watchdog.utils.delayed_queue import DelayedQueue

from orchestrator.watch.catchup import CatchUp, changed_since
from orchestrator.watch.treewalk import walk_folders

# A rename's two halves arrive together; watchdog holds a lone "moved from" 0.5 s for its pair,
# which would delay every event queued behind it (an editor's atomic save).
MOVE_PAIR_WAIT_S = 0.02


class _WakeableDelayedQueue(DelayedQueue[Any]):
    """watchdog's DelayedQueue, except that a reader holding a "moved from" wakes when its pair
    comes. watchdog's get() sleeps out the whole hold: when the reader takes the first half before
    the second is queued (they are queued one by one), every event waits MOVE_PAIR_WAIT_S."""

    def get(self) -> Any:
        with self._not_empty:
            while True:
                while not self._queue and not self._closed:
                    self._not_empty.wait()
                if self._closed:
                    return None
                head, queued_at, held = self._queue[0]
                left_s = queued_at + self.delay - time.monotonic() if held else 0.0
                if left_s <= 0:
                    self._queue.popleft()
                    return head
                self._not_empty.wait(left_s)  # put() notifies: the pair may have replaced it


class _FastMoveGrouper(InotifyMoveEventGrouper):
    delay = MOVE_PAIR_WAIT_S

    def __init__(self) -> None:
        super().__init__()
        self._queue = _WakeableDelayedQueue(self.delay)


def _never(_path: bytes) -> bool:
    return False


def _ignore(_root: bytes, _folder: bytes) -> None:
    pass


def _all(_folder: bytes, names: list[bytes]) -> Sequence[bool]:
    return [True] * len(names)


@dataclass
class _PrunedWatchGroup(InotifyWatchGroup):
    """watchdog's recursive inotify watch, minus the folders `prune` says nobody needs."""

    prune: Callable[[bytes], bool] = _never
    # prune's answer for every subfolder of a folder at once (True: watch it), for the walk
    wanted: Callable[[bytes, list[bytes]], Sequence[bool]] = _all
    # Called (on the emitter's thread) when a folder made after the start cannot be watched:
    # watchdog logs nothing and misses its changes for good.
    on_exhausted: Callable[[bytes, bytes], None] = _ignore
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
        for folders in walk_folders(path, self.wanted, self.follow_symlink):
            self._add_callbacks(folders)
            if self.exhausted:
                return

    def _add_callbacks(self, paths: list[bytes]) -> None:
        """_add_callback for each path in one tight loop, under the inotify instance's lock once:
        watchdog's add_callback, folder by folder, was a fifth of the walk of a big tree."""
        inotify = self._inotify_fd
        callback, id_, mask = self._callback, self._id, self.event_mask
        by_path, by_watch = self._active_callbacks_by_path, self._active_callbacks_by_watch
        add_watch = inotify_c.inotify_add_watch
        with inotify._lock:
            fd, watches = inotify._inotify_fd, inotify._watch_for_wd
            for path in paths:
                wd = add_watch(fd, path, mask)
                if wd == -1:
                    if ctypes.get_errno() != errno.ENOSPC:
                        continue  # a folder gone or unreadable since it was listed
                    self.exhausted = True
                    if self.is_active:
                        self.on_exhausted(self.path, path)
                    return
                watch = watches.get(wd)
                if watch is None:
                    watch = watches[wd] = Watch(wd, mask, path)
                watch.callbacks[id_] = callback
                by_path[path] = wd
                by_watch[wd] = path

    def _add_callback(self, path: bytes) -> None:
        """watchdog's, except that running out of watches below the root is not swallowed."""
        try:
            wd = self._inotify_fd.add_callback(path, self.event_mask, self._callback, self._id)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                self.exhausted = True
                if self.is_active:
                    self.on_exhausted(self.path, path)
            elif path == self.path:
                raise  # a failure to watch the root reaches the caller, as in watchdog
            return  # a folder gone or unreadable since it was listed
        self._active_callbacks_by_path[path] = wd
        self._active_callbacks_by_watch[wd] = path

    def deactivate(self) -> None:
        if self._inotify_fd._watch_for_wd:
            super().deactivate()
            return
        # The inotify instance is closing with every watch (PrunedInotifyObserver.on_thread_stop):
        # nothing to remove, folder by folder.
        with self._lock:
            self._is_active = False
            self._active_callbacks_by_watch.clear()
            self._active_callbacks_by_path.clear()
            self._move_event_grouper.close()

    def _recursive_simulate(self, src_path: bytes) -> list[Any]:
        return [] if self.prune(src_path) else list(super()._recursive_simulate(src_path))


class _PrunedEmitter(InotifyEmitter):
    def __init__(
        self,
        *args: Any,
        prune: Callable[[bytes], bool],
        wanted: Callable[[bytes, list[bytes]], Sequence[bool]],
        on_exhausted: Callable[[bytes, bytes], None],
        catch_up: CatchUp | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._prune = prune
        self._wanted = wanted
        self._on_exhausted = on_exhausted
        self._catch_up = catch_up

    def on_thread_start(self) -> None:
        group = _PrunedWatchGroup(
            self._inotify_fd,
            os.fsencode(self.watch.path),
            event_mask=self.get_event_mask_from_filter(),
            is_recursive=self.watch.is_recursive,
            follow_symlink=self.watch.follow_symlink,
            prune=self._prune,
            wanted=self._wanted,
            on_exhausted=self._on_exhausted,
        )
        if group.exhausted:
            group.deactivate()
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        self._inotify = group
        catch_up = self._catch_up
        since_ns = catch_up.since_ns() if catch_up is not None else None
        if since_ns is not None and catch_up is not None:
            # Every folder is watched now: what changed in one before its watch is found by its
            # ctime (catchup.py) and reported as the watch would have.
            folders = list(group._active_callbacks_by_path)
            for path, ctime_ns, is_folder in changed_since(folders, since_ns, catch_up.stopping):
                if is_folder:
                    catch_up.folder_changed(os.fsdecode(path), ctime_ns)
                else:
                    self.queue_event(FileModifiedEvent(os.fsdecode(path)))


def _one_by_one(prune: Callable[[str], bool]) -> Callable[[str, list[str]], Sequence[bool]]:
    return lambda folder, names: [not prune(os.path.join(folder, name)) for name in names]


def _decoding(
    wanted: Callable[[str, list[str]], Sequence[bool]],
) -> Callable[[bytes, list[bytes]], Sequence[bool]]:
    fsdecode = os.fsdecode
    return lambda folder, names: wanted(fsdecode(folder), [fsdecode(name) for name in names])


class _InFlightInotifyFD(InotifyFD):
    """watchdog's reader of the inotify fd, telling whether it holds events it has read from the
    kernel but not yet handed on to a watch group's queue (no queue shows them meanwhile)."""

    in_flight = False

    def read_events(self, *, event_buffer_size: int = DEFAULT_EVENT_BUFFER_SIZE) -> list[Any]:
        self.in_flight = False  # what it read before is handed on; the kernel's queue tells now
        return super().read_events(event_buffer_size=event_buffer_size)

    def _check_inotify_fd(self) -> bool:
        readable = super()._check_inotify_fd()
        self.in_flight = readable  # before its read empties the kernel's queue
        return readable


class PrunedInotifyObserver(BaseObserver):
    """watchdog's InotifyObserver (one inotify instance for all watches) with pruned watches."""

    def __init__(
        self,
        prune: Callable[[str], bool],
        on_exhausted: Callable[[str, str], None] = lambda root, folder: None,
        wanted: Callable[[str, list[str]], Sequence[bool]] | None = None,
        catch_up: CatchUp | None = None,
    ) -> None:
        """`wanted(folder, names)`: not prune(folder/name) for each name, for a whole folder at
        once (default: asks prune name by name).
        `on_exhausted(root, folder)`: a folder made below `root` after its watch was set up
        could not be watched (max_user_watches); called on an emitter's thread."""
        self._inotify_fd = _InFlightInotifyFD()
        self._inotify_fd.start()
        super().__init__(
            _PrunedEmitter,
            inotify_fd=self._inotify_fd,
            prune=lambda path: prune(os.fsdecode(path)),
            wanted=_decoding(wanted or _one_by_one(prune)),
            catch_up=catch_up,
            on_exhausted=lambda root, folder: on_exhausted(os.fsdecode(root), os.fsdecode(folder)),
        )

    def on_thread_stop(self) -> None:
        # Closing the inotify instance (below) ends every watch at once in the kernel: watchdog
        # would first remove each (a syscall, then an IN_IGNORED event read back and handled,
        # per folder: 0.3-0.5 s for 20,000 folders). Forgotten here, they are skipped.
        with self._inotify_fd._lock:
            self._inotify_fd._watch_for_wd.clear()
        super().on_thread_stop()
        self._inotify_fd.stop()
        self._inotify_fd.join()

    def events_pending(self) -> bool:
        """Whether events are on their way: unread in the kernel's inotify queue, read but not
        handed on, or queued in a watch group (its threads kept off the CPU by a busy machine
        while a burst is written)."""
        unread = array.array("i", [0])
        try:
            fcntl.ioctl(self._inotify_fd._inotify_fd, termios.FIONREAD, unread)
        except OSError:
            return False  # closed: nothing more will come
        if unread[0] > 0 or self._inotify_fd.in_flight:
            return True
        for emitter in self.emitters:
            group = getattr(emitter, "_inotify", None)
            if group is not None and group._move_event_grouper._queue._queue:
                return True
        return False
