"""File changes on the scripted host and clock: each test posts FilesChanged events at chosen fake
times and checks when the host was asked to stop and to spawn, how often, and devup's lines:
debounce, bursts folded into one restart, a change during a crash backoff, changes that must not
restart anything (waiting, shutting down, not watching), and a service that writes its own files."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from orchestrator.run.debounce import (
    BURST_EVENTS,
    BURST_QUIET_MAX_S,
    BURST_QUIET_S,
    GROWING_EVENTS,
)

from .fakehost import FakeMember, Run

API = """
    [devup]
    debounce_ms = 100
    [services.api]
    cmd = "python api.py"
    port = 3001
"""


def ready(tmp_path: Path, toml: str = API, **kwargs: object) -> Run:
    run = Run(tmp_path, toml, **kwargs).start()  # type: ignore[arg-type]
    run.host.last("api").listen(3001)
    run.advance(1.0)  # up longer than a burst's tail
    assert run.state("api") == "ready"
    return run


def test_a_change_stops_at_once_and_starts_after_the_debounce(tmp_path: Path) -> None:
    run = ready(tmp_path)
    run.change("api", "app.py")
    assert run.host.signals_to("api") == [int(signal.SIGTERM)]
    assert len(run.host.spawned("api")) == 1
    took = run.until(lambda: len(run.host.spawned("api")) == 2, 1, "started again")
    assert took == pytest.approx(0.1)
    assert run.lines().count("api: app.py changed, restarting") == 1
    assert run.status("api")["restarts"] == 1


def test_a_burst_of_changes_restarts_once_after_the_last(tmp_path: Path) -> None:
    run = ready(tmp_path)
    for i in range(5):
        run.change("api", f"f{i}.py")
        run.advance(0.05)  # each within the debounce of the one before
    assert len(run.host.spawned("api")) == 1
    took = run.until(lambda: len(run.host.spawned("api")) == 2, 1, "started again")
    assert took == pytest.approx(0.1 - 0.05)
    run.advance(2)
    assert len(run.host.spawned("api")) == 2
    assert sum("changed, restarting" in x for x in run.lines()) == 1


def test_a_long_burst_waits_for_a_longer_quiet(tmp_path: Path) -> None:
    run = ready(tmp_path)
    for i in range(BURST_EVENTS):
        run.change("api", f"src/f{i}.py")
    took = run.until(lambda: len(run.host.spawned("api")) == 2, 2, "started again")
    assert took == pytest.approx(BURST_QUIET_S)


@pytest.mark.parametrize(
    ("events", "quiet_s"),
    [
        (GROWING_EVENTS - 1, 0.1),  # a save or two: debounce_ms
        (GROWING_EVENTS, 0.2),  # a burst's first files, its writer starved midway
        (BURST_EVENTS, BURST_QUIET_S),
        (40, 0.4),
        (640, 0.8),
        (5000, BURST_QUIET_MAX_S),
    ],
)
def test_the_quiet_that_ends_a_burst_grows_with_its_size(
    tmp_path: Path, events: int, quiet_s: float
) -> None:
    run = ready(tmp_path)
    for i in range(events):
        run.change("api", f"src/f{i}.py")
    took = run.until(lambda: len(run.host.spawned("api")) == 2, 2, "started again")
    assert took == pytest.approx(quiet_s)


def test_a_big_burst_that_pauses_midway_restarts_once(tmp_path: Path) -> None:
    """bench/restart's 5,000-file burst on a loaded machine: its writer paused 281-323 ms midway,
    longer than the 300 ms of quiet that ended a burst; the rest of it restarted it again."""
    run = ready(tmp_path)
    for half in range(2):
        for i in range(500):
            run.change("api", f"src/f{half}-{i}.py")
            run.advance(0.001)
        if half == 0:
            run.advance(0.4)  # the writer starved for CPU
    run.advance(2)
    assert len(run.host.spawned("api")) == 2
    assert sum("changed, restarting" in x for x in run.lines()) == 1


def test_the_rest_of_a_big_burst_after_its_spawn_waits_for_that_bursts_quiet(
    tmp_path: Path,
) -> None:
    """A trickle of a big burst's last files after the new process started (the writer paused
    for longer than even the burst's quiet) is gathered as that burst: one more restart, not one
    per file."""
    run = ready(tmp_path)
    for i in range(1000):
        run.change("api", f"src/f{i}.py")
    run.until(lambda: len(run.host.spawned("api")) == 2, 2, "started again")
    for i in range(3):
        run.advance(0.5)
        run.change("api", f"src/late{i}.py")
    run.advance(3)
    assert len(run.host.spawned("api")) == 3
    assert sum("changed, restarting" in x for x in run.lines()) == 2


def test_a_change_during_a_long_crash_backoff_starts_it_sooner(tmp_path: Path) -> None:
    run = Run(tmp_path, API).start()
    for spawns in (1, 2, 3, 4):
        run.host.last("api").exit(1)
        run.until(lambda n=spawns: len(run.host.spawned("api")) > n, 10, "again")
    run.host.last("api").exit(1)
    run.step()
    assert run.lines()[-1].endswith("restarting in 8s")
    run.change("api", "app.py")
    took = run.until(lambda: len(run.host.spawned("api")) == 6, 10, "started again")
    assert took == pytest.approx(0.1)
    assert "api: app.py changed, restarting" in run.lines()


def test_a_change_to_a_waiting_service_does_nothing(tmp_path: Path) -> None:
    toml = API + '[services.web]\ncmd = "web"\nport = 3002\ndepends_on = ["api"]\n'
    run = Run(tmp_path, toml).start()
    run.change("web", "web.py")
    run.advance(1)
    assert run.host.spawned("web") == []
    assert run.state("web") == "waiting"


def test_a_change_during_shutdown_starts_nothing(tmp_path: Path) -> None:
    run = ready(tmp_path)
    run.host.last("api").ignores_term = True
    run.signal(signal.SIGINT)
    run.change("api", "app.py")
    run.until(lambda: run.exit_code is not None, 10, "the end of the run")
    assert len(run.host.spawned("api")) == 1


def test_without_watching_a_change_is_ignored(tmp_path: Path) -> None:
    run = ready(tmp_path, watching=False)
    run.change("api", "app.py")
    run.advance(1)
    assert run.host.signals == []
    assert len(run.host.spawned("api")) == 1


def test_a_stopped_service_starts_on_a_change(tmp_path: Path) -> None:
    run = ready(tmp_path)
    run.control("stop", "api")
    assert run.state("api") == "stopped"
    run.change("api", "app.py")
    run.advance(0.1)
    assert run.state("api") == "starting"
    assert len(run.host.spawned("api")) == 2


def test_a_file_its_own_process_writes_suspends_watching_it(tmp_path: Path) -> None:
    run = ready(tmp_path)
    writer = FakeMember(run.host.new_pid(), writing=(str(tmp_path / "out.json"),))
    run.host.last("api").members.append(writer)
    run.change("api", "out.json")
    run.advance(1)
    assert run.host.signals == []
    assert run.lines()[-1].startswith(
        f"api: out.json changed, and api writes it itself (pid {writer.pid} fake{writer.pid} "
        "holds it open for writing). Watching api is suspended"
    )
    run.change("api", "app.py")  # suspended: not even another file restarts it
    run.advance(1)
    assert len(run.host.spawned("api")) == 1
    run.control("restart", "api")
    assert "api: watching its files again" in run.lines()
    run.host.last("api").members.clear()
    run.advance(1)
    run.change("api", "app.py")
    run.advance(1)
    assert len(run.host.spawned("api")) == 3
