"""`devup up --detach` driven as a script or an agent drives it: no terminal, no stdin, real
services; and `devup url` / `devup port`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import psutil
import pytest
from conftest import DEVUP, REPO, Project, py, wait_for

from orchestrator.system import runstate

SERVER = f"{sys.executable} {REPO / 'tests' / 'fixtures' / 'server.py'}"
WORKER = py("import time\nprint('working', flush=True)\nwhile True: time.sleep(1)")
THREE = f"""
    [services.api]
    cmd = "{SERVER}"
    [services.web]
    cmd = "{SERVER}"
    depends_on = ["api"]
    [services.admin]
    cmd = "{SERVER}"
    depends_on = ["api"]
"""


def detached(project: Project, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`devup ARGS` as a script or agent runs it: no terminal, stdin closed, its own session;
    returns only once devup and everything holding its output pipes are done with them."""
    return subprocess.run(
        [*DEVUP, *args],
        cwd=project.root,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,
    )


def answers(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(json.loads(response.read())["pid"])


@pytest.fixture
def stopped_after(project: Project) -> Iterator[Project]:
    """The project; whatever detached run a failing test left up is stopped."""
    yield project
    if runstate.running_pid(project.root) is not None:
        project.devup("stop")


def test_up_detach_returns_when_ready_is_idempotent_and_stop_leaves_nothing(
    stopped_after: Project,
) -> None:
    project = stopped_after
    project.write(THREE)

    first = detached(project, "up", "-d")
    assert first.returncode == 0, first.stderr
    assert "started in the background" in first.stdout
    doc = project.status()
    devup_pid = doc["pid"]
    services = doc["services"]
    assert set(services) == {"api", "web", "admin"}
    for name, svc in services.items():
        assert svc["state"] == "ready", name
        assert svc["url"] in first.stdout, name
        assert answers(svc["url"]) == svc["pid"], name  # every URL answers, from that service
    devup = psutil.Process(devup_pid)
    assert devup.terminal() is None and os.getsid(devup_pid) == devup_pid  # own session, no tty

    second = detached(project, "up", "-d")
    assert second.returncode == 0, second.stderr
    assert "already running" in second.stdout
    again = project.status()
    assert again["pid"] == devup_pid  # no new devup ...
    assert {n: s["pid"] for n, s in again["services"].items()} == {
        n: s["pid"] for n, s in services.items()
    }  # ... and no service restarted
    for svc in services.values():
        assert svc["url"] in second.stdout

    stop = detached(project, "stop")
    assert stop.returncode == 0, stop.stderr
    wait_for(lambda: not _alive(devup), 10, what="the detached devup to exit")
    for svc in services.values():
        assert not psutil.pid_exists(svc["pid"]) or psutil.Process(svc["pid"]).status() == "zombie"


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_up_detach_starts_what_devup_stop_held_and_calls_it_no_failure(
    stopped_after: Project,
) -> None:
    project = stopped_after
    project.write(THREE)
    assert detached(project, "up", "-d").returncode == 0
    assert project.devup("stop", "web").returncode == 0
    held = project.status()["services"]["web"]
    assert held["state"] == "stopped" and held["held"] and not held["failing"]

    again = detached(project, "up", "-d")  # was: exit 1, "web failed to start: exit code 143"
    assert again.returncode == 0, again.stdout + again.stderr
    web = project.status()["services"]["web"]
    assert web["state"] == "ready" and not web["held"]
    assert answers(web["url"]) == web["pid"]


def test_up_detach_run_four_times_at_once_gives_one_run_and_four_successes(
    stopped_after: Project,
) -> None:
    """Agents in one worktree racing: one background devup wins the run lock; the others wait
    on its run and report it, and its pid file is the winner's."""
    project = stopped_after
    project.write(THREE)
    racing = [
        subprocess.Popen(
            [*DEVUP, "up", "-d"],
            cwd=project.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for _ in range(4)
    ]
    results = [(p.wait(60), *p.communicate()) for p in racing]
    assert [code for code, _out, _err in results] == [0, 0, 0, 0], results
    pid = project.status()["pid"]
    assert (project.root / ".devup" / "detached.pid").read_text().strip() == str(pid)
    refused = project.devup("up")
    assert "running in the background" in refused.stderr, refused.stderr


def test_up_detach_json_is_the_summary(stopped_after: Project) -> None:
    project = stopped_after
    project.write(THREE)
    result = detached(project, "up", "-d", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["started"] is True
    assert list(doc["services"]) == ["api", "web", "admin"]
    for name, svc in doc["services"].items():
        assert svc["name"] == name and svc["state"] == "ready"
        assert svc["url"] == f"http://127.0.0.1:{svc['port']}"
    # Given a stdin that never ends, it never reads it: it answers and exits all the same.
    with subprocess.Popen(
        [*DEVUP, "up", "-d", "--json"],
        cwd=project.root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as second:
        assert second.wait(timeout=60) == 0
        assert second.stdout is not None
        again = json.loads(second.stdout.read())
        assert second.stdin is not None
        second.stdin.close()
    assert again["started"] is False and again["services"] == doc["services"]


@pytest.mark.parametrize("restart", ["no", "on-failure"])
def test_a_service_that_fails_to_start_makes_up_detach_exit_1_with_its_output(
    stopped_after: Project, restart: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVUP_BACKOFF_FIRST_S", "0.05")  # crash-looping is two fast exits
    project = stopped_after
    boom = py("import sys\nprint('cannot open config.yml', flush=True)\nsys.exit(3)")
    project.write(
        f"""
        [services.api]
        cmd = "{SERVER}"
        [services.broken]
        cmd = '''{boom}'''
        restart = "{restart}"
        """
    )
    result = detached(project, "up", "-d")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "broken failed to start: exit code 3" in result.stderr
    assert "cannot open config.yml" in result.stderr
    assert "devup stop" in result.stderr  # the run goes on; how to end it is said
    assert runstate.running_pid(project.root) is not None

    again = detached(project, "up", "-d", "--json")  # the same verdict on the run that is up
    assert again.returncode == 1, again.stderr
    doc = json.loads(again.stdout)
    assert doc["ok"] is False and doc["started"] is False
    assert doc["failed"]["name"] == "broken" and doc["failed"]["exit_code"] == 3
    assert any("cannot open config.yml" in line for line in doc["failed"]["lines"])
    assert doc["services"]["api"]["state"] == "ready"


def test_up_detach_names_a_service_the_running_devup_lacks(stopped_after: Project) -> None:
    project = stopped_after
    project.write(THREE)
    assert detached(project, "up", "-d", "web").returncode == 0
    result = detached(project, "up", "-d", "admin")
    assert result.returncode == 1
    assert "was already running" in result.stderr and "without admin" in result.stderr


def test_up_detach_says_what_it_still_waits_on_at_the_timeout(stopped_after: Project) -> None:
    project = stopped_after
    sleeper = py("import time\nwhile True: time.sleep(1)")
    project.write(
        f"""
        [services.slow]
        cmd = '''{sleeper}'''
        [services.web]
        cmd = "{SERVER}"
        depends_on = ["slow"]
        """
    )
    result = detached(project, "up", "-d", "--timeout", "1")
    assert result.returncode == 1, result.stdout + result.stderr
    port = project.status()["services"]["slow"]["port"]
    assert f"slow starting, waits for something to listen on port {port}" in result.stderr
    assert "web waits for slow" in result.stderr


@pytest.mark.parametrize("value", ["0", "-5", "soon", "1e999", ""])
def test_a_bad_timeout_is_a_usage_error(project: Project, value: str) -> None:
    project.write(THREE)
    result = detached(project, "up", "-d", "--timeout", value)
    assert result.returncode == 2
    assert result.stderr.splitlines()[0].startswith("devup: error: --timeout:")
    assert "Traceback" not in result.stderr
    assert runstate.running_pid(project.root) is None
    assert not (project.root / ".devup" / "detached.err").exists()  # nothing was started


def test_a_foreground_up_while_a_detached_run_is_up_points_to_it(stopped_after: Project) -> None:
    project = stopped_after
    project.write(THREE)
    assert detached(project, "up", "-d").returncode == 0
    result = detached(project, "up")
    assert result.returncode == 1
    pid = project.status()["pid"]
    assert f"running in the background in this project (pid {pid}" in result.stderr
    assert "devup logs -f" in result.stderr and "devup stop" in result.stderr


def test_a_killed_detached_devup_is_cleaned_up_by_the_next_up(stopped_after: Project) -> None:
    project = stopped_after
    project.write(THREE)
    assert detached(project, "up", "-d").returncode == 0
    before = project.status()
    old = [psutil.Process(s["pid"]) for s in before["services"].values()]
    os.kill(before["pid"], signal.SIGKILL)
    wait_for(lambda: runstate.running_pid(project.root) is None, 10, what="the run lock to drop")
    assert all(_alive(p) for p in old)  # its services outlived it

    result = detached(project, "up", "-d")
    assert result.returncode == 0, result.stderr
    assert not any(_alive(p) for p in old)
    after = project.status()
    assert after["pid"] != before["pid"]
    log = (project.root / ".devup" / "logs" / "devup.log").read_text()
    assert f"left by a killed devup (pid {before['pid']})" in log
    for svc in after["services"].values():
        assert answers(svc["url"]) == svc["pid"]


# -- url and port ------------------------------------------------------------------------------


def test_url_and_port_without_a_run_are_the_planned_ones(project: Project) -> None:
    project.write(THREE + "[services.worker]\ncmd = 'sleep 1'\nport = false\n")
    plan = json.loads(project.devup("ports", "--json").stdout)["services"]
    url = project.devup("url", "web")
    port = project.devup("port", "web")
    assert (url.returncode, port.returncode) == (0, 0), url.stderr + port.stderr
    assert url.stdout == plan["web"]["url"] + "\n"
    assert port.stdout == f"{plan['web']['port']}\n"

    unknown = project.devup("url", "wbe")
    assert unknown.returncode == 2
    assert unknown.stderr.splitlines() == [
        'devup: error: unknown service "wbe"',
        'hint: did you mean "web"?',
    ]
    no_port = project.devup("port", "worker")
    assert no_port.returncode == 1 and no_port.stdout == ""
    assert no_port.stderr.startswith("devup: error: worker has no port")


def test_url_while_running_is_where_the_service_really_answers(
    stopped_after: Project, pool: tuple[int, int]
) -> None:
    project = stopped_after
    elsewhere = pool[1]  # not PORT: a server that hard-codes its port
    project.write(
        f"""
        [services.api]
        cmd = "{SERVER}"
        [services.legacy]
        cmd = "{SERVER} --port {elsewhere}"
        """
    )
    planned = project.devup("port", "legacy").stdout.strip()
    assert planned != str(elsewhere)
    assert detached(project, "up", "-d").returncode == 0
    doc = project.status()
    for what, expected in (("url", f"http://127.0.0.1:{elsewhere}"), ("port", str(elsewhere))):
        # Both paths: the click-free one (entry.py), and the CLI's (-f takes the CLI).
        for args in ((what, "legacy"), ("-f", "devports.toml", what, "legacy")):
            result = project.devup(*args)
            assert (result.returncode, result.stdout) == (0, expected + "\n"), result.stderr
    api = project.devup("url", "api").stdout.strip()
    assert api == doc["services"]["api"]["url"]
    assert answers(api) == doc["services"]["api"]["pid"]
    unknown = project.devup("port", "lgeacy")
    assert unknown.returncode == 2 and 'did you mean "legacy"?' in unknown.stderr


def test_url_of_a_procfile_service_names_its_lines(project: Project) -> None:
    (project.root / "Procfile").write_text("web: sleep 9\nadmin: sleep 9\n")
    project.write('[services.shop]\nprocfile = "Procfile"\nport = "auto"\n')
    result = project.devup("url", "shop")
    assert result.returncode == 2
    assert "shop.web, shop.admin" in result.stderr
    assert project.devup("url", "shop.admin").returncode == 0


def test_a_run_that_cannot_start_makes_up_detach_exit_with_its_error(
    project: Project, pool: tuple[int, int]
) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", pool[0]))
        holder.listen()
        project.write(f"[services.api]\ncmd = 'sleep 9'\nport = {pool[0]}\nstrict_port = true\n")
        result = detached(project, "up", "-d")
        as_json = detached(project, "up", "-d", "--json")
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith(f"devup: error: api: port {pool[0]} is held by")
    assert "strict_port" in result.stderr and "Traceback" not in result.stderr
    doc = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and doc["ok"] is False and "strict_port" in doc["error"]
    assert runstate.running_pid(project.root) is None


def test_up_detach_no_watch_of_tasks_that_all_finish_is_a_success(project: Project) -> None:
    project.write('[services.migrate]\ncmd = "echo migrated"\nport = false\nrestart = "no"\n')
    result = detached(project, "up", "-d", "--no-watch")
    assert result.returncode == 0, result.stderr
    wait_for(lambda: runstate.running_pid(project.root) is None, 10, what="the run to end")


def test_up_detach_where_devup_cannot_keep_its_state_is_one_error_line(project: Project) -> None:
    project.write(THREE)
    (project.root / ".devup").write_text("not a folder\n")
    result = detached(project, "up", "-d")
    assert result.returncode == 1
    assert result.stderr.startswith("devup: error: cannot create ")
    assert "Traceback" not in result.stderr


def test_up_detach_returns_like_the_summary_when_a_service_is_not_ready_by_its_ready_timeout(
    stopped_after: Project,
) -> None:
    """A service past its ready_timeout is "running": the run's summary counts it as up and its
    dependents start, so `up -d` returns then too (exit 0), naming it as not ready, rather than
    waiting out --timeout."""
    project = stopped_after
    sleeper = py("import time\nprint('warming up', flush=True)\nwhile True: time.sleep(1)")
    project.write(
        f"""
        [services.slow]
        cmd = '''{sleeper}'''
        ready_timeout = 1
        [services.web]
        cmd = "{SERVER}"
        depends_on = ["slow"]
        """
    )
    result = detached(project, "up", "-d", "--timeout", "30")
    assert result.returncode == 0, result.stdout + result.stderr
    port = project.status()["services"]["slow"]["port"]
    assert "2 services up" in result.stdout
    assert [line.split() for line in result.stdout.splitlines() if "slow" in line][0][-2:] == [
        "not",
        "ready",
    ]
    assert (
        f"devup: warning: slow is not ready: running, waits for something to listen on port {port}"
        " (its ready_timeout has passed)" in result.stderr
    )
    doc = json.loads(detached(project, "up", "-d", "--json").stdout)
    assert doc["ok"] is True and doc["services"]["slow"]["state"] == "running"
    assert doc["services"]["web"]["state"] == "ready" and list(doc["not_ready"]) == ["slow"]


def test_the_background_devups_stderr_is_capped_as_the_log_files_are(
    stopped_after: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up -d --debug` traces into .devup/detached.err for as long as the run lasts: past the log
    files' cap (DEVUP_LOG_MAX_MB) it is rotated to detached.err.1, as NAME.log is."""
    from orchestrator.control import client
    from orchestrator.output.logfiles import log_cap_bytes

    monkeypatch.setenv("DEVUP_LOG_MAX_MB", "0.001")
    cap = log_cap_bytes()
    project = stopped_after
    project.write(f"""
        [services.api]
        cmd = "{SERVER}"
    """)
    result = detached(project, "up", "-d", "--debug")
    assert result.returncode == 0, result.stderr
    err = project.root / ".devup" / "detached.err"
    for _ in range(100):  # each is traced: "devup[debug] +1.234s event ControlRequested status"
        client.check_answer(client.request(project.root, "status"))
    # Traced before it was answered: the last one is in the file by now.
    assert "event ControlRequested status" in err.read_text()
    rotated = err.with_name("detached.err.1")
    assert rotated.exists()
    longest = max(len(line) + 1 for line in rotated.read_text().splitlines())
    assert err.stat().st_size < cap + longest and rotated.stat().st_size < cap + longest
    assert oct(err.stat().st_mode & 0o777) == "0o600" == oct(rotated.stat().st_mode & 0o777)
    assert project.devup("stop").returncode == 0
