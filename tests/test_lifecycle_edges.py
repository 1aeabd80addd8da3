"""Lifecycle edges found in review: each once crashed devup with a TransitionError, hung a
restart, or leaked a process or a variable. Real devup, real processes."""

from __future__ import annotations

import signal
import sys

from conftest import REPO, DevupProcess, Project, marked_processes, wait_for

SERVER = f"{sys.executable} {REPO / 'tests' / 'fixtures' / 'server.py'}"
# A shell whose background child ignores SIGTERM and outlives it: leftovers in the group.
STUBBORN_CHILD = "(trap '' TERM; exec sleep 30) &"


def test_start_of_a_service_whose_dependency_is_stopped_too(
    project: Project, running: list[DevupProcess]
) -> None:
    project.write(f"""
        [services.db]
        cmd = "{SERVER}"
        [services.api]
        cmd = "{SERVER}"
        depends_on = ["db"]
    """)
    run = project.start("--no-watch")
    running.append(run)
    run.expect_line(r"2 services up")
    assert project.devup("stop", "api", "db").returncode == 0
    started = project.devup("start", "api")
    assert started.returncode == 0, started.stdout + started.stderr
    states = project.status()["services"]
    assert states["db"]["state"] == "ready" and states["api"]["state"] == "ready"
    assert run.proc.poll() is None
    assert run.stop() == 130


def test_ctrl_c_stops_what_a_finished_task_left_in_its_group(
    project: Project, running: list[DevupProcess], no_leftover_processes: str
) -> None:
    project.write(
        f"""
        [services.task]
        cmd = "{STUBBORN_CHILD} exit 0"
        port = false
        restart = "no"
        [services.api]
        cmd = "{SERVER}"
    """,
        devup="stop_timeout = 1\n",
    )
    run = project.start("--no-watch")
    running.append(run)
    run.expect_line(r"task: processes of its group outlived it, stopping them")
    run.signal(signal.SIGINT)
    assert run.wait() == 130
    assert not any("Traceback" in line for line in run.lines), "\n".join(run.lines)
    assert marked_processes(no_leftover_processes) == []


def test_a_crash_restart_waits_for_slow_leftovers_then_starts(
    project: Project, running: list[DevupProcess]
) -> None:
    project.write(
        f"""
        [services.worker]
        cmd = "{STUBBORN_CHILD} sleep 0.3; exit 1"
        port = false
    """,
        devup="stop_timeout = 1\n",
    )
    run = project.start("--no-watch")
    running.append(run)
    run.expect_line(r"worker exited with code 1, restarting in")
    run.expect_line(r"worker: its leftovers did not stop within 1s, sending SIGKILL", timeout=10)
    run.expect_line(r"worker started \(pid \d+\)", timeout=10)
    assert run.stop() == 130


def test_a_stale_port_or_url_from_outside_never_reaches_a_service(project: Project) -> None:
    project.write("""
        [services.worker]
        cmd = "true"
        port = false
    """)
    result = project.devup(
        "run",
        "worker",
        "--",
        "sh",
        "-c",
        'echo "[${PORT-unset}] [${WORKER_URL-unset}]"',
        env={**__import__("os").environ, "PORT": "1234", "WORKER_URL": "http://stale"},
    )
    assert result.stdout.strip() == "[unset] [unset]", result.stdout + result.stderr


def test_restart_of_a_task_that_finishes_with_0_succeeds(
    project: Project, running: list[DevupProcess]
) -> None:
    project.write(f"""
        [services.migrate]
        cmd = "true"
        port = false
        restart = "no"
        [services.api]
        cmd = "{SERVER}"
    """)
    run = project.start("--no-watch")
    running.append(run)
    run.expect_line(r"1 service up, 1 task done")
    result = project.devup("restart", "migrate")
    assert result.returncode == 0, result.stdout + result.stderr
    wait_for(
        lambda: project.status()["services"]["migrate"]["restarts"] == 1,
        10,
        what="migrate restarted",
    )
    assert run.stop() == 130
