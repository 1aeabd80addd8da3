"""Stable ports end to end: a foreign process on a leased port gets the service a port for one
run only; `devup ports` reports without moving a lease; the next run gets the lease back."""

from __future__ import annotations

import json
import os
import socket
import sys

import psutil
from conftest import REPO, DevupProcess, Project

from orchestrator.paths import project_key
from orchestrator.registry import Registry

SERVER = f"{sys.executable} {REPO / 'tests' / 'fixtures' / 'server.py'}"


def test_a_foreign_listener_on_a_leased_port_lends_the_service_a_port_for_one_run(
    project: Project, running: list[DevupProcess]
) -> None:
    project.write(f"""
        [services.api]
        cmd = "{SERVER}"
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
        assert message.startswith(f"api: {leased} is held by {me}; using ")
        assert message.endswith(f"for its next run (`devup up`) ({leased} stays api's)")
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
