"""`devup up` end to end: real processes, real sockets, real signals."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from conftest import REPO, DevupProcess, Project, marked_processes, py

from orchestrator.ports.allocation import is_port_free

SERVER = f"{sys.executable} {REPO / 'tests' / 'fixtures' / 'server.py'}"


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body.decode()


def test_example_monorepo_serves_every_url_and_ctrl_c_leaves_nothing(
    tmp_path: Path, running: list[DevupProcess], no_leftover_processes: str
) -> None:
    example = tmp_path / "monorepo"
    shutil.copytree(
        REPO / "examples" / "monorepo", example, ignore=shutil.ignore_patterns(".devup", "var")
    )
    run = DevupProcess(example, ["--no-watch"])
    running.append(run)
    run.expect_line(r"devup\s+\| 5 services up, 1 task done in", timeout=30)

    ports = subprocess.run(
        [sys.executable, "-m", "orchestrator", "ports", "--json"],
        cwd=example,
        capture_output=True,
        text=True,
        check=True,
    )
    services = json.loads(ports.stdout)["services"]
    assert set(services) == {"migrate", "api", "web", "worker", "shop.storefront", "shop.admin"}
    assert services["worker"]["port"] is None and services["migrate"]["url"] is None
    urls = {name: svc["url"] for name, svc in services.items() if svc["url"]}
    api = json.loads(get(urls["api"] + "/items"))
    assert api["items"] == ["apples", "bread", "coffee"]
    page = get(urls["web"])
    assert "<li>apples</li>" in page and "hello from the api" in page  # fetched via API_URL
    assert "storefront" in get(urls["shop.storefront"]) and "admin" in get(urls["shop.admin"])

    run.signal(signal.SIGINT)
    assert run.wait() == 130
    assert run.lines[-1].endswith("s") and "all services stopped in" in run.lines[-1]
    assert marked_processes(no_leftover_processes) == []
    for name, svc in services.items():
        if svc["port"] is not None:
            assert is_port_free(svc["port"]), f"{name}'s port {svc['port']} still held"


def test_dependents_start_only_once_their_dependency_listens(
    project: Project, running: list[DevupProcess]
) -> None:
    # db takes half a second before it listens; api must not start before that.
    project.write(f"""
        [services.db]
        cmd = '''{py("import time; time.sleep(0.5)")} && {SERVER}'''
        [services.api]
        cmd = "{SERVER}"
        depends_on = ["db"]
    """)
    run = project.start("--no-watch")
    running.append(run)
    run.expect_line(r"db started")
    run.expect_line(r"api started")
    run.expect_line(r"2 services up")
    # Both uptimes are read at the same instant: api was spawned at least db's 0.5 s of sleep
    # after db (db's "serving on" line may be printed after "api started": it follows the listen).
    services = json.loads(project.devup("status", "--json").stdout)["services"]
    assert services["db"]["uptime_s"] - services["api"]["uptime_s"] >= 0.5
    assert run.stop() == 130


def test_a_wrapper_shell_and_its_grandchild_are_both_stopped(
    project: Project, running: list[DevupProcess], no_leftover_processes: str
) -> None:
    # `; true` keeps sh from exec'ing python, so the server is a grandchild of devup.
    project.write(f"""
        [services.api]
        cmd = "{SERVER}; true"
    """)
    run = project.start("--no-watch")
    running.append(run)
    serving, _ = run.expect_lines(r"api\s+\| serving on \S+ pid (\d+)", r"1 service up")
    pid = int(serving.group(1))
    started = next(line for line in run.lines if "api started" in line)
    shell_pid = int(started.split("pid ")[1].split(",")[0])
    assert psutil.Process(pid).ppid() == shell_pid
    assert run.stop() == 130
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert marked_processes(no_leftover_processes) == []


def start_stubborn(
    project: Project, running: list[DevupProcess], stop_timeout_s: int
) -> DevupProcess:
    """devup running one service that ignores SIGTERM, once it is up."""
    project.write(
        f"""
        [services.stubborn]
        cmd = "{SERVER} --ignore-term"
    """,
        devup=f"stop_timeout = {stop_timeout_s}\n",
    )
    run = project.start("--no-watch")
    running.append(run)
    run.expect_line(r"1 service up")
    return run


def test_a_child_ignoring_sigterm_is_killed_after_stop_timeout(
    project: Project, running: list[DevupProcess]
) -> None:
    run = start_stubborn(project, running, stop_timeout_s=1)
    started = time.monotonic()
    run.signal(signal.SIGTERM)
    run.expect_line(r"stubborn did not stop within 1s, sending SIGKILL")
    assert run.wait() == 143
    assert 0.9 <= time.monotonic() - started < 3


def test_sighup_exits_129_and_a_second_ctrl_c_kills_at_once(
    project: Project, running: list[DevupProcess]
) -> None:
    run = start_stubborn(project, running, stop_timeout_s=30)
    run.signal(signal.SIGINT)
    run.expect_line(r"SIGINT received")
    started = time.monotonic()
    run.signal(signal.SIGINT)
    assert run.wait() == 130
    assert time.monotonic() - started < 5  # far below stop_timeout: killed, not waited for

    run2 = project.start("--no-watch")
    running.append(run2)
    run2.expect_line(r"1 service up")
    run2.signal(signal.SIGHUP)
    run2.signal(signal.SIGINT)  # a second signal kills the stubborn child
    assert run2.wait() == 129


def _signal_thread(pid: int, tid: int, sig: int) -> None:
    """tgkill: `sig` to one thread of process `pid`, as the kernel picks one for a signal sent to
    the process (Python's os has no tgkill; glibc has had it since 2.30)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.tgkill(pid, tid, sig) != 0:
        raise OSError(ctypes.get_errno(), "tgkill")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="threads are /proc/PID/task")
