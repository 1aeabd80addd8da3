"""The real watcher tells whether changes are still on their way to the supervisor: a restart's
quiet is not over while they are (a busy machine kept the watcher's threads off the CPU midway
through a 5,000-file burst, and the restart started in the middle of it)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
from conftest import wait_for

from orchestrator.config.manifest import load_manifest
from orchestrator.run.events import Event, FilesChanged
from orchestrator.watch.watcher import make_watcher

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify")


def test_the_watcher_is_busy_while_changes_wait_to_be_handed_over(tmp_path: Path) -> None:
    (tmp_path / "devports.toml").write_text('[services.api]\ncmd = "true"\nport = 3001\n')
    manifest = load_manifest(tmp_path / "devports.toml")
    handed_over = threading.Event()  # the thread that hands changes over is held back till set
    posted: list[Event] = []

    def post(event: Event) -> None:
        handed_over.wait(30)
        posted.append(event)

    watcher = make_watcher(manifest, ["api"], post)
    watcher.start(wait=True)
    try:
        assert not watcher.busy()
        for i in range(10):
            (tmp_path / f"f{i}.py").write_text("x = 1\n")
        wait_for(watcher.busy, 5, what="the changes queued behind the first")
        assert not posted
        handed_over.set()
        changed = {f"f{i}.py" for i in range(10)}
        wait_for(
            lambda: changed <= {e.path for e in posted if isinstance(e, FilesChanged)},
            10,
            what="every change handed over",
        )
        wait_for(lambda: not watcher.busy(), 5, what="nothing more on its way")
    finally:
        handed_over.set()
        watcher.stop()
