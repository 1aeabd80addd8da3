"""`devup init`: finds the projects of a tree and writes a manifest that checks and starts."""

from __future__ import annotations

import json
import os
import shutil
import sys
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO, DevupProcess, Project

from orchestrator.cli.init import scan

SERVER = REPO / "tests" / "fixtures" / "server.py"

# A stand-in for Django's manage.py: `runserver 127.0.0.1:PORT` serves on exactly that address.
MANAGE_PY = f"""
import os, sys
assert sys.argv[1] == "runserver", sys.argv
host, port = sys.argv[2].rsplit(":", 1)
os.execv(sys.executable, [sys.executable, {str(SERVER)!r}, "--bind", host, "--port", port])
"""


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: dict[str, object] = json.loads(response.read())
        return body


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.skipif(shutil.which("npm") is None, reason="the Node stand-in runs through npm")
def test_init_writes_a_manifest_that_checks_and_starts_a_procfile_node_and_django_app(
    project: Project, running: list[DevupProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `python3 manage.py` in the written cmd must be this interpreter; npm must not phone home.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("NPM_CONFIG_UPDATE_NOTIFIER", "false")
    server = f"{sys.executable} {SERVER}"
    write(
        project.root,
        {
            "apps/shop/Procfile": f"web: {server}\n",
            "web/package.json": json.dumps({"name": "web", "scripts": {"dev": server}}),
            "web/node_modules/dep/package.json": json.dumps({"scripts": {"dev": "nope"}}),
            "backend/manage.py": MANAGE_PY,
            "backend/.venv/lib/manage.py": "",
        },
    )
    low, high = project.pool
    result = project.devup("init", "--ports", f"{low}-{high}")
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "3 services" in result.stdout
    assert "hint: add .devup/" in result.stdout  # not a terminal: only suggested
    assert not (project.root / ".gitignore").exists()
    text = (project.root / "devports.toml").read_text()
    assert 'cmd = "python3 manage.py runserver 127.0.0.1:$PORT --noreload"' in text
    assert 'procfile = "Procfile"' in text and 'cmd = "npm run dev"' in text

    check = project.devup("check", "--json")
    assert check.returncode == 0, check.stderr
    assert set(json.loads(check.stdout)["services"]) == {"shop.web", "web", "backend"}

    run = project.start("up", "--no-watch")
    running.append(run)
    run.expect_line(r"devup\s+\| 3 services up in", timeout=40)
    ports = json.loads(project.devup("ports", "--json").stdout)["services"]
    for name in ("shop.web", "web", "backend"):
        assert get_json(ports[name]["url"])["service"] == name
    assert run.stop() == 130


def test_init_never_overwrites_without_force(project: Project) -> None:
    write(project.root, {"api/manage.py": ""})
    (project.root / "devports.toml").write_text("# mine\n")
    refused = project.devup("init")
    assert refused.returncode == 1
    assert refused.stderr.startswith("devup: error: ") and "already exists" in refused.stderr
    assert "hint: `devup init --force` replaces it" in refused.stderr
    assert (project.root / "devports.toml").read_text() == "# mine\n"
    forced = project.devup("init", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "[services.api]" in (project.root / "devports.toml").read_text()


def test_init_with_nothing_to_find_is_an_error(project: Project) -> None:
    result = project.devup("init")
    assert result.returncode == 2 and "found no project" in result.stderr
    assert not (project.root / "devports.toml").exists()


def test_gitignore_is_added_once_with_the_flag(project: Project) -> None:
    write(project.root, {"api/manage.py": "", ".gitignore": "node_modules/"})
    assert project.devup("init", "--gitignore").returncode == 0
    assert (project.root / ".gitignore").read_text().splitlines()[-1] == ".devup/"
    assert project.devup("init", "--force", "--gitignore").returncode == 0
    again = project.devup("init", "--force")
    assert "hint: add .devup/" not in again.stdout
    assert (project.root / ".gitignore").read_text().count(".devup/") == 1


def test_scan_knows_each_framework_and_how_it_takes_a_port(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "apps/vite/package.json": json.dumps(
                {"scripts": {"dev": "vite"}, "devDependencies": {"vite": "5"}}
            ),
            "apps/next/package.json": json.dumps(
                {"scripts": {"dev": "next dev"}, "dependencies": {"next": "14"}}
            ),
            "apps/cra/package.json": json.dumps(
                {
                    "scripts": {"start": "react-scripts start"},
                    "dependencies": {"react-scripts": "5"},
                }
            ),
            "apps/cra/yarn.lock": "",
            "apps/astro/package.json": json.dumps(
                {"scripts": {"dev": "astro dev"}, "dependencies": {"astro": "5"}}
            ),
            "apps/ng/package.json": json.dumps(
                {"scripts": {"start": "ng serve"}, "devDependencies": {"@angular/cli": "19"}}
            ),
            "apps/ng/bun.lock": "",
            "services/express/package.json": json.dumps(
                {"scripts": {"start": "node index.js"}, "dependencies": {"express": "4"}}
            ),
            "services/flask/app.py": "from flask import Flask\napp = Flask(__name__)\n",
            "services/fast/app/main.py": "from fastapi import FastAPI\napi = FastAPI()\n",
            "services/rails/bin/rails": "",
            "services/rails/config/application.rb": "",
            "services/rails/Gemfile": "",
            "package.json": json.dumps({"workspaces": ["apps/*"], "scripts": {"dev": "turbo dev"}}),
            "node_modules/x/package.json": json.dumps({"scripts": {"dev": "x"}}),
            "env2/pyvenv.cfg": "",
            "env2/lib/manage.py": "",
            "dist/manage.py": "",
            "apps/vite/src/nested/manage.py": "",  # inside a project: part of it
        },
    )
    found = {p.folder.as_posix(): (p.kind, p.cmd) for p in scan(tmp_path)}
    assert found == {
        "apps/astro": ("Astro", "npm run dev -- --port $PORT --host 127.0.0.1"),
        "apps/cra": ("Create React App", "yarn start"),
        "apps/ng": ("Angular", "bun run start --port $PORT --host 127.0.0.1"),
        "apps/next": ("Next.js", "npm run dev -- -p $PORT -H 127.0.0.1"),
        "apps/vite": ("Vite", "npm run dev -- --port $PORT --strictPort --host 127.0.0.1"),
        "services/express": ("Express", "npm run start"),
        "services/fast": (
            "FastAPI",
            "python3 -m uvicorn app.main:api --host 127.0.0.1 --port $PORT",
        ),
        "services/flask": ("Flask", "python3 -m flask run --host 127.0.0.1 --port $PORT"),
        "services/rails": ("Rails", "bin/rails server -b 127.0.0.1 -p $PORT"),
    }


def test_init_runs_python_projects_with_their_own_python(tmp_path: Path) -> None:
    """Never the Python devup was installed into: the project's virtualenv, else its lockfile's
    runner, else python3."""
    write(
        tmp_path,
        {
            "own/manage.py": "",
            "own/.venv/bin/python": "",
            "classic/manage.py": "",
            "classic/venv/bin/python": "",
            "uv/manage.py": "",
            "uv/uv.lock": "",
            "poetry/app.py": "from flask import Flask\napp = Flask(__name__)\n",
            "poetry/poetry.lock": "",
            "pipenv/main.py": "from fastapi import FastAPI\napp = FastAPI()\n",
            "pipenv/Pipfile.lock": "",
            "shared/.venv/bin/python": "",
            "shared/services/api/manage.py": "",
            "bare/manage.py": "",
        },
    )
    found = {p.folder.as_posix(): p.cmd for p in scan(tmp_path)}
    django = "manage.py runserver 127.0.0.1:$PORT --noreload"
    assert found == {
        "bare": f"python3 {django}",
        "classic": f"venv/bin/python {django}",
        "own": f".venv/bin/python {django}",
        "pipenv": "pipenv run python -m uvicorn main:app --host 127.0.0.1 --port $PORT",
        "poetry": "poetry run python -m flask run --host 127.0.0.1 --port $PORT",
        "shared/services/api": f"../../.venv/bin/python {django}",
        "uv": f"uv run python {django}",
    }


def test_procfile_lines_other_than_web_are_written_as_portless(project: Project) -> None:
    write(project.root, {"shop/Procfile": "web: a --port $PORT\nworker: b\nclock: c\n"})
    assert project.devup("init").returncode == 0
    text = (project.root / "devports.toml").read_text()
    assert "# no port for shop.worker, shop.clock: only a web line" in text
    check = json.loads(project.devup("check", "--json").stdout)["services"]
    ports = {name: svc["port"] for name, svc in check.items()}
    assert ports == {"shop.web": "auto", "shop.worker": None, "shop.clock": None}


def test_init_inside_a_project_refuses_without_force(project: Project) -> None:
    write(project.root, {"devports.toml": "[services.x]\ncmd = 'x'\n", "apps/api/manage.py": ""})
    inner = project.root / "apps"
    refused = Project(inner, project.pool).devup("init")
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith(f"devup: error: {inner} is inside the devup project of ")
    assert "hint: add this folder's services to" in refused.stderr
    assert not (inner / "devports.toml").exists()
    forced = Project(inner, project.pool).devup("init", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "[services.api]" in (inner / "devports.toml").read_text()
