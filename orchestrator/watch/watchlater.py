"""Builds and starts the run's watcher on a thread of its own. On Linux the services do not wait
for it (importing watchdog and pathspec take ~55 ms, walking a 20,000-folder tree ~0.3 s): what
changes meanwhile in a folder not yet watched is found by its ctime once the walk is done
(catchup.py). Elsewhere they wait until every root is watched."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from orchestrator.config.manifest import Manifest
from orchestrator.run.events import Event, WatcherSaid
from orchestrator.watch.catchup import CATCHES_UP
from orchestrator.watch.filememory import CLOCK_SLACK_NS

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
        # Every root is watched, or the watcher gave up.
        self._services_may_start = threading.Event()
        self._began_ns = 0
        self._folders_at_start: frozenset[str] = frozenset()

    def start(self) -> None:
        # A change is caught up if its ctime is this late (the kernel's clock lags by a tick).
        self._began_ns = time.time_ns() - CLOCK_SLACK_NS
        self._folders_at_start = frozenset(
            str(path)
            for name in self._names
            for path in self._manifest.services[name].watch or ()
            if os.path.isdir(path)
        )
        self._thread = threading.Thread(target=self._build, name="devup-watch-setup", daemon=True)
        self._thread.start()

    def wait_started(self, timeout_s: float) -> bool:
        """Wait until every root is watched, unless the watcher catches up; False after
        `timeout_s`."""
        return CATCHES_UP or self._services_may_start.wait(timeout_s)

    def busy(self) -> bool:
        watcher = self._watcher
        return watcher is not None and watcher.busy()

    def stop(self) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.stop()  # ends a catch-up under way, which a big tree takes seconds for
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._watcher is not None:
            self._watcher.stop()  # one made meanwhile (a second stop does nothing)

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
        if CATCHES_UP:
            watcher.catch_up_since_ns = self._began_ns
            watcher.folders_at_start = self._folders_at_start
        watcher.start(wait=True)
        self._services_may_start.set()
