"""A file-change restart whose quiet is over still waits while the watcher has changes on their
way (a busy machine kept its threads off the CPU midway through a burst: 19 files read, then none
for 45 ms while more were written), on the scripted host and clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.run.debounce import PENDING_HOLD_MAX_S, PENDING_RECHECK_S

from .test_file_changes import ready


class Watcher:
    """What the supervisor asks of the run's watcher; `pending`: changes on their way."""

    def __init__(self, pending: bool) -> None:
        self.pending = pending

    def start(self) -> None: ...

    def wait_started(self, timeout_s: float) -> bool:
        return True

    def busy(self) -> bool:
        return self.pending

    def stop(self) -> None: ...


def test_a_restart_waits_for_the_changes_still_on_their_way(tmp_path: Path) -> None:
    run = ready(tmp_path)
    run.sup.watcher = watcher = Watcher(pending=True)
    run.change("api", "src/f0.py")
    run.advance(0.2)  # its debounce (0.1) is over, but the rest of the burst is still coming
    assert len(run.host.spawned("api")) == 1
    watcher.pending = False
    took = run.until(lambda: len(run.host.spawned("api")) == 2, 1, "started again")
    assert took <= PENDING_RECHECK_S + 1e-6


def test_a_watcher_that_never_catches_up_holds_a_restart_only_so_long(tmp_path: Path) -> None:
    run = ready(tmp_path)
    run.sup.watcher = Watcher(pending=True)  # a file nobody watches written without end
    run.change("api", "app.py")
    took = run.until(lambda: len(run.host.spawned("api")) == 2, 2, "started again")
    assert took == pytest.approx(0.1 + PENDING_HOLD_MAX_S, abs=PENDING_RECHECK_S)


def test_a_single_save_with_nothing_on_its_way_restarts_after_the_debounce(
    tmp_path: Path,
) -> None:
    run = ready(tmp_path)
    run.sup.watcher = Watcher(pending=False)
    run.change("api", "app.py")
    took = run.until(lambda: len(run.host.spawned("api")) == 2, 1, "started again")
    assert took == pytest.approx(0.1)