def test_sighup_and_sigint_taken_by_devups_other_threads_are_handled(
    project: Project, running: list[DevupProcess]
) -> None:
    """The kernel gives a signal sent to devup to any of its threads: the second of two sent back
    to back often lands on a reader, writer or control thread, where CPython only sets a flag."""
    run = start_stubborn(project, running, stop_timeout_s=30)
    pid = run.proc.pid
    others = sorted(int(tid) for tid in os.listdir(f"/proc/{pid}/task") if int(tid) != pid)
    assert others, "devup runs threads besides its main one"
    _signal_thread(pid, others[0], signal.SIGHUP)
    run.expect_line(r"SIGHUP received, stopping all services")
    _signal_thread(pid, others[-1], signal.SIGINT)
    run.expect_line(r"second Ctrl-C: killing everything now")
    assert run.wait() == 129  # not after stop_timeout: the stubborn child was killed


def test_an_exiting_service_is_reported_and_the_others_keep_running(
    project: Project, running: list[DevupProcess]
) -> None:
    project.write(f"""
        [services.api]
        cmd = "{SERVER}"
        [services.flaky]
        cmd = '''{py("import sys; print('bye', end=''); sys.exit(3)")}'''
        port = false
        restart = "no"
    """)
    run = project.start("--no-watch")
    running.append(run)
    pid = int(run.expect_line(r"api started \(pid (\d+)").group(1))
    run.expect_line(r"1 service up")  # after every service settled, flaky's exit included
    assert any(line.endswith("flaky | bye") for line in run.lines)  # a last line with no newline
    assert any(line.endswith("flaky failed: exited with code 3") for line in run.lines)
    assert psutil.Process(pid).is_running()
    assert run.stop() == 130


def test_devup_exits_once_every_service_has_exited_without_watching(project: Project) -> None:
    project.write(f"""
        [services.one]
        cmd = '''{py("print('one done')")}'''
        port = false
        restart = "no"
        [services.two]
        cmd = '''{py("import sys; sys.exit(2)")}'''
        port = false
        restart = "no"
    """)
    result = project.devup("--no-watch", "--no-color")
    assert result.returncode == 1, result.stdout
    assert "two failed: exited with code 2" in result.stdout
    assert "every service has exited (two failed)" in result.stdout

    project.write(f"""
        [services.one]
        cmd = '''{py("print('one done')")}'''
        port = false
        restart = "no"
    """)
    assert project.devup("--no-watch").returncode == 0


def test_output_format_and_private_log_files(project: Project) -> None:
    project.write(f"""
        [services.a-long-name]
        cmd = '''{py("print('hello'); print('x' * 70000)")}'''
        port = false
        restart = "no"
    """)
    result = project.devup("--no-watch")
    lines = result.stdout.splitlines()
    hello = [line for line in lines if line.endswith("| hello")][0]
    assert __import__("re").fullmatch(r"\d\d:\d\d:\d\d a-long-name \| hello", hello)
    devup_line = [line for line in lines if " devup " in line][0]
    assert devup_line[9 : 9 + len("a-long-name")] == "devup".ljust(len("a-long-name"))
    cut = [line for line in lines if "xxxx" in line][0]
    assert cut.endswith("[devup: line cut at 64 KiB]") and len(cut) < 66000
    logs = project.root / ".devup" / "logs"
    assert stat.S_IMODE(logs.stat().st_mode) == 0o700
    log = logs / "a-long-name.log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert log.read_text().splitlines()[0].endswith("a-long-name | hello")
    assert "\x1b[" not in result.stdout  # not a terminal: no colour


