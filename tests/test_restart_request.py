"""`devup restart SERVICE` is a request to restart now: a file-change restart it folds into may be
held (git's index.lock, changes still on their way), the request is not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO, DevupProcess, Project, wait_for

SERVER = f"{sys.executable} {REPO / 'tests' / 'fixtures' / 'server.py'}"


def test_a_restart_request_is_not_held_by_a_git_index_lock(
    project: Project, running: list[DevupProcess]
) -> None:
    project.write(f'[services.api]\ncmd = "{SERVER}"\n', **{"app.py": "v = 1\n"})
    (project.root / ".git").mkdir()
    run = project.start()
    running.append(run)
    run.expect_line(r"1 service up")
    # A lock a killed git left behind (or a checkout under way) holds the file-change restart.
    (project.root / ".git" / "index.lock").touch()
    (project.root / "app.py").write_text("v = 2\n")
    run.expect_line(r"api: app\.py changed, restarting")
    result = project.devup("restart", "api")
    assert result.returncode == 0, result.stderr
    run.expect_line(r"api started \(pid")
    # Started on the request, not once the lock was given up on (HOLD_MAX_S later).
    assert not any("index.lock has been there" in line for line in run.lines), run.lines
    assert run.stop() == 130


def test_a_git_commit_waiting_on_its_editor_does_not_hold_a_restart(
    project: Project, running: list[DevupProcess], tmp_path: Path
) -> None:
    project.write(f'[services.api]\ncmd = "{SERVER}"\n', **{"app.py": "v = 1\n"})
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=project.root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=project.root, check=True)
    subprocess.run([*git, "commit", "-qm", "one"], cwd=project.root, check=True)
    run = project.start()
    running.append(run)
    run.expect_line(r"1 service up")
    # `git commit -a` writes the new index into index.lock, then holds it while its editor is
    # open: the work tree is not being rewritten, so a save meanwhile restarts as usual.
    go = tmp_path / "go"
    editor = tmp_path / "editor.sh"
    editor.write_text(f'#!/bin/sh\nwhile [ ! -e {go} ]; do sleep 0.05; done\necho msg > "$1"\n')
    editor.chmod(0o755)
    (project.root / "app.py").write_text("v = 2\n")
    commit = subprocess.Popen(
        [*git, "commit", "-qa"], cwd=project.root, env={**os.environ, "GIT_EDITOR": str(editor)}
    )
    try:
        lock = project.root / ".git" / "index.lock"
        wait_for(lambda: lock.exists() and lock.stat().st_size > 0, 10, what="git's index.lock")
        (project.root / "app.py").write_text("v = 3\n")
        run.expect_line(r"api: app\.py changed, restarting")
        run.expect_line(r"api started \(pid")
        assert not any("index.lock has been there" in line for line in run.lines), run.lines
    finally:
        go.touch()
        assert commit.wait(15) == 0
    assert run.stop() == 130
