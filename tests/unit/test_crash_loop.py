"""Crash handling on the scripted host: each test scripts a fake child's exits (code, when, with
what output) on the fake clock and checks the states, the spawns the host was asked for and the
lines devup printed: backoff doubling, the crash-loop give-up, what starts a crashed service
again, restart policies, and a missing program that waits for a change instead of a timer."""

from __future__ import annotations

import errno
import re
from pathlib import Path

import pytest

from orchestrator.run.policy import BACKOFF_MAX_S, MAX_FAST_FAILURES

from .fakehost import Run

WORKER = """
    [services.worker]
    cmd = "python worker.py"
    port = false
"""


def crash_once(run: Run, name: str = "worker", code: int = 1) -> float:
    """Let the current child crash at once; the fake time until its next spawn (or give-up)."""
    spawns = len(run.host.spawned(name))
    run.host.last(name).exit(code)
    run.step()
    if run.state(name) != "restarting":
        return 0.0
    return run.until(lambda: len(run.host.spawned(name)) > spawns, 60, "spawned again")


def test_a_crashing_service_backs_off_doubling_then_is_marked_crashed(tmp_path: Path) -> None:
    run = Run(tmp_path, WORKER).start()
    waits = [crash_once(run) for _ in range(MAX_FAST_FAILURES)]
    assert waits[:-1] == pytest.approx([min(0.5 * 2**i, BACKOFF_MAX_S) for i in range(9)])
    assert run.state("worker") == "crashed"
    assert len(run.host.spawned("worker")) == MAX_FAST_FAILURES
    delays = [
        m.group(1)
        for m in (
            re.search(r"worker exited with code 1, restarting in (\S+)$", x) for x in run.lines()
        )
        if m
    ]
    assert delays == ["0.5s", "1s", "2s", "4s", "8s", "16s", "30s", "30s", "30s"]
    assert run.lines()[-1] == (
        "worker exited with code 1; it failed 10 times in a row within 10s of starting: crashed "
        "until a file change or `devup restart worker`"
    )


def test_a_crashed_service_stays_crashed_however_long_nothing_happens(tmp_path: Path) -> None:
    run = Run(tmp_path, WORKER).start()
    for _ in range(MAX_FAST_FAILURES):
        crash_once(run)
    run.advance(3600)
    assert run.state("worker") == "crashed"
    assert len(run.host.spawned("worker")) == MAX_FAST_FAILURES


def test_a_file_change_starts_a_crashed_service_again_with_a_fresh_backoff(
    tmp_path: Path,
) -> None:
    run = Run(tmp_path, WORKER).start()
    for _ in range(MAX_FAST_FAILURES):
        crash_once(run)
    run.change("worker", "worker.py")
    run.advance(0.5)  # debounce_ms
    assert run.state("worker") == "running"
    assert len(run.host.spawned("worker")) == MAX_FAST_FAILURES + 1
    assert "worker: worker.py changed, restarting" in run.lines()
    assert crash_once(run) == pytest.approx(0.5)  # counting from the first backoff again


def test_devup_restart_starts_a_crashed_service_again(tmp_path: Path) -> None:
    run = Run(tmp_path, WORKER).start()
    for _ in range(MAX_FAST_FAILURES):
        crash_once(run)
    run.control("restart", "worker")
    run.step()
    assert run.state("worker") == "running"
    assert run.status("worker")["restarts"] == MAX_FAST_FAILURES
    assert "worker: restart requested" in run.lines()


def test_a_service_that_ran_a_while_restarts_after_the_first_backoff(tmp_path: Path) -> None:
    run = Run(tmp_path, WORKER).start()
    for _ in range(4):
        crash_once(run)  # the next backoff would be 8 s
    run.advance(10.0)  # up longer than the fast-failure window
    assert crash_once(run) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("policy", "code", "restarts"),
    [
        ("on-failure", 1, True),
        ("on-failure", 0, False),
        ("always", 0, True),
        ("always", 1, True),
    ],
)
def test_the_restart_policy_decides_whether_an_exit_restarts(
    tmp_path: Path, policy: str, code: int, restarts: bool
) -> None:
    run = Run(tmp_path, WORKER + f'restart = "{policy}"\n').start()
    run.advance(1.0)
    run.host.last("worker").exit(code)
    run.advance(1.0)
    assert len(run.host.spawned("worker")) == (2 if restarts else 1)
    assert run.state("worker") == ("running" if restarts else "stopped")
    if not restarts:
        assert run.lines()[-1] == "worker exited with code 0"


