"""Real frameworks, as a new user meets them: the README's Quick start tree (a Vite app from npm, a
Django api with its own .venv and SQLite, a Procfile worker) and a Flask app, each made into a
monorepo by `devup init` and run by devup.

The installs (vite from npm; django and flask from PyPI) are made once per version set under
`${XDG_CACHE_HOME:-~/.cache}/devup-tests/` and reused: the venv by a symlink, node_modules as a
tree of hard links (Vite writes its own cache into node_modules/.vite). Select with
`-m frameworks`; skipped, saying why, only when npm or pip cannot reach its registry.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, DevupProcess, Project, inotify_watches, wait_for

VITE = "8.4.0"
PYTHON_PACKAGES = ("django==5.2.19", "flask==3.1.3")
# Wait deadlines, not speed checks: the targets (up in under 10 s, an edit served within
# 5 s) held as deadlines failed on a loaded machine (parallel suites), and timed assertions belong
# in bench/, not here.
FIRST_RUN_DEADLINE_S = 60
EDIT_DEADLINE_S = 30
INSTALL_TIMEOUT_S = 240
# What npm and pip print when the registry cannot be reached (not: a version that does not exist).
OFFLINE = re.compile(
    r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|network|Network is unreachable|"
    r"Temporary failure in name resolution|Max retries exceeded|NewConnectionError",
    re.IGNORECASE,
)

pytestmark = [pytest.mark.frameworks, pytest.mark.timeout(INSTALL_TIMEOUT_S + 120)]


@dataclass(frozen=True)
class Installs:
    venv: Path  # a virtualenv with django and flask
    node_modules: Path  # node_modules with vite


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "devup-tests"


def _key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def _install(what: str, cmd: list[str], cwd: Path) -> None:
    result = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
    )
    if result.returncode == 0:
        return
    output = result.stdout + result.stderr
    if OFFLINE.search(output):
        pytest.skip(f"{what}: the registry cannot be reached:\n{output[-1500:]}")
    pytest.fail(f"{what} failed (exit {result.returncode}):\n{output[-3000:]}")


def _build_once(target: Path, build: object) -> Path:
    """`target`, built by `build(tmp)` into a temporary folder renamed into place, under a lock so
    two test runs at once build it once."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            tmp = target.with_name(target.name + f".tmp{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            build(tmp)  # type: ignore[operator]
            tmp.rename(target)
    return target


def _build_venv(tmp: Path) -> None:
    # Renaming moves the venv: its scripts' #! lines go stale, `python -m flask` does not care.
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    _install("pip install " + " ".join(PYTHON_PACKAGES), [*pip, *PYTHON_PACKAGES], tmp)


def _build_node(tmp: Path) -> None:
    (tmp / "package.json").write_text(json.dumps({"name": "devup-tests-cache", "private": True}))
    npm = ["npm", "install", "--no-audit", "--no-fund", "--save-exact", f"vite@{VITE}"]
    _install(f"npm install vite@{VITE}", npm, tmp)


@pytest.fixture(scope="session")
def installs() -> Installs:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    venv_home = cache_root() / f"python-{_key(python, sys.executable, *PYTHON_PACKAGES)}"
    venv_home = _build_once(venv_home, _build_venv)
    node_home = _build_once(cache_root() / f"vite-{_key(VITE, node)}", _build_node)
    return Installs(venv_home / "venv", node_home / "node_modules")


def link_tree(source: Path, target: Path) -> None:
    """A copy of `source` made of hard links (fast, and writes into it never reach the cache)."""
    try:
        shutil.copytree(source, target, symlinks=True, copy_function=os.link)
    except shutil.Error:  # another file system: hard links cannot cross it
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, symlinks=True)


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def try_get(url: str) -> str:
    try:
        return get(url)
    except OSError:
        return ""


