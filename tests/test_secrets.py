"""Secrets: a value from a .env file is never printed nor written by devup (up, status, env,
ports, who, failing starts), `devup env` masks it unless --reveal, devup's files are private, and
a .env readable by others is warned about."""

from __future__ import annotations

import json
import os
import queue
import socket
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import REPO, DevupProcess, Project

from orchestrator.cli.main import cli
from orchestrator.config.manifest import load_manifest
from orchestrator.output.printer import Printer
from orchestrator.run.supervisor import Supervisor

SERVER = f"{sys.executable} {REPO / 'tests' / 'fixtures' / 'server.py'}"
SECRET = "s3cr3t-9f2c1d"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def files_under(*folders: Path) -> list[Path]:
    # Not the run record's temporary file: it is renamed over run.json as soon as it is written
    # (mkstemp makes it 0600), so a listing during a run may name one that is gone a moment later.
    return [
        p
        for folder in folders
        for p in folder.rglob("*")
        if p.is_file() and not (p.name.startswith(".run.json.") and p.name.endswith(".tmp"))
    ]


def write_project(project: Project, env_mode: int = 0o600) -> None:
    project.write(
        f"""
        [services.api]
        cmd = "{SERVER}"
        env = {{ API_KEY = "key-${{TOKEN}}", LOG_LEVEL = "debug" }}
        [services.pinned]
        cmd = "{SERVER}"
        port = {project.pool[1]}
        strict_port = true
        """,
        devup='env_file = ".env"\n',
        **{".env": f"TOKEN={SECRET}\n"},
    )
    os.chmod(project.root / ".env", env_mode)


def test_a_secret_from_env_appears_nowhere_devup_prints_or_writes(
    project: Project,
    running: list[DevupProcess],
    devup_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_project(project)
    printed: list[str] = []

    run = project.start("--no-watch")
    running.append(run)
    port = int(run.expect_line(r"api started \(pid \d+, PORT=(\d+)\)").group(1))
    run.expect_line(r"2 services up")
    state = project.root / ".devup"
    for path in (state, state / "logs", devup_home):
        assert mode(path) == 0o700, path
    live_files = files_under(state, devup_home)
    assert {p.name for p in live_files} >= {"run.json", "run.lock", "api.log", "ports.json"}
    for path in live_files:
        assert mode(path) == 0o600, path
    assert all(SECRET not in p.read_text(errors="replace") for p in live_files)

    for args in (
        ["env", "api"],
        ["env", "api", "--json"],
        ["ports", "--json"],
        ["ports"],
        ["who", str(port)],
        ["who", str(port), "--json"],
        ["check", "--json"],
    ):
        # In-process: the same code paths as `devup ARGS`, without a Python start each.
        monkeypatch.chdir(project.root)
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, (args, result.output)
        printed += [result.stdout, result.stderr]
    listing = json.loads(project.devup("env", "api", "--json").stdout)
    values = {v["name"]: (v["value"], v["source"]) for v in listing["variables"]}
    assert values["TOKEN"] == ("***", str(project.root / ".env"))
    assert values["API_KEY"] == ("***", "env") and values["LOG_LEVEL"] == ("***", "env")
    assert values["PORT"] == (str(port), "injected")
    assert values["API_URL"] == (f"http://127.0.0.1:{port}", "injected")
    assert "TOKEN=***" in project.devup("env", "api").stdout.split()
    # The control: the value is really there to leak, and --reveal shows it.
    revealed = project.devup("env", "api", "--reveal").stdout
    assert f"TOKEN={SECRET}" in revealed.split() and f"API_KEY=key-{SECRET}" in revealed.split()

    assert run.stop() == 130
    printed += run.lines

    # A failing start: the strict port is taken.
    with socket.socket() as held:
        held.bind(("127.0.0.1", project.pool[1]))
        held.listen()
        failed = project.devup("--no-watch")
    assert failed.returncode == 1 and "strict_port is set" in failed.stderr
    printed += [failed.stdout, failed.stderr]
    # And a service that crashes at once.
    crash = project.write(
        """
        [services.crash]
        cmd = "exit 3"
        restart = "no"
        env = { API_KEY = "key-${TOKEN}" }
        """,
        devup='env_file = ".env"\n',
    )
    result = project.devup("--no-watch", "-f", str(crash))
    assert result.returncode == 1 and "crash exited with code 3" in result.stdout
    printed += [result.stdout, result.stderr]

    assert sum(text.count(SECRET) for text in printed) == 0
    for path in files_under(state, devup_home):
        assert SECRET not in path.read_text(errors="replace"), path


def test_status_carries_no_environment(project: Project) -> None:
    write_project(project)
    manifest = load_manifest(project.root / "devports.toml")
    envs = {
        "api": {"TOKEN": SECRET, "PORT": "3001"},
        "pinned": {"TOKEN": SECRET, "PORT": "3002"},
    }
    sup = Supervisor(
        manifest,
        ["api", "pinned"],
        {"api": 3001, "pinned": 3002},
        envs,
        Printer(["api", "pinned"], lambda _b: None, color=False),
        events=queue.SimpleQueue(),
    )
    status = json.dumps(sup.status())
    assert SECRET not in status
    assert json.loads(status)["services"]["api"]["warnings"] == []


def test_an_env_file_readable_by_others_is_warned_about_once(
    project: Project, running: list[DevupProcess]
) -> None:
    write_project(project, env_mode=0o644)
    run = project.start("up", "--no-watch", "api")
    running.append(run)
    run.expect_line(r"devup\s+\| \.env is readable by other users \(mode 0644\); chmod 600 \.env$")
    run.expect_line(r"1 service up")
    assert run.stop() == 130
    assert sum("readable by other users" in line for line in run.lines) == 1

    os.chmod(project.root / ".env", 0o600)
    again = project.start("up", "--no-watch", "api")
    running.append(again)
    again.expect_line(r"1 service up")
    assert again.stop() == 130
    assert not [line for line in again.lines if "readable by other users" in line]
