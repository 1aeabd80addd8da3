"""Dependency order and readiness on the scripted host: each test scripts when a fake child
listens, prints its ready_log line or exits, and checks which services the host was asked to
spawn and when, their states and devup's lines: a task gating its dependents, a failing
dependency, ready_log, ready_timeout, a late listener, a worker without a port, and the listen
audit's findings."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.run import audit

from .fakehost import Run

MIGRATE_THEN_API = """
    [services.migrate]
    cmd = "python migrate.py"
    port = false
    restart = "no"
    [services.api]
    cmd = "python api.py"
    port = 3001
    depends_on = ["migrate"]
    [services.web]
    cmd = "python web.py"
    port = 3002
    depends_on = ["api"]
"""


def test_a_task_that_exits_0_starts_its_dependents(tmp_path: Path) -> None:
    run = Run(tmp_path, MIGRATE_THEN_API).start()
    assert run.states() == {"migrate": "starting", "api": "waiting", "web": "waiting"}
    run.advance(1.0)
    assert run.host.spawned("api") == []  # a task is waited for until it exits
    run.host.last("migrate").exit(0)
    run.step()
    assert run.states() == {"migrate": "stopped", "api": "starting", "web": "waiting"}
    assert "migrate finished (exit code 0) in 1.00s" in run.lines()


def test_a_task_that_fails_keeps_its_dependents_from_starting(tmp_path: Path) -> None:
    run = Run(tmp_path, MIGRATE_THEN_API).start()
    run.host.last("migrate").exit(1)
    run.advance(60)
    assert run.states() == {"migrate": "stopped", "api": "stopped", "web": "stopped"}
    assert run.host.spawned("api") == run.host.spawned("web") == []
    lines = run.lines()
    assert "migrate failed: exited with code 1" in lines
    assert "api not started: migrate failed with code 1" in lines
    assert "web not started: api was not started" in lines
    assert run.exit_code is None  # watching: an edit of migrate.py may fix it


def test_a_failed_task_ends_a_run_without_watching_with_code_1(tmp_path: Path) -> None:
    run = Run(tmp_path, MIGRATE_THEN_API, watching=False).start()
    run.host.last("migrate").exit(1)
    run.step()
    assert run.exit_code == 1  # not kept up for ever by web waiting for api
    assert run.lines()[-1] == "every service has exited (migrate failed)"


def test_a_fixed_task_started_again_starts_its_dependents(tmp_path: Path) -> None:
    run = Run(tmp_path, MIGRATE_THEN_API).start()
    run.host.last("migrate").exit(1)
    run.step()
    run.control("start", "api")  # starts what it needs first
    assert run.states()["migrate"] == "starting"
    run.host.last("migrate").exit(0)
    run.step()
    assert run.state("api") == "starting"


def test_dependents_start_only_once_the_dependency_listens(tmp_path: Path) -> None:
    run = Run(tmp_path, MIGRATE_THEN_API).start()
    run.host.last("migrate").exit(0)
    run.advance(5.0)
    assert run.host.spawned("web") == []
    run.host.last("api").listen(3001)
    run.advance(0.05)  # probed every 10-50 ms
    assert run.states() == {"migrate": "stopped", "api": "ready", "web": "starting"}


def test_a_listener_of_another_program_does_not_make_it_ready(tmp_path: Path) -> None:
    run = Run(tmp_path, MIGRATE_THEN_API).start()
    run.host.last("migrate").exit(0)
    run.host.busy_ports.add(3001)  # someone else's socket: not in the group's listeners
    run.advance(5.0)
    assert run.state("api") == "starting"


def test_a_dependency_that_crash_loops_leaves_its_dependents_waiting(tmp_path: Path) -> None:
    run = Run(tmp_path, MIGRATE_THEN_API).start()
    run.host.last("migrate").exit(0)
    run.step()
    for spawns in (1, 2, 3):
        run.host.last("api").exit(1)
        run.until(lambda n=spawns: len(run.host.spawned("api")) > n, 10, "api again")
    assert run.state("web") == "waiting"
    assert run.host.spawned("web") == []
    summary = [line for line in run.lines() if line.startswith("  ")]
    assert summary[-2:] == ["  api      crashing: exit 1, 2 restarts", "  web      waiting for api"]


def test_a_dependency_ready_after_a_crash_starts_its_dependents(tmp_path: Path) -> None:
    run = Run(tmp_path, MIGRATE_THEN_API).start()
    run.host.last("migrate").exit(0)
    run.step()
    run.host.last("api").exit(1)
    run.until(lambda: len(run.host.spawned("api")) == 2, 5, "api again")
    run.host.last("api").listen(3001)
    run.advance(0.05)
    assert run.state("web") == "starting"


READY_LOG = """
    [services.db]
    cmd = "db"
    port = false
    ready_log = "accepting connections"
    ready_timeout = 10
    [services.api]
    cmd = "api"
    port = 3001
    depends_on = ["db"]
"""


def test_ready_log_makes_a_service_ready_when_it_matches(tmp_path: Path) -> None:
    run = Run(tmp_path, READY_LOG).start()
    db = run.host.last("db")
    db.print("starting up")
    run.advance(1.0)
    assert run.state("db") == "starting"
    db.print("ready: accepting connections")
    run.step()
    assert run.states() == {"db": "ready", "api": "starting"}
    assert run.lines("db") == ["starting up", "ready: accepting connections"]


def test_ready_timeout_starts_the_dependents_anyway(tmp_path: Path) -> None:
    run = Run(tmp_path, READY_LOG).start()
    took = run.until(lambda: run.state("api") == "starting", 20, "api started")
    assert took == pytest.approx(10.0)
    assert run.state("db") == "running"
    assert (
        "db not ready after 10s (ready_log did not match); starting its dependents anyway"
        in run.lines()
    )


def test_a_service_that_listens_after_its_ready_timeout_becomes_ready(tmp_path: Path) -> None:
    run = Run(tmp_path, "[services.api]\ncmd = 'api'\nport = 3001\nready_timeout = 2\n").start()
    run.advance(2.0)
    assert run.state("api") == "running"
    assert (
        "api not ready after 2s (nothing listens on port 3001); starting its dependents anyway"
    ) in run.lines()
    run.host.last("api").listen(3001)
    run.advance(1.0)  # looked at once a second from then on
    assert run.state("api") == "ready"
    assert run.lines()[-1].startswith("api ready on http://127.0.0.1:3001 in ")


def test_a_worker_without_a_port_is_running_at_once(tmp_path: Path) -> None:
    toml = '[services.q]\ncmd = "q"\nport = false\n[services.w]\ncmd = "w"\nport = false\n'
    toml += 'depends_on = ["q"]\n'
    run = Run(tmp_path, toml).start()
    assert run.states() == {"q": "running", "w": "running"}


def test_a_server_that_ignores_port_is_found_where_it_listens(tmp_path: Path) -> None:
    run = Run(tmp_path, "[services.api]\ncmd = 'vite'\nport = 3001\n").start()
    audit.install(run.sup)
    run.host.last("api").listen(5173, "0.0.0.0")
    run.advance(0.5)  # another port counts once it stays the only one a moment
    assert run.state("api") == "ready"
    assert run.status("api")["url"] == "http://127.0.0.1:5173"
    assert run.status("api")["listening"] == ["0.0.0.0:5173"]
    warnings = run.status("api")["warnings"]
    assert any("reachable from your network" in w for w in warnings)
    assert any("ignored PORT=3001 and listens on 0.0.0.0:5173" in w for w in warnings)
