"""Readiness tells the truth, with real servers: a service that listens elsewhere than PORT is
ready there and others are told where; another program's listener on PORT proves nothing; a
server on ::1 only gets a URL that answers; the summary lists every service, failing ones too;
a program that does not exist waits for a change instead of a timer; `check` warns about it."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, DevupProcess, Project, py, wait_for

from orchestrator.cli.programs import missing_program, program_of
from orchestrator.ports.allocation import is_port_free
from orchestrator.ports.reach import reach

SERVER = f"{sys.executable} {REPO / 'tests' / 'fixtures' / 'server.py'}"
# Prints where devup says the api answers, then serves on its own PORT.
SHOW_API = py("""
    import os
    print("API_URL=" + os.environ["API_URL"], "API_PORT=" + os.environ["API_PORT"], flush=True)
    os.execv(os.environ["SERVER_PY"], os.environ["SERVER_ARGS"].split())
""")
SERVER_ENV = (
    f'env = {{ SERVER_PY = "{sys.executable}", '
    f'SERVER_ARGS = "{sys.executable} {REPO / "tests" / "fixtures" / "server.py"}" }}'
)


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def free_port(pool: tuple[int, int]) -> int:
    return next(p for p in range(pool[1], pool[0], -1) if is_port_free(p))


def status(project: Project) -> dict[str, Any]:
    result = project.devup("status", "--json")
    assert result.returncode == 0, result.stderr
    services: dict[str, Any] = json.loads(result.stdout)["services"]
    return services


def test_a_service_listening_on_another_port_is_ready_there_and_others_are_told(
    project: Project, running: list[DevupProcess]
) -> None:
    taken = free_port(project.pool)
    project.write(f"""
        [services.api]
        cmd = "{SERVER} --port {taken}"
        [services.web]
        cmd = '''{SHOW_API}'''
        depends_on = ["api"]
        {SERVER_ENV}
    """)
    run = project.start("--no-watch")
    running.append(run)
    port = int(run.expect_line(r"api started \(pid \d+, PORT=(\d+)\)").group(1))
    # Long before ready_timeout (30 s): as soon as it listens.
    run.expect_line(rf"devup\s+\| api ignored PORT={port} and listens on 127\.0\.0\.1:{taken}$")
    url = f"http://127.0.0.1:{taken}"
    run.expect_line(rf"web\s+\| API_URL={url} API_PORT={taken}$")
    run.expect_line(r"devup\s+\| 2 services up in")
    run.expect_line(rf"devup\s+\|   api  {url}\s+pid \d+\s+ready in")
    api = status(project)["api"]
    assert (api["state"], api["port"], api["url"]) == ("ready", taken, url)
    assert get(api["url"])["service"] == "api"
    ports = json.loads(project.devup("ports", "--json").stdout)["services"]["api"]
    assert (ports["port"], ports["url"], ports["assigned_port"]) == (taken, url, port)
    assert f"(its PORT={port} is unused)" in project.devup("ports").stdout
    assert run.stop() == 130


def test_another_programs_listener_on_port_does_not_make_a_service_ready(
    project: Project, running: list[DevupProcess], tmp_path: Path
) -> None:
    go = tmp_path / "go"
    # api binds its PORT only once the test holds it: its bind then fails with EADDRINUSE.
    clash = py(f"""
        import os, socket, sys, time
        while not os.path.exists({str(go)!r}):
            time.sleep(0.01)
        try:
            socket.socket().bind(("127.0.0.1", int(os.environ["PORT"])))
        except OSError as exc:
            print("api:", exc, flush=True)
            sys.exit(1)
    """)
    project.write(f"""
        [services.api]
        cmd = '''{clash}'''
        restart = "no"
        [services.web]
        cmd = "{SERVER}"
        depends_on = ["api"]
    """)
    run = project.start("--no-watch")
    running.append(run)
    port = int(run.expect_line(r"api started \(pid \d+, PORT=(\d+)\)").group(1))
    with socket.socket() as foreign:
        # As servers do: a TIME_WAIT left on this port by an earlier test does not block it.
        foreign.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        foreign.bind(("127.0.0.1", port))
        foreign.listen()
        go.touch()
        run.expect_line(r"api\s+\| api: \[Errno 98\] Address already in use")
        run.expect_line(r"api exited with code 1$")
        run.expect_line(r"devup\s+\|   web  waiting for api$")
    assert not [line for line in run.lines if "api ready" in line or "web started" in line]
    assert run.stop() == 130


def test_a_timeout_names_the_foreign_holder_and_a_late_listener_is_still_ready(
    project: Project, running: list[DevupProcess], tmp_path: Path
) -> None:
    go = tmp_path / "go"
    late = py(f"""
        import os, socket, time
        while not os.path.exists({str(go)!r}):
            time.sleep(0.01)
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", int(os.environ["PORT"]))); s.listen()
        print("listening", flush=True)
        time.sleep(60)
    """)
    project.write(f"""
        [services.api]
        cmd = '''{late}'''
        ready_timeout = 1
    """)
    run = project.start("--no-watch")
    running.append(run)
    port = int(run.expect_line(r"api started \(pid \d+, PORT=(\d+)\)").group(1))
    with socket.socket() as foreign:
        # As servers do: a TIME_WAIT left on this port by an earlier test does not block it.
        foreign.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        foreign.bind(("127.0.0.1", port))
        foreign.listen()
        run.expect_line(
            rf"api not ready after 1s \(port {port} is held by \S+ \(pid {os.getpid()}\), "
            r"not by api\); starting its dependents anyway$"
        )
    go.touch()
    run.expect_lines(
        r"api\s+\| listening$",
        rf"devup\s+\| api ready on http://127\.0\.0\.1:{port} in \d+\.\d\ds$",
    )
    assert status(project)["api"]["state"] == "ready"
    assert run.stop() == 130


def test_a_server_on_ipv6_loopback_only_gets_a_url_that_answers(
    project: Project, running: list[DevupProcess]
) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    # What `localhost` gives Node >= 17 where it resolves to ::1 first.
    v6 = py("""
        import http.server, os, socket
        class Server(http.server.ThreadingHTTPServer):
            address_family = socket.AF_INET6
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = b'{"service": "%s"}' % os.environ["DEVUP_SERVICE"].encode()
                self.send_response(200); self.end_headers(); self.wfile.write(body)
        Server(("::1", int(os.environ["PORT"])), Handler).serve_forever()
    """)
    project.write(f"""
        [services.api]
        cmd = '''{v6}'''
        [services.web]
        cmd = '''{SHOW_API}'''
        depends_on = ["api"]
        {SERVER_ENV}
    """)
    run = project.start("--no-watch")
    running.append(run)
    port = int(run.expect_line(r"api started \(pid \d+, PORT=(\d+)\)").group(1))
    url = f"http://[::1]:{port}"
    run.expect_line(
        rf"devup\s+\| api listens only on \[::1\]:{port} \(IPv6 loopback\), where "
        rf"127\.0\.0\.1:{port} refuses connections: its URL is {re.escape(url)}$"
    )
    told = run.expect_line(rf"web\s+\| API_URL=(\S+) API_PORT={port}$").group(1)
    assert told == url and get(told)["service"] == "api"
    run.expect_line(r"2 services up")
    assert status(project)["api"]["url"] == url
    assert run.stop() == 130


def test_the_summary_lists_every_service_and_never_waits_for_a_crash_loop(
    project: Project, running: list[DevupProcess]
) -> None:
    project.write(f"""
        [services.worker]
        cmd = '''{py("import time; print('working', flush=True); time.sleep(60)")}'''
        port = false
        [services.web]
        cmd = "{SERVER}"
        depends_on = ["worker"]
        [services.api]
        cmd = '''{py("import sys; sys.exit(1)")}'''
        [services.admin]
        cmd = "{SERVER}"
        depends_on = ["api"]
    """)
    run = project.start("--no-watch")  # api's second crash comes after the 0.5 s backoff
    running.append(run)
    run.expect_line(r"devup\s+\| 2 services up, 2 not up in")
    found = [run.expect_line(r"devup\s+\|   (\w+)\s+(.*)$") for _ in range(4)]
    rows = {match.group(1): match.group(2) for match in found}
    assert re.fullmatch(r"\(no port\)\s+pid \d+\s+running", rows["worker"])
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+\s+pid \d+\s+ready in \S+", rows["web"])
    assert re.fullmatch(r"crashing: exit 1, \d+ restarts?", rows["api"])
    assert rows["admin"] == "waiting for api"
    assert run.stop() == 130


def test_a_missing_program_waits_for_a_change_not_a_timer(
    project: Project, running: list[DevupProcess], tmp_path: Path
) -> None:
    project.write("""
        [services.api]
        cmd = "./serve.sh"
        ready_log = "serving"
    """)
    # That no timer retries it however long it waits: tests/unit/test_crash_loop.py, on a fake clock.
    run = project.start()
    running.append(run)
    run.expect_line(r"api\s+\| .*\./serve\.sh: not found")
    run.expect_line(
        r"api exited with code 127: \./serve\.sh not found; not retrying until a change to its "
        r"files or `devup restart api`$"
    )
    run.expect_line(r"api\s+not found: \./serve\.sh \(exit 127\), waiting for a change$")
    api = status(project)["api"]
    assert (api["state"], api["restarts"]) == ("crashed", 0)
    script = tmp_path / "serve.sh"  # made outside, moved in whole and executable
    script.write_text(f"#!/bin/sh\nexec {SERVER}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    script.rename(project.root / "serve.sh")
    run.expect_line(r"api: serve\.sh changed, restarting")
    run.expect_line(r"api\s+\| serving on")
    wait_for(lambda: status(project)["api"]["state"] == "ready", 10, what="api ready")
    assert run.stop() == 130


def test_check_warns_about_a_program_that_is_not_on_path(project: Project) -> None:
    (project.root / "here.sh").write_text("#!/bin/sh\n")
    project.write("""
        [services.gone]
        cmd = "LOG=1 exec no-such-devup-program --port $PORT"
        [services.local]
        cmd = "./here.sh"
        [services.shell]
        cmd = "echo hi && sleep 1"
        [services.relative]
        cmd = "bin/absent"
    """)
    result = project.devup("check")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: gone: no-such-devup-program is not on PATH; its cmd would exit with code 127",
        "warning: relative: bin/absent is not found; its cmd would exit with code 127",
    ]
    assert json.loads(project.devup("check", "--json").stdout)["warnings"] == [
        w.removeprefix("warning: ") for w in warnings
    ]


def test_the_program_of_a_command_line() -> None:
    assert program_of("A=1 B='x y' exec vite --port $PORT") == "vite"
    assert program_of("exec ./bin/run") == "./bin/run"
    for skipped in ("echo hi", "cd web && npm start", "$PYTHON -m api", "if true; then x; fi"):
        assert program_of(skipped) is None
    assert program_of("( cd web; npm start )") is None
    assert missing_program("sh -c true", Path("/")) is None
    assert missing_program("no-such-devup-program", Path("/"), path="/usr/bin") == (
        "no-such-devup-program"
    )


def test_where_a_service_answers() -> None:
    assert reach(3001, []) is None
    both = reach(3001, [("::", 3001), ("127.0.0.1", 24678), ("127.0.0.1", 3001)])
    assert both is not None and both.url == "http://127.0.0.1:3001"
    assert not both.moved_from(3001)
    side = reach(3001, [("127.0.0.1", 9229), ("127.0.0.1", 3000)])
    assert side is not None and (side.port, side.url) == (3000, "http://127.0.0.1:3000")
    v6 = reach(3001, [("::1", 3001)])
    assert v6 is not None and v6.url == "http://[::1]:3001" and v6.moved_from(3001)
    other = reach(3001, [("127.0.0.2", 3001)])
    assert other is not None and other.url == "http://127.0.0.2:3001"


def test_one_fast_exit_is_waited_out_by_the_summary(
    project: Project, running: list[DevupProcess], tmp_path: Path
) -> None:
    # It fails once (a port still in TIME_WAIT, a lock file), then starts: one summary, "up".
    flag = tmp_path / "failed-once"
    project.write(f"""
        [services.web]
        cmd = "if [ ! -e {flag} ]; then touch {flag}; exit 1; fi; exec {SERVER}"
    """)
    run = project.start("--no-watch")
    running.append(run)
    run.expect_line(r"web exited with code 1, restarting in")
    run.expect_line(r"devup\s+\| 1 service up in")
    assert not [line for line in run.lines if "0 services up" in line]
    assert run.stop() == 130