def readme_init_block() -> list[str]:
    """The lines of the manifest the README says `devup init` writes for the Quick start tree."""
    text = (REPO / "README.md").read_text()
    after = text.split("`devup init` writes, for this tree:", 1)[1]
    block = after.split("```toml\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


DJANGO_VIEW = """
from django.db import connection
from django.http import HttpResponse

VERSION = "{version}"


def db(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_migrations")
        count = cursor.fetchone()[0]
    return HttpResponse(f"{{VERSION}}: {{count}} migrations")
"""
WORKER = """
import os, time
print("worker up, no PORT:", "PORT" not in os.environ, flush=True)
while True:
    time.sleep(60)
"""


def quick_start_tree(root: Path, installs: Installs) -> None:
    """The README's Quick start tree: shop/apps/web, shop/services/api, shop/services/worker."""
    web, api = root / "apps" / "web", root / "services" / "api"
    package = {"name": "web", "private": True, "type": "module", "scripts": {"dev": "vite"}}
    write(
        web,
        {
            "package.json": json.dumps({**package, "devDependencies": {"vite": VITE}}, indent=2),
            "index.html": '<!doctype html><script type="module" src="/src/main.js"></script>\n',
            "src/main.js": 'document.body.textContent = "hello v1";\n',
        },
    )
    link_tree(installs.node_modules, web / "node_modules")
    api.mkdir(parents=True)
    (api / ".venv").symlink_to(installs.venv, target_is_directory=True)
    python = str(api / ".venv" / "bin" / "python")
    subprocess.run([python, "-m", "django", "startproject", "config", "."], cwd=api, check=True)
    write(api, {"config/views.py": DJANGO_VIEW.format(version="version 1")})
    with open(api / "config" / "urls.py", "a") as urls:
        urls.write("\nfrom config.views import db\n\nurlpatterns += [path('db/', db)]\n")
    migrate = [python, "manage.py", "migrate", "-v", "0"]
    subprocess.run(migrate, cwd=api, check=True, timeout=120)
    write(root / "services" / "worker", {"Procfile": "worker: python3 worker.py\n"})
    write(root / "services" / "worker", {"worker.py": WORKER})


@pytest.fixture
def shop(project: Project, installs: Installs, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setenv("NPM_CONFIG_UPDATE_NOTIFIER", "false")
    quick_start_tree(project.root, installs)
    return project


def first_restart(run: DevupProcess, name: str) -> str:
    """The file named by the next `NAME: FILE changed, restarting` line."""
    return run.expect_line(rf"\| {re.escape(name)}: (\S+) changed, restarting").group(1)


@contextlib.contextmanager
def devup_running(project: Project) -> Iterator[DevupProcess]:
    run = project.start()
    try:
        yield run
    except AssertionError as failed:  # say what devup said, not only what the test saw
        run.stop()
        output = "\n".join(run.lines[-60:])
        raise AssertionError(f"{failed}\ndevup's output:\n{output}") from None
    except BaseException:
        run.stop()
        raise
    assert run.stop() == 130, "\n".join(run.lines[-30:])


def test_the_quick_start_runs_a_real_vite_django_and_procfile_worker(shop: Project) -> None:
    low, high = shop.pool
    init = shop.devup("init", "--ports", f"{low}-{high}")
    assert init.returncode == 0, init.stderr
    manifest = (shop.root / "devports.toml").read_text().splitlines()
    # The README's Quick start shows what init writes, line for line and in order.
    expected = iter(readme_init_block())
    want = next(expected)
    for line in manifest:
        if line == want:
            want = next(expected, None)  # type: ignore[arg-type]
            if want is None:
                break
    assert want is None, f"README line not in the written manifest: {want!r}\n" + "\n".join(
        manifest
    )

    check = shop.devup("check")
    assert check.returncode == 0, check.stderr
    assert "watch: off (vite reloads itself; devup restarts it only on package.json" in check.stdout

    with devup_running(shop) as run:
        run.expect_line(r"devup\s+\| 3 services up in", timeout=FIRST_RUN_DEADLINE_S)
        wait_for(lambda: inotify_watches(run.proc.pid) >= 3, 10, what="the three services' watches")
        ports = json.loads(shop.devup("ports", "--json").stdout)["services"]
        assert ports["worker.worker"]["port"] is None  # a Procfile worker takes no traffic
        web, api = ports["web"]["url"], ports["api"]["url"]

        # Django reads SQLite; reading restarts nothing.
        for _ in range(5):
            assert get(f"{api}/db/").startswith("version 1: ")
        before = shop.status()["services"]

        # A Vite edit is served by Vite itself: same process, new content, no restart.
        assert "hello v1" in get(f"{web}/src/main.js")
        (shop.root / "apps/web/src/main.js").write_text('document.body.textContent = "hello v2";\n')
        wait_for(
            lambda: "hello v2" in try_get(f"{web}/src/main.js"),
            EDIT_DEADLINE_S,
            what="Vite to serve the edited src/main.js",
        )

        # A Django edit is served (devup restarts runserver --noreload).
        view = shop.root / "services/api/config/views.py"
        view.write_text(DJANGO_VIEW.format(version="version 2"))
        wait_for(
            lambda: try_get(f"{api}/db/").startswith("version 2: "),
            EDIT_DEADLINE_S,
            what="the api to serve the edited view",
        )
        # Its first restart names the file saved: the SQLite reads before it counted for nothing.
        assert first_restart(run, "api") == "config/views.py"
        after = shop.status()["services"]
        assert after["web"]["pid"] == before["web"]["pid"] and after["web"]["restarts"] == 0
        assert after["api"]["restarts"] == 1
        assert after["worker.worker"]["restarts"] == 0
        env = shop.devup("env", "api").stdout
        assert "WEB_URL" in env and "WORKER_WORKER_URL" not in env
    assert sum("web: vite reloads itself" in line for line in run.lines) == 1
    assert not any("| web: " in line and "changed" in line for line in run.lines)


FLASK_APP = """
import sqlite3
from flask import Flask

app = Flask(__name__)
VERSION = "{version}"


@app.get("/")
def index():
    with sqlite3.connect("inventory.db") as db:
        (count,) = db.execute("SELECT count(*) FROM items").fetchone()
    return f"{{VERSION}}: {{count}} items"
"""


def test_a_real_flask_app_with_sqlite_made_by_init(project: Project, installs: Installs) -> None:
    app = project.root / "services" / "inventory"
    write(app, {"app.py": FLASK_APP.format(version="version 1")})
    (app / ".venv").symlink_to(installs.venv, target_is_directory=True)
    db = sqlite3.connect(app / "inventory.db")
    with db:
        db.execute("CREATE TABLE items (name TEXT)")
        db.executemany("INSERT INTO items VALUES (?)", [("a",), ("b",)])
    db.close()
    low, high = project.pool
    assert project.devup("init", "--ports", f"{low}-{high}").returncode == 0
    text = (project.root / "devports.toml").read_text()
    assert 'cmd = ".venv/bin/python -m flask run --host 127.0.0.1 --port $PORT"' in text

    with devup_running(project) as run:
        run.expect_line(r"devup\s+\| 1 service up in", timeout=FIRST_RUN_DEADLINE_S)
        wait_for(lambda: inotify_watches(run.proc.pid) >= 1, 10, what="the app's inotify watch")
        url = json.loads(project.devup("ports", "--json").stdout)["services"]["inventory"]["url"]
        for _ in range(5):
            assert get(url) == "version 1: 2 items"
        (app / "app.py").write_text(FLASK_APP.format(version="version 2"))
        wait_for(
            lambda: try_get(url) == "version 2: 2 items",
            EDIT_DEADLINE_S,
            what="Flask to serve the edited app.py",
        )
        assert first_restart(run, "inventory") == "app.py"
        assert project.status()["services"]["inventory"]["restarts"] == 1
