"""`devup run SERVICE -- CMD`: the service's folder and environment, the command's exit code."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from conftest import DEVUP, Project, py

SERVICES = """
    [services.api]
    cmd = "true"
    cwd = "services/api"
    env = { GREETING = "hi ${WEB_URL}" }
    [services.web]
    cmd = "true"
"""


def make(project: Project) -> None:
    project.write(SERVICES, **{"services/api/.keep": ""})


def test_run_prints_the_port_devup_gives_the_service(project: Project) -> None:
    make(project)
    code = "import os; print(os.environ['PORT'], os.getcwd(), os.environ['GREETING'])"
    result = project.devup("run", "api", "--", sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr
    port, cwd, greeting = result.stdout.split(" ", 2)
    ports = json.loads(project.devup("ports", "--json").stdout)["services"]
    assert int(port) == ports["api"]["port"]
    assert cwd == str((project.root / "services" / "api").resolve())
    assert greeting.strip() == f"hi {ports['web']['url']}"


def test_run_exits_with_the_commands_code_or_128_plus_its_signal(project: Project) -> None:
    make(project)
    assert project.devup("run", "web", "--", "sh", "-c", "exit 7").returncode == 7
    assert project.devup("run", "web", "--", "sh", "-c", "kill -TERM $$").returncode == 143
    missing = project.devup("run", "web", "--", "no-such-command-here")
    assert missing.returncode == 127
    assert missing.stderr.startswith("devup: error: no-such-command-here: command not found")


def test_an_unknown_service_is_a_usage_error_with_a_suggestion(project: Project) -> None:
    make(project)
    result = project.devup("run", "apo", "--", "true")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        'devup: error: unknown service "apo"',
        'hint: did you mean "api"?',
    ]


def test_sigterm_to_devup_reaches_the_command(project: Project) -> None:
    make(project)
    child = py("""
        import signal, sys, time
        def bye(signum, frame):
            print("command got", signal.Signals(signum).name, flush=True)
            sys.exit(3)
        signal.signal(signal.SIGTERM, bye)
        print("waiting", flush=True)
        time.sleep(30)
    """)
    proc = subprocess.Popen(
        [*DEVUP, "run", "web", "--", "sh", "-c", f"exec {child}"],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "waiting\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout.readline() == "command got SIGTERM\n"
    assert proc.wait(10) == 3
