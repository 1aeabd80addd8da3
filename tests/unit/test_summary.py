"""The summary on the scripted host and clock: each test scripts which fake children become
ready, finish, or fail, and when, then checks the one table devup prints once every service is
up, done, failing or waiting on a failing one (and that it is printed once, at the right time)."""

from __future__ import annotations

from pathlib import Path

from .fakehost import Run

THREE = """
    [services.migrate]
    cmd = "python migrate.py"
    port = false
    restart = "no"
    [services.api]
    cmd = "python api.py"
    port = 3001
    depends_on = ["migrate"]
    [services.worker]
    cmd = "python worker.py"
    port = false
"""


def summaries(run: Run) -> list[list[str]]:
    found: list[list[str]] = []
    for line in run.lines():
        if " up" in line and " in " in line and not line.startswith(" "):
            found.append([line])
        elif line.startswith("  ") and found:
            found[-1].append(line)
    return found


def test_the_summary_waits_for_every_service_then_lists_them(tmp_path: Path) -> None:
    run = Run(tmp_path, THREE).start()
    run.advance(0.25)
    run.host.last("migrate").exit(0)
    run.step()
    assert summaries(run) == []  # api is still starting
    run.advance(1.0)
    run.host.last("api").listen(3001)
    run.until(lambda: run.state("api") == "ready", 1, "api ready")
    took = run.clock.now - 1000.0  # api was spawned at 0.25 s
    api, worker = run.host.last("api").pid, run.host.last("worker").pid
    assert summaries(run) == [
        [
            f"2 services up, 1 task done in {took:.2f}s",
            "  migrate  done (exit 0)",
            f"  api      http://127.0.0.1:3001   pid {api}    ready in {took - 0.25:.2f}s",
            f"  worker   (no port)               pid {worker}    running",
        ]
    ]


def test_the_summary_is_printed_once_and_later_readiness_gets_its_own_line(
    tmp_path: Path,
) -> None:
    run = Run(tmp_path, THREE).start()
    run.host.last("migrate").exit(0)
    run.step()
    run.host.last("api").listen(3001)
    run.advance(0.05)
    run.host.last("api").exit(1)
    run.until(lambda: len(run.host.spawned("api")) == 2, 5, "api again")
    run.host.last("api").listen(3001)
    run.advance(0.05)
    assert len(summaries(run)) == 1
    assert run.lines()[-1].startswith("api ready on http://127.0.0.1:3001 in ")


def test_the_summary_waits_out_one_fast_failure(tmp_path: Path) -> None:
    """One crash is often a hiccup a restart cures (a port taken for a moment)."""
    run = Run(tmp_path, THREE).start()
    run.host.last("migrate").exit(0)
    run.step()
    run.host.last("api").exit(1)
    run.until(lambda: len(run.host.spawned("api")) == 2, 5, "api again")
    assert summaries(run) == []
    run.host.last("api").listen(3001)
    run.advance(0.05)
    [summary] = summaries(run)
    assert summary[0].startswith("2 services up, 1 task done in ")


def test_the_summary_does_not_wait_for_a_crash_loop(tmp_path: Path) -> None:
    run = Run(tmp_path, THREE).start()
    run.host.last("migrate").exit(0)
    run.step()
    run.host.last("api").exit(1)
    run.until(lambda: len(run.host.spawned("api")) == 2, 5, "api again")
    run.host.last("api").exit(1)
    run.step()
    [summary] = summaries(run)
    assert summary[0] == "1 service up, 1 task done, 1 not up in 0.50s"
    assert summary[2] == "  api      crashing: exit 1, 2 restarts"


def test_the_summary_of_a_failed_task_and_what_waited_for_it(tmp_path: Path) -> None:
    run = Run(tmp_path, THREE).start()
    run.host.last("migrate").exit(2)
    run.step()
    [summary] = summaries(run)
    assert summary[:3] == [
        "1 service up, 2 not up in 0.00s",
        "  migrate  failed: exit 2",
        "  api      not started",
    ]
