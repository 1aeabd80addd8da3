"""Stable ports end to end: a foreign process on a leased port gets the service a port for one
run only; `devup ports` reports without moving a lease; the next run gets the lease back."""

from __future__ import annotations

import json
import os
import socket
import sys

import psutil
from conftest import REPO, DevupProcess, Project

from orchestrator.base.paths import project_key
from orchestrator.ports.registry import Registry

SERVER = f"{sys.executable} {REPO / 'tests' / 'fixtures' / 'server.py'}"


def test_a_foreign_listener_on_a_leased_port_lends_the_service_a_port_for_one_run(
    project: Project, running: list[DevupProcess]
) -> None:
    # A shell that waits for the server: the holder to name is the server, not the shell.
    project.write(f"""
        [services.api]
        cmd = "{SERVER} & wait"
    """)
    ports = json.loads(project.devup("ports", "--json").stdout)["services"]
    leased = ports["api"]["port"]
    lease_file = Registry().path
    before = lease_file.read_bytes()
    me = f"{psutil.Process().name()} (pid {os.getpid()})"
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", leased))
        foreign.listen()
        shown = project.devup("ports")
        assert shown.returncode == 0, shown.stderr
        message = shown.stdout.splitlines()[0]
        assert message.startswith(f"api: {leased} is held by {me}; `devup up` would use ")
        assert message.endswith(f" ({leased} stays api's)")
        assert lease_file.read_bytes() == before  # `devup ports` moved nothing

        run = project.start("--no-watch")
        running.append(run)
        said = run.expect_line(
            rf"api: {leased} is held by .*; using (\d+) for this run \({leased} stays api's\)"
        )
        temporary = int(said.group(1))
        assert temporary != leased
        run.expect_line(rf"api started \(pid \d+, PORT={temporary}\)")
        run.expect_line(r"1 service up")
        assert lease_file.read_bytes() == before
        # While it runs, `ports` shows the port in use and whose lease stays.
        live = json.loads(project.devup("ports", "--json").stdout)
        assert live["running"] is True
        assert live["services"]["api"]["port"] == temporary
        assert live["services"]["api"]["lease"] == leased
        status = json.loads(project.devup("status", "--json").stdout)["services"]["api"]
        server = status["listening_pids"][0]
        assert server != status["pid"]
        holder = f"{psutil.Process(server).name()} (pid {server})"
        assert live["services"]["api"]["holder"] == holder
        # `env` and `run` give what the run uses: the temporary port.
        env = json.loads(project.devup("env", "api", "--json").stdout)["variables"]
        assert {v["name"]: v["value"] for v in env}["PORT"] == str(temporary)
        assert run.stop() == 130
    assert sum("stays api's" in line for line in run.lines) == 1  # said once
    assert lease_file.read_bytes() == before
    assert Registry().read()[project_key(project.root)] == {"api": leased}

    again = project.start("--no-watch")
    running.append(again)
    again.expect_line(rf"api started \(pid \d+, PORT={leased}\)")
    again.expect_line(r"1 service up")
    assert again.stop() == 130
    assert not any("stays api's" in line for line in again.lines)


def test_check_shows_the_ports_devup_up_will_use_and_what_each_service_watches(
    project: Project,
) -> None:
    project.write("""
        [services.api]
        cmd = "python -m api"
        watch = ["src", "pyproject.toml"]

        [services.migrate]
        cmd = "python migrate.py"
        port = false
        restart = "no"
        watch = false
    """)
    (project.root / "src").mkdir()
    planned = json.loads(project.devup("ports", "--json").stdout)["services"]
    leased = planned["api"]["port"]
    before = Registry().path.read_bytes()
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", leased))
        foreign.listen()
        text = project.devup("check")
        doc = json.loads(project.devup("check", "--json").stdout)
    assert text.returncode == 0, text.stderr
    assert Registry().path.read_bytes() == before  # check moved no lease
    temporary = doc["services"]["api"]["planned_port"]
    assert temporary not in (None, leased)
    assert doc["services"]["api"]["url"] == f"http://127.0.0.1:{temporary}"
    assert doc["services"]["migrate"]["planned_port"] is None
    assert doc["messages"] == [line for line in text.stdout.splitlines() if "stays api's" in line]
    rows = text.stdout.splitlines()
    api = next(i for i, row in enumerate(rows) if row.lstrip().startswith("api "))
    assert f"port {temporary}" in rows[api]
    assert rows[api + 1].split() == ["watch:", "src,", "pyproject.toml"]
    migrate = next(i for i, row in enumerate(rows) if row.lstrip().startswith("migrate "))
    assert "no port" in rows[migrate] and rows[migrate + 1].split() == ["watch:", "off"]
    # Without the foreign listener, check shows the leased port.
    again = json.loads(project.devup("check", "--json").stdout)
    assert again["services"]["api"]["planned_port"] == leased
