"""The click-free entry point answers as click would."""

from __future__ import annotations

import subprocess
import sys


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
