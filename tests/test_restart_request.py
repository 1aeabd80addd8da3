"""`devup restart SERVICE` is a request to restart now: a file-change restart it folds into may be
held (git's index.lock, changes still on their way), the request is not."""

from __future__ import annotations

import sys

from conftest import REPO, DevupProcess, Project

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
