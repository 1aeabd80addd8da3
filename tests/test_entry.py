"""The click-free entry point answers as click would."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import DEVUP, REPO, DevupProcess, Project

SERVER = f"{sys.executable} {REPO / 'tests' / 'fixtures' / 'server.py'}"


def test_version_without_click_reads_as_clicks_own() -> None:
    blocked = "import sys; sys.modules['click'] = None; "  # importing click now fails
    fast = subprocess.run(
        [sys.executable, "-c", blocked + "sys.argv[1:] = ['--version']; "
         "from orchestrator.cli.entry import main; main()"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    slow = subprocess.run(
        [sys.executable, "-c", "from orchestrator.cli.main import main; main(['--version'])"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert (fast.returncode, fast.stderr) == (0, ""), fast.stderr
    assert fast.stdout == slow.stdout
    assert fast.stdout.startswith("devup, version ")


def test_a_reader_that_closed_its_end_gets_no_traceback(
    project: Project, running: list[DevupProcess]
) -> None:
    """`devup status --json | head -1`: the fast path's output goes to a pipe nobody reads."""
    project.write(f"""
        [services.api]
        cmd = "{SERVER}"
    """)
    run = project.start("--no-watch")
    running.append(run)
    run.expect_line(r"1 service up")
    for args in (["status", "--json"], ["url", "api"], ["ports", "--json"]):
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:  # unbuffered: each print is a write, as a long answer is
            result = subprocess.run(
                [*DEVUP, *args],
                cwd=project.root,
                stdout=write_end,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            os.close(write_end)
        assert "Traceback" not in result.stderr, result.stderr
        assert result.returncode == 0, (args, result.stderr)
