"""A running devup follows devports.toml and its env files (live.py), and stays reachable by
`status/stop/restart/logs/reload` while the file does not parse."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import psutil
from conftest import REPO, DevupProcess, Project, wait_for

SERVER = f"{sys.executable} {REPO / 'tests' / 'fixtures' / 'server.py'}"


def services(greeting: str = "hello", extra: str = "", c: bool = True) -> str:
    """Three services in the project folder itself (so each one's watcher sees devports.toml)."""
    text = f"""
    [services.api]
    cmd = "{SERVER}"
    env = {{ GREETING = "{greeting}" }}
    [services.web]
    cmd = "{SERVER}"
    depends_on = ["api"]
    """
    if c:
        text += f"""
    [services.admin]
    cmd = "{SERVER}"
    env_file = "admin.env"
    """
    return text + extra


def status(project: Project) -> dict[str, Any]:
    result = project.devup("status", "--json")
    assert result.returncode == 0, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def pids(project: Project) -> dict[str, int | None]:
    return {n: s["pid"] for n, s in status(project)["services"].items()}


def environ(pid: int) -> dict[str, str]:
    env: dict[str, str] = psutil.Process(pid).environ()
    return env


def all_ready(project: Project) -> bool:
    return all(s["state"] == "ready" for s in status(project)["services"].values())


def test_an_env_change_restarts_only_that_service_and_services_come_and_go(
    project: Project, running: list[DevupProcess]
) -> None:
    manifest = project.write(services(), **{"admin.env": "TOKEN=one\n"})
    run = project.start()
    running.append(run)
    run.expect_line(r"3 services up")
    before = pids(project)

    manifest.write_text(manifest.read_text().replace('"hello"', '"bonjour"'))
    run.expect_line(r"devports\.toml changed: api restarted \(env\)$")
    run.expect_line(r"api ready on")
    after = pids(project)
    assert after["api"] != before["api"]
    assert (after["web"], after["admin"]) == (before["web"], before["admin"])
    assert environ(after["api"] or 0)["GREETING"] == "bonjour"
    assert status(project)["services"]["api"]["restarts"] == 1

    # An env file the run loaded is followed too.
    (project.root / "admin.env").write_text("TOKEN=two\n")
    run.expect_line(r"devports\.toml changed: admin restarted \(env\)$")
    wait_for(lambda: all_ready(project), 15, what="admin ready again")
    now = pids(project)
    assert environ(now["admin"] or 0)["TOKEN"] == "two"
    assert (now["api"], now["web"]) == (after["api"], after["web"])

    # Added: it starts, gets a port; removed: it stops, and leaves the status.
    worker = f"""
    [services.worker]
    cmd = "{SERVER}"
    """
    manifest.write_text(manifest.read_text() + worker)
    run.expect_line(r"devports\.toml changed: worker added$")
    run.expect_line(r"worker ready on http://127\.0\.0\.1:\d+")
    doc = status(project)["services"]
    assert doc["worker"]["state"] == "ready" and doc["worker"]["port"] is not None
    assert {n: doc[n]["pid"] for n in now} == now

    project.write(services(greeting="bonjour", extra=worker, c=False))
    run.expect_line(r"devports\.toml changed: admin stopped$")
    wait_for(lambda: "admin" not in status(project)["services"], 15, what="admin gone")
    assert not psutil.pid_exists(now["admin"] or 0) or (
        psutil.Process(now["admin"] or 0).status() == psutil.STATUS_ZOMBIE
    )
    doc = status(project)["services"]
    assert doc["api"]["pid"] == after["api"] and doc["worker"]["state"] == "ready"

    assert project.devup("stop").returncode == 0
    assert run.wait() == 0


def test_a_broken_manifest_keeps_the_run_and_control_works(
    project: Project, running: list[DevupProcess]
) -> None:
    manifest = project.write(services(c=False))
    run = project.start()
    running.append(run)
    run.expect_line(r"2 services up")
    good = manifest.read_text()
    before = pids(project)

    manifest.write_text(good.replace("[services.web]", "[services.web"))
    line = run.expect_line(r"invalid TOML.*; still running the previous version$")
    assert line.string.split("| ", 1)[1].startswith("devports.toml:")

    doc = status(project)
    assert doc["manifest"]["pending"] is True
    assert doc["manifest"]["error"].startswith("devports.toml:")
    assert {n: s["pid"] for n, s in doc["services"].items()} == before
    text = project.devup("status")
    assert text.returncode == 0 and "still running the previous version" in text.stdout

    logs = project.devup("logs", "-n", "5")
    assert logs.returncode == 0 and "invalid TOML" in logs.stdout
    logs = project.devup("logs", "--since", "1h", "api")
    assert logs.returncode == 0 and "serving on" in logs.stdout
    ports = project.devup("ports", "--json")  # from the run: the file does not parse
    assert ports.returncode == 0, ports.stderr
    assert set(json.loads(ports.stdout)["services"]) == set(before)

    reload = project.devup("reload")
    assert reload.returncode == 1
    assert reload.stderr.startswith("devup: error: devports.toml:")

    restart = project.devup("restart", "api")
    assert (restart.returncode, restart.stdout) == (0, "api ready\n"), restart.stderr
    assert "restarted with the previous version" in restart.stderr
    assert pids(project)["api"] != before["api"]

    stop = project.devup("stop", "api")
    assert (stop.returncode, stop.stdout) == (0, "api stopped\n"), stop.stderr
    # One error line for the broken file, however often it was read.
    assert sum("invalid TOML" in line for line in run.lines) == 1

    manifest.write_text(good.replace('"hello"', '"fixed"'))
    # api stays stopped (as the user left it), with the new environment for its next start.
    run.expect_line(r"devports\.toml changed: api updated \(env\)$")
    doc = status(project)
    assert doc["manifest"]["pending"] is False and doc["manifest"]["error"] is None
    assert doc["services"]["api"]["state"] == "stopped"
    start = project.devup("start", "api")
    assert (start.returncode, start.stdout) == (0, "api ready\n"), start.stderr
    assert environ(pids(project)["api"] or 0)["GREETING"] == "fixed"

    assert project.devup("stop").returncode == 0
    assert run.wait() == 0


def test_devup_reload_applies_on_demand(project: Project, running: list[DevupProcess]) -> None:
    manifest = project.write(services(c=False))
    run = project.start("--no-watch")  # no file watching: nothing follows the file by itself
    running.append(run)
    run.expect_line(r"2 services up")
    doc = status(project)["manifest"]
    assert doc["pending"] is False and doc["applied"] == doc["on_disk"]

    manifest.write_text(
        manifest.read_text().replace("[services.web]", "# a comment\n[services.web]")
    )
    assert status(project)["manifest"]["pending"] is True
    nothing = project.devup("reload")
    assert (nothing.returncode, nothing.stdout) == (0, "devports.toml changed: nothing to apply\n")

    port = project.pool[0] + 150
    manifest.write_text(
        manifest.read_text().replace("[services.api]", f"[services.api]\nport = {port}")
    )
    # api moves: its URL in web's environment changes, so web restarts with it.
    reload = project.devup("reload")
    assert reload.returncode == 0, reload.stderr
    assert reload.stdout == (
        "devports.toml changed: api restarted (port), web restarted (API_PORT, API_URL)\n"
    )
    # In dependency order: web, which needs api, starts once the new api is ready.
    run.expect_line(rf"api started \(pid \d+, PORT={port}\)")
    run.expect_line(r"api ready on")
    run.expect_line(r"web started")
    wait_for(lambda: all_ready(project), 15, what="api and web ready again")
    doc = status(project)["services"]
    assert doc["api"]["port"] == port
    assert environ(doc["web"]["pid"])["API_URL"] == f"http://127.0.0.1:{port}"
    assert status(project)["manifest"]["pending"] is False

    # A service named in the file but not applied yet: `devup start` applies the file first.
    manifest.write_text(manifest.read_text() + f'[services.extra]\ncmd = "{SERVER}"\n')
    start = project.devup("start", "extra")
    assert (start.returncode, start.stdout) == (0, "extra ready\n"), start.stderr

    assert project.devup("stop").returncode == 0
    assert run.wait() == 0


def test_control_finds_the_run_from_the_folder_alone(
    project: Project, running: list[DevupProcess], tmp_path: Path
) -> None:
    """`-f` names the project; names are checked against the run, not the file."""
    manifest = project.write(services(c=False))
    run = project.start("--no-watch")
    running.append(run)
    run.expect_line(r"2 services up")
    manifest.write_text("[services\n")
    elsewhere = Project(tmp_path / "elsewhere", project.pool)
    elsewhere.root.mkdir()
    args = ["-f", str(manifest)]
    assert elsewhere.devup(*args, "status").returncode == 0
    typo = project.devup("restart", "apj")
    assert typo.returncode == 2
    assert typo.stderr == 'devup: error: unknown service "apj"\nhint: did you mean "api"?\n'
    assert elsewhere.devup(*args, "restart", "--no-wait", "web").returncode == 0
    assert elsewhere.devup(*args, "logs", "-n", "3", "web").returncode == 0
    assert elsewhere.devup(*args, "stop").returncode == 0
    assert run.wait() == 0


def test_restart_reads_the_manifest_first(project: Project, running: list[DevupProcess]) -> None:
    manifest = project.write(services(c=False))
    run = project.start("--no-watch")
    running.append(run)
    run.expect_line(r"2 services up")
    web = pids(project)["web"]
    manifest.write_text(manifest.read_text().replace('"hello"', '"again"'))
    restart = project.devup("restart", "api")
    assert (restart.returncode, restart.stdout, restart.stderr) == (0, "api ready\n", "")
    run.expect_line(r"devports\.toml changed: api restarted \(env\)$")
    now = pids(project)
    assert environ(now["api"] or 0)["GREETING"] == "again" and now["web"] == web
    assert status(project)["services"]["api"]["restarts"] == 1  # one restart, not two
    assert project.devup("stop").returncode == 0
    assert run.wait() == 0