SHOW_ENV = """
import json, os
wanted = ("PORT", "HOST", "DEVUP_SERVICE", "PYTHONUNBUFFERED", "PUBLIC", "FORCE_COLOR")
keys = sorted(k for k in os.environ if k.endswith(("_PORT", "_URL")) or k in wanted)
print(json.dumps({k: os.environ[k] for k in keys}))
"""


def test_the_environment_a_service_gets(project: Project) -> None:
    project.write(
        f"""
        [services.api]
        cmd = "{SERVER}"
        [services.shop]
        procfile = "Procfile"
        port = false
        restart = "no"
        env = {{ PUBLIC = "${{API_URL}}/v1" }}
        """,
        Procfile=f"show: {sys.executable} show_env.py\n",
        **{"show_env.py": SHOW_ENV},
    )
    result = project.devup("up", "--no-watch", "shop")
    assert result.returncode == 0, result.stdout + result.stderr
    line = [line for line in result.stdout.splitlines() if "shop.show " in line and "{" in line][0]
    env = json.loads(line.split("| ", 1)[1])
    api_port = env["API_PORT"]
    assert env["API_URL"] == f"http://127.0.0.1:{api_port}"
    assert env["PUBLIC"] == f"http://127.0.0.1:{api_port}/v1"
    assert env["HOST"] == "127.0.0.1" and env["DEVUP_SERVICE"] == "shop.show"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert "PORT" not in env and "SHOP_SHOW_PORT" not in env and "FORCE_COLOR" not in env


def test_two_devup_ports_at_once_in_two_projects_never_share_a_port(
    tmp_path: Path, pool: tuple[int, int]
) -> None:
    projects = []
    for i in range(2):
        root = tmp_path / f"p{i}"
        root.mkdir()
        body = "".join(f'[services.s{n}]\ncmd = "true"\n' for n in range(5))
        (root / "devports.toml").write_text(f'[devup]\nports = "{pool[0]}-{pool[1]}"\n{body}')
        projects.append(root)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "ports", "--json"],
            cwd=root,
            stdout=subprocess.PIPE,
            text=True,
        )
        for root in projects
    ]
    outputs = [json.loads(p.communicate(timeout=30)[0]) for p in procs]
    ports = [svc["port"] for out in outputs for svc in out["services"].values()]
    assert len(ports) == 10 and len(set(ports)) == 10


def test_a_second_devup_in_the_same_project_exits_1_naming_the_first(
    project: Project, running: list[DevupProcess]
) -> None:
    project.write(f"""
        [services.api]
        cmd = "{SERVER}"
    """)
    run = project.start("--no-watch")
    running.append(run)
    run.expect_line(r"1 service up")
    second = project.devup("--no-watch")
    assert second.returncode == 1
    assert f"devup is already running in this project (pid {run.proc.pid})" in second.stderr
    assert run.stop() == 130


def test_a_port_held_by_another_process_is_not_used(
    project: Project, running: list[DevupProcess]
) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", project.pool[0]))
        held.listen()
        project.write(f"""
            [services.api]
            cmd = "{SERVER}"
            port = {project.pool[0]}
        """)
        run = project.start("--no-watch")
        running.append(run)
        run.expect_line(rf"api: {project.pool[0]} is held by .*pid \d+.*using \d+ for this run")
        port = int(run.expect_line(r"api started \(pid \d+, PORT=(\d+)\)").group(1))
        assert port != project.pool[0]
        run.expect_line(r"1 service up")
        assert run.stop() == 130


def test_bad_manifest_is_one_line_and_exit_2(project: Project) -> None:
    project.write("""
        [services.api]
        cmd = "x"
        port = "abc"
    """)
    result = project.devup("check")
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == (
        'devup: error: devports.toml:7: service "api": "port" must be an integer 1024-65535, got "abc"'
    )
    assert "Traceback" not in result.stderr


def test_an_unknown_command_is_one_line_with_a_hint(project: Project) -> None:
    result = project.devup("chek")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        'devup: error: no command "chek"',
        'hint: did you mean "check"?',
    ]
    result = project.devup("api")
    assert result.stderr.splitlines()[1].endswith("to start a service: devup up api")
