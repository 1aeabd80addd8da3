"""Builds and starts the run's watcher on a thread of its own. The services start once a small
tree is watched (importing watchdog and pathspec and setting up each service's ignores take
~55 ms), so no save made as they start is missed; a big tree is walked while they start."""

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
        # Every root is watched, the watcher gave up, or the tree proved big.
        self._services_may_start = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._build, name="devup-watch-setup", daemon=True)
        self._thread.start()

    def wait_started(self, timeout_s: float) -> bool:
        """Wait until every root is watched or the tree proved big; False after `timeout_s`."""
        return self._services_may_start.wait(timeout_s)

    def busy(self) -> bool:
        watcher = self._watcher
        return watcher is not None and watcher.busy()

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
            self._services_may_start.set()
            return
        if self._stopping.is_set():
            self._services_may_start.set()
            return
        self._watcher = watcher
        watcher.on_big_tree = self._services_may_start.set
        watcher.start(wait=True)
        self._services_may_start.set()
