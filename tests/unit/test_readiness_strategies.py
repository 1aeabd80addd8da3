"""Readiness is one strategy per spawn, chosen from the spec (run/readiness.py): ready_log wins
over a port, a port over a task's exit, and a worker with none of them is up at once. The
behaviours each strategy drives are in test_dependencies.py; here, the choice and the corner a
choice decides (a task proved by its log never times out)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.run.readiness import LogMatches, PortListening, TaskExit, UpOnceRunning

from .fakehost import Run


@pytest.mark.parametrize(
    ("table", "strategy"),
    [
        ('port = 3001\nready_log = "serving"\n', LogMatches),
        ("port = 3001\n", PortListening),
        ('port = false\nrestart = "no"\n', TaskExit),
        ('port = false\nrestart = "no"\nready_log = "migrated"\n', LogMatches),
        ("port = false\n", UpOnceRunning),
    ],
)
def test_the_strategy_is_chosen_from_the_spec(tmp_path: Path, table: str, strategy: type) -> None:
    run = Run(tmp_path, '[services.svc]\ncmd = "svc"\n' + table).start()
    assert type(run.sup.services["svc"].spawn.readiness) is strategy


def test_each_spawn_gets_a_fresh_strategy(tmp_path: Path) -> None:
    run = Run(tmp_path, '[services.api]\ncmd = "api"\nport = 3001\n').start()
    first = run.sup.services["api"].spawn
    run.host.last("api").listen(3001)
    run.until(lambda: run.state("api") == "ready", 1, "api ready")
    run.control("restart", "api")
    run.until(lambda: run.state("api") == "starting", 5, "api started again")
    second = run.sup.services["api"].spawn
    assert (first.generation, second.generation) == (1, 2)
    assert second.readiness is not first.readiness and second.ready_after_s is None


def test_a_task_proved_by_its_log_is_never_timed_out(tmp_path: Path) -> None:
    run = Run(
        tmp_path,
        """
        [services.migrate]
        cmd = "migrate"
        port = false
        restart = "no"
        ready_log = "migrated"
        ready_timeout = 2
        """,
    ).start()
    run.advance(30)
    assert run.state("migrate") == "starting"
    assert not run.saw("not ready after")
    run.host.last("migrate").print("migrated")
    run.step()
    assert run.state("migrate") == "ready"
