"""A file-change restart while a git operation rewrites the work tree (its index.lock is there)
waits for git to finish, on the scripted host and clock; a lock left by a killed git is waited for
once, at most HOLD_MAX_S."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.run.gitlock import HOLD_MAX_S, RECHECK_S, git_dir

from .test_file_changes import ready


def lock(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir(exist_ok=True)
    path = tmp_path / ".git" / "index.lock"
    path.touch()
    return path


def test_a_restart_waits_for_a_git_checkout_to_finish(tmp_path: Path) -> None:
    run = ready(tmp_path)
    index_lock = lock(tmp_path)
    run.change("api", "app.py")
    run.advance(3)  # git paused for longer than any quiet time
    assert len(run.host.spawned("api")) == 1
    run.change("api", "models.py")
    index_lock.unlink()
    took = run.until(lambda: len(run.host.spawned("api")) == 2, 1, "started again")
    assert took <= 0.1 + RECHECK_S
    run.advance(2)
    assert sum("changed, restarting" in x for x in run.lines()) == 1


def test_a_lock_left_by_a_killed_git_holds_a_restart_once(tmp_path: Path) -> None:
    run = ready(tmp_path)
    lock(tmp_path)
    run.change("api", "app.py")
    took = run.until(lambda: len(run.host.spawned("api")) == 2, 20, "started again")
    assert took == pytest.approx(0.1 + HOLD_MAX_S, abs=RECHECK_S)  # its quiet, then the hold
    assert any("index.lock has been there for 10s" in x for x in run.lines())
    run.advance(1)
    run.change("api", "app.py")
    took = run.until(lambda: len(run.host.spawned("api")) == 3, 1, "started again")
    assert took == pytest.approx(0.1)


def test_a_restart_outside_git_or_without_its_lock_does_not_wait(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    run = ready(tmp_path)
    run.change("api", "app.py")
    took = run.until(lambda: len(run.host.spawned("api")) == 2, 1, "started again")
    assert took == pytest.approx(0.1)


def test_the_git_dir_of_a_linked_worktree_is_named_by_its_git_file(tmp_path: Path) -> None:
    main = tmp_path / "main" / ".git" / "worktrees" / "feature"
    main.mkdir(parents=True)
    (tmp_path / "feature" / "services" / "api").mkdir(parents=True)
    (tmp_path / "feature" / ".git").write_text(f"gitdir: {main}\n")
    assert git_dir(str(tmp_path / "feature" / "services" / "api")) == str(main)
    assert git_dir(str(tmp_path / "main")) == str(tmp_path / "main" / ".git")
