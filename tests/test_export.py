"""`devup export`: a Procfile that honcho runs on devup's ports; honcho's other exporters."""

from __future__ import annotations

import configparser
import json
import os
import signal
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO, Project, marked_processes, wait_for

from orchestrator.cli.export import FORMATS
from orchestrator.cli.main import EXPORT_FORMATS
from orchestrator.ports.allocation import is_port_free

SERVER = f"{sys.executable} {REPO / 'tests' / 'fixtures' / 'server.py'}"
HONCHO = Path(sys.executable).parent / "honcho"

SERVICES = f"""
    [services.api]
    cmd = "{SERVER}"
    cwd = "services/api"
    env = {{ GREETING = "it's a secret" }}
    [services.web]
    cmd = "{SERVER}"
    [services.shop]
    procfile = "Procfile"
    port = "auto"   # the admin line serves HTTP on PORT too
"""


def make(project: Project) -> dict[str, int]:
    project.write(SERVICES, **{"services/api/.keep": "", "Procfile": f"admin: {SERVER}\n"})
    ports = json.loads(project.devup("ports", "--json").stdout)["services"]
    return {name: svc["port"] for name, svc in ports.items()}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def get_json(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        body: dict[str, object] = json.loads(response.read())
        return body


@pytest.mark.skipif(not HONCHO.exists(), reason="honcho's command is not installed")
def test_an_exported_procfile_runs_under_honcho_on_devups_ports(
    project: Project, no_leftover_processes: str
) -> None:
    ports = make(project)
    out = project.root / "exported"
    result = project.devup("export", "procfile", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert mode(out / ".env") == 0o600 and mode(out / "Procfile") == 0o600  # GREETING is private

    # honcho would give PORT=5000, 5100, ... unless each line sets its own.
    honcho = subprocess.Popen(
        [str(HONCHO), "start", "--no-colour"],
        cwd=out,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for name, port in ports.items():
            wait_for(lambda p=port: not is_port_free(p), timeout=20, what=f"{name} on {port}")
            assert get_json(port)["service"] == name
    finally:
        honcho.send_signal(signal.SIGTERM)  # honcho stops every process it started
        code = honcho.wait(20)
    # honcho exits 128 + SIGTERM when the signal stopped it: no exported process ended first.
    assert code == 143
    wait_for(lambda: not marked_processes(no_leftover_processes), timeout=10, what="no leftovers")
    assert all(is_port_free(p) for p in ports.values())


def test_the_procfile_is_not_private_without_private_values(project: Project) -> None:
    project.write(f'[services.web]\ncmd = "{SERVER}"\n')
    out = project.root / "exported"
    assert project.devup("export", "procfile", "-o", str(out)).returncode == 0
    assert mode(out / "Procfile") == 0o644 and mode(out / ".env") == 0o600
    assert "PORT=" not in (out / ".env").read_text().replace("_PORT=", "")  # honcho's base port


def test_honchos_exporters_carry_each_services_port_and_environment(project: Project) -> None:
    ports = make(project)
    for fmt in ("systemd", "supervisord", "runit"):
        result = project.devup("export", fmt, "-o", str(project.root / fmt), "--app", "demo")
        assert result.returncode == 0, result.stderr

    unit = project.root / "systemd" / "demo-api.service"
    text = unit.read_text()
    assert f"Environment=PORT={ports['api']}\n" in text and mode(unit) == 0o600
    api_dir = (project.root / "services" / "api").resolve()
    assert f"ExecStart=/bin/sh -lc 'cd {api_dir} && exec {SERVER}'" in text
    assert (project.root / "systemd" / "demo.target").exists()
    assert (
        f"Environment=PORT={ports['shop.admin']}\n"
        in (project.root / "systemd" / "demo-shop-admin.service").read_text()
    )

    conf = configparser.RawConfigParser()
    conf.read(project.root / "supervisord" / "demo.conf")
    assert f"PORT={ports['web']}," in conf["program:web"]["environment"]
    assert mode(project.root / "supervisord" / "demo.conf") == 0o600

    envdir = project.root / "runit" / "demo-api" / "env"
    assert (envdir / "PORT").read_text() == str(ports["api"])
    assert (envdir / "GREETING").read_text() == "it's a secret" and mode(
        envdir / "GREETING"
    ) == 0o600
    assert os.access(project.root / "runit" / "demo-api" / "run", os.X_OK)


def test_an_unknown_format_lists_the_formats(project: Project) -> None:
    assert set(EXPORT_FORMATS) == set(FORMATS)
    project.write(f'[services.web]\ncmd = "{SERVER}"\n')
    result = project.devup("export", "docker")
    assert result.returncode == 2
    assert "'procfile', 'systemd', 'supervisord', 'runit'" in result.stderr
