"""Builds and starts the run's watcher on a thread of its own: importing watchdog and pathspec
and setting up each service's ignores (~55 ms) and walking a big tree then cost the services'
start nothing (the supervisor gives a small tree a head start: see WATCH_HEAD_START_S)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from orchestrator.config.manifest import Manifest
from orchestrator.run.events import Event, WatcherSaid

if TYPE_CHECKING:
    from orchestrator.watch.watcher import Watcher


class WatcherLater:
    """What the supervisor starts and stops; the watcher itself is made on the thread."""

    def __init__(
        self, manifest: Manifest, names: Sequence[str], post: Callable[[Event], None]
    ) -> None:
        self._manifest = manifest
        self._names = list(names)
        self._post = post
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._watcher: Watcher | None = None
        self._started = threading.Event()  # every root is watched, or the watcher gave up

    def start(self) -> None:
        self._thread = threading.Thread(target=self._build, name="devup-watch-setup", daemon=True)
        self._thread.start()

    def wait_started(self, timeout_s: float) -> bool:
        return self._started.wait(timeout_s)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._watcher is not None:
            self._watcher.stop()

    def _build(self) -> None:
        from orchestrator.watch.watcher import make_watcher

        try:
            watcher = make_watcher(self._manifest, self._names, self._post)
        except OSError as exc:  # a .gitignore or folder that cannot be read
            self._post(WatcherSaid(f"cannot watch files: {exc.strerror or exc}"))
            self._started.set()
            return
        if self._stopping.is_set():
            self._started.set()
            return
        self._watcher = watcher
        watcher.start(wait=True)
        self._started.set()
