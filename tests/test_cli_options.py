"""Options as a user meets them: which -f is which in `logs`, each command's --help lists only
what it uses, the command list's descriptions are whole."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import DEVUP, Project

COMMANDS = [
    "up", "check", "ports", "status", "restart", "start", "stop", "reload", "logs", "run", "env", "who",
    "export", "init", "completion", "mcp",
]  # fmt: skip
COLOURED = {"up", "run", "logs"}  # commands whose output carries colour


def devup(cwd: Path, *args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run(
        [*DEVUP, *args], cwd=cwd, capture_output=True, text=True, timeout=30, env=env
    )


@pytest.mark.parametrize("before", [False, True], ids=["no-global-f", "global-f"])
def test_a_path_after_logs_f_says_which_f_is_which(project: Project, before: bool) -> None:
    project.write('[services.api]\ncmd = "true"\n')
    outside = project.root.parent
    args = ["-f", "project/devports.toml"] if before else []
    result = devup(outside, *args, "logs", "-f", "project/devports.toml")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0] == (
        'devup: error: "project/devports.toml" looks like a path, not a service: '
        "after `logs`, -f is --follow"
    )
    if before:
        assert lines[1] == "hint: the manifest is already named by the -f before `logs`"
    else:
        assert lines[1] == (
            "hint: to name the manifest, put -f before the command: "
            "devup -f project/devports.toml logs -f"
        )


def option_names(help_text: str) -> set[str]:
    section = help_text.split("Options:", 1)[1]
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", section))


def test_each_command_lists_only_the_options_it_uses(tmp_path: Path) -> None:
    for command in COMMANDS:
        result = devup(tmp_path, command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        names = option_names(result.stdout)
        assert ("--no-watch" in names) == (command == "up"), command
        assert ("--no-color" in names) == (command in COLOURED), command
        assert ("--file" in names) == (command != "completion"), command


def test_the_command_list_has_no_description_cut_short(tmp_path: Path) -> None:
    for columns in (80, 120):
        listing = devup(tmp_path, "--help", columns=columns).stdout.split("Commands:", 1)[1]
        rows = [line for line in listing.splitlines() if line.strip()]
        assert len(rows) == len(COMMANDS)
        for row in rows:
            assert not row.endswith("..."), row
            assert row.endswith("."), row
