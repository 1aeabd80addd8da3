"""Options as a user meets them: which -f is which in `logs`, each command's --help lists only
what it uses, the command list's descriptions are whole."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from pathlib import Path

import click
import pytest
from conftest import DEVUP, Project

from orchestrator.base.errors import DevupError
from orchestrator.cli import detach, main, plain_up
from orchestrator.control import client

COMMANDS = [
    "up", "check", "ports", "status", "restart", "start", "stop", "reload", "logs", "run", "env", "who",
    "export", "init", "completion", "url", "port", "mcp",
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


def test_the_shared_options_go_before_or_after_the_command_and_the_later_f_wins(
    project: Project,
) -> None:
    manifest = str(project.write('[services.api]\ncmd = "true"\n'))
    outside = project.root.parent
    for args in (
        ["-f", manifest, "check"],
        ["check", "-f", manifest],
        ["-f", "nowhere.toml", "check", "--file", manifest],
        ["--no-watch", "--no-color", "-f", manifest, "check"],
    ):
        result = devup(outside, *args)
        assert (result.returncode, result.stderr) == (0, ""), args
    later = devup(outside, "-f", manifest, "check", "-f", "nowhere.toml")
    assert (later.returncode, later.stderr) == (2, "devup: error: nowhere.toml: no such file\n")
    after = devup(outside, "check", "--no-watch")
    assert after.returncode == 2 and "No such option '--no-watch'" in after.stderr


TAILS = [
    [], ["api"], ["api", "web"], ["--no-wait"], ["api", "--no-wait"], ["--no-wait", "api"],
    ["--json"], ["--json", "api"], ["--json", "--json"], ["api", "--no-wait", "--no-wait"],
    ["--no-wait", "--json"], ["-f", "devports.toml"], ["--help"], ["--"], ["api", "--"], ["-"],
    ["--no-wait=1", "api"], ["api", "-n", "1"],
]  # fmt: skip


def test_the_fast_path_takes_a_verb_only_in_a_form_the_cli_takes_the_same_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """entry.py answers the control verbs without click: for every command line it takes, click
    (which gets all the others) must take it too, with the same names and flags."""
    (tmp_path / "devports.toml").write_text('[services.api]\ncmd = "true"\n')
    monkeypatch.chdir(tmp_path)
    seen: list[tuple[str, list[str], set[str]]] = []

    def command(verb: str, _path: Path, names: list[str], flags: set[str]) -> tuple[int, str]:
        seen.append((verb, names, flags))
        return 0, ""

    monkeypatch.setattr(client, "command", command)
    taken = 0
    assert [client.parse([word, *tail]) for word in ("logs", "up", "-f") for tail in TAILS] == [
        None
    ] * 3 * len(TAILS)
    for verb in client.VERBS:
        for tail in TAILS:
            argv = [verb, *tail]
            fast = client.parse(argv)
            seen.clear()
            with contextlib.suppress(click.ClickException, click.exceptions.Exit, DevupError):
                main.cli.main(args=argv, prog_name="devup", standalone_mode=False)
            if fast is not None:
                taken += 1
                assert seen == [(fast[0].name, fast[1], fast[2])], argv
    capsys.readouterr()
    assert taken == 17  # of the forms above, as client.VERBS spells them


UP_LINES = [
    [], ["up"], ["up", "api"], ["up", "api", "web"], ["--no-watch"], ["--no-color", "--debug"],
    ["--no-watch", "up", "api"], ["up", "--no-watch", "api", "--no-color"], ["up", "api", "--debug"],
    ["--no-watch", "--no-watch"], ["up", "--no-color", "--no-color"], ["api"], ["--no-watch", "api"],
    ["up", "-d"], ["up", "--detach", "api"], ["up", "--json"], ["-f", "devports.toml"],
    ["up", "-f", "devports.toml"], ["--help"], ["up", "--help"], ["-h"], ["up", "--"],
    ["up", "--", "api"], ["up", "-"], ["up", "up"], ["check"], ["status"], ["--version"],
    ["up", "--no-watch=1"], ["--no-wait"], ["up", "--timeout", "5"], ["--debug", "up", "--debug"],
]  # fmt: skip


def test_the_plain_start_takes_only_a_form_the_cli_takes_the_same_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """entry.py starts `devup [up] [SERVICE...] [--no-watch --no-color --debug]` without click
    (plain_up.py): for every command line it takes, click must start the same services with the
    same flags; every other line is left to click."""
    (tmp_path / "devports.toml").write_text('[services.api]\ncmd = "true"\n')
    monkeypatch.chdir(tmp_path)
    seen: list[tuple[Path | None, tuple[str, ...], bool, bool, bool] | None] = []

    def foreground(
        manifest_file: Path | None,
        names: tuple[str, ...],
        *,
        no_color: bool,
        no_watch: bool,
        debug: bool,
    ) -> int:
        seen.append((manifest_file, names, no_color, no_watch, debug))
        return 0

    monkeypatch.setattr(plain_up, "foreground", foreground)
    monkeypatch.setattr(detach, "up_detached", lambda *_args: seen.append(None) or 0)  # no fork
    taken = 0
    for argv in UP_LINES:
        seen.clear()
        fast = plain_up.run(argv)
        by_fast = list(seen)
        seen.clear()
        with contextlib.suppress(click.ClickException, click.exceptions.Exit, DevupError):
            main.cli.main(args=argv, prog_name="devup", standalone_mode=False)
        if fast is None:
            assert by_fast == [], argv
        else:
            taken += 1
            assert by_fast == seen and len(seen) == 1, argv
    capsys.readouterr()
    assert taken == 10  # of the lines above
    monkeypatch.setenv("_DEVUP_COMPLETE", "bash_complete")  # completion is click's alone
    assert plain_up.run([]) is None