def test_a_death_by_signal_is_named_and_restarted(tmp_path: Path) -> None:
    run = Run(tmp_path, WORKER).start()
    run.host.last("worker").die_from(9)
    run.step()
    assert "worker exited from SIGKILL, restarting in 0.5s" in run.lines()
    assert run.status("worker")["exit_code"] == 137


def test_an_exit_waits_for_the_last_output_before_it_is_reported(tmp_path: Path) -> None:
    run = Run(tmp_path, WORKER).start()
    child = run.host.last("worker")
    child.exit(1, close_output=False)
    run.step()
    assert run.state("worker") == "running"  # its last lines may still be in the pipe
    child.print("Traceback: boom")
    child.close_output()
    run.step()
    assert run.lines("worker") == ["Traceback: boom"]
    assert run.lines()[-1] == "worker exited with code 1, restarting in 0.5s"


def test_an_exit_whose_output_never_closes_is_reported_after_a_grace(tmp_path: Path) -> None:
    """A grandchild holding the pipe open must not hide the leader's exit for ever."""
    run = Run(tmp_path, WORKER).start()
    run.host.last("worker").exit(1, close_output=False)
    waited = run.until(lambda: run.state("worker") != "running", 5, "the exit reported")
    assert waited == pytest.approx(0.2)
    assert run.state("worker") == "restarting"


NOT_FOUND = """
    [services.api]
    cmd = "./serve.sh"
    ready_log = "serving"
"""


def test_a_missing_program_waits_for_a_change_not_a_timer(tmp_path: Path) -> None:
    run = Run(tmp_path, NOT_FOUND, ports={"api": 3001}).start()
    child = run.host.last("api")
    child.print("sh: 1: ./serve.sh: not found")
    child.exit(127)
    run.step()
    assert run.lines()[-3:] == [
        "api exited with code 127: ./serve.sh not found; not retrying until a change to its "
        "files or `devup restart api`",
        "0 services up, 1 not up in 0.00s",
        "  api  not found: ./serve.sh (exit 127), waiting for a change",
    ]
    assert run.state("api") == "crashed"
    run.advance(600)  # a timer would have retried long ago
    assert len(run.host.spawned("api")) == 1
    assert run.status("api")["restarts"] == 0
    run.change("api", "serve.sh")
    run.advance(0.5)
    assert len(run.host.spawned("api")) == 2
    assert run.state("api") == "starting"


def test_a_missing_program_without_watching_waits_for_devup_restart(tmp_path: Path) -> None:
    run = Run(tmp_path, NOT_FOUND, ports={"api": 3001}, watching=False).start()
    child = run.host.last("api")
    child.print("/bin/sh: 1: ./serve.sh: not found")
    child.exit(127)
    run.step()
    assert run.lines()[1].endswith("not retrying until `devup restart api`")
    assert run.lines()[-1] == "every service has exited (api failed)"
    assert run.exit_code == 1  # nothing will ever start it: the run ends


def test_a_command_that_cannot_be_spawned_is_not_retried(tmp_path: Path) -> None:
    run = Run(tmp_path, WORKER)
    run.host.spawn_errors["worker"] = OSError(errno.E2BIG, "Argument list too long")
    run.start()
    assert run.state("worker") == "stopped"
    assert run.status("worker")["exit_code"] == 127
    assert run.lines()[0] == (
        "worker could not start: Argument list too long; not retrying until a change to its "
        "files or `devup restart worker`"
    )
    run.advance(60)
    assert run.host.spawned("worker") == []
