"""The services' colour escapes: kept in the log files as written; stripped from `devup logs` unless
it writes to a terminal with colour on (`--color` forces them); stripped from the live stream
with NO_COLOR or --no-color."""

from __future__ import annotations

import os
import pty
import subprocess

import pytest
from conftest import DEVUP, DevupProcess, Project, py

from orchestrator.base.ansi import strip_ansi

RED = "\x1b[31mred\x1b[0m \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ plain"


def write_task(project: Project) -> None:
    # Colours whatever its stdout is, as many tools do under FORCE_COLOR or by default.
    project.write(f"""
        [services.paint]
        cmd = '''{py(f"import sys; sys.stdout.write({RED!r} + chr(10))")}'''
        port = false
        restart = "no"
    """)


@pytest.mark.parametrize("how", ["NO_COLOR", "--no-color"])
def test_no_color_strips_the_live_stream_and_the_log_file_keeps_the_bytes(
    project: Project, running: list[DevupProcess], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    write_task(project)
    if how == "NO_COLOR":
        monkeypatch.setenv("NO_COLOR", "1")
        run = project.start("--no-watch")
    else:
        run = project.start("--no-color", "up", "--no-watch")
    running.append(run)
    line = run.expect_line(r"paint\s+\| ").string
    assert line.endswith("| red link plain") and "\x1b" not in line
    assert run.wait() == 0
    log = (project.root / ".devup" / "logs" / "paint.log").read_bytes()
    assert RED.encode() in log


def test_logs_strips_escapes_when_piped_and_keeps_them_with_color(project: Project) -> None:
    write_task(project)
    assert project.devup("--no-watch").returncode == 0
    for args in (["logs"], ["logs", "-n", "5"], ["logs", "--no-color"], ["logs", "paint"]):
        out = project.devup(*args).stdout
        assert "| red link plain" in out and "\x1b" not in out, args
    forced = project.devup("logs", "--color").stdout
    assert RED in forced


def on_a_terminal(project: Project, *args: str, env: dict[str, str] | None = None) -> str:
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [*DEVUP, *args],
            cwd=project.root,
            stdout=follower,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end is closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.wait(timeout=30)
    finally:
        os.close(leader)
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_logs_on_a_terminal_keeps_escapes_unless_colour_is_off(project: Project) -> None:
    write_task(project)
    assert project.devup("--no-watch").returncode == 0
    for args in (["logs"], ["logs", "-n", "5"]):
        assert RED in on_a_terminal(project, *args), args
        plain = on_a_terminal(project, *args, env={"NO_COLOR": "1"})
        assert "| red link plain" in plain and "\x1b" not in plain, args
    assert "\x1b" not in on_a_terminal(project, "logs", "--no-color")
    assert "\x1b" not in on_a_terminal(project, "--no-color", "logs")  # given before the command


def test_strip_ansi_removes_csi_osc_and_short_escapes_only() -> None:
    assert strip_ansi(b"\x1b[1;38;5;200mx\x1b[0m\x1b[2K") == b"x"
    assert strip_ansi(b"\x1b]0;title\x07a\x1b(Bb\x1b7c") == b"abc"
    assert strip_ansi(b"no escapes [31m here") == b"no escapes [31m here"
    # An unterminated OSC (a title cut short) ends at its line: the lines after it stay.
    block = b"12:00:00 api | \x1b]0;title\n12:00:00 api | second\n12:00:01 api | third\n"
    assert strip_ansi(block) == b"12:00:00 api | \n12:00:00 api | second\n12:00:01 api | third\n"
