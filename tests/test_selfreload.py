"""Dev servers that reload themselves: recognised from cmd (and package.json scripts), watched only
on what they read once; Procfile lines other than web get no port."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import DevupProcess, Project, inotify_watches_folder, wait_for

from orchestrator.cli.plan import check_plan, format_check
from orchestrator.config.manifest import load_manifest
from orchestrator.config.selfreload import detect

RECOGNISED = [
    ("vite", "vite"),
    ("vite --port $PORT --strictPort", "vite"),
    ("npx vite dev", "vite"),
    ("./node_modules/.bin/vite serve", "vite"),
    ("next dev -p $PORT", "next dev"),
    ("nuxt dev", "nuxt dev"),
    ("nuxi dev --port 3000", "nuxt dev"),
    ("astro dev", "astro dev"),
    ("remix vite:dev", "remix dev"),
    ("webpack serve --mode development", "webpack serve"),
    ("webpack-dev-server", "webpack serve"),
    ("BROWSER=none react-scripts start", "react-scripts start"),
    ("ng serve --port $PORT", "ng serve"),
    ("nodemon server.js", "nodemon"),
    ("node --watch server.js", "node --watch"),
    ("node --watch-path=src server.js", "node --watch"),
    ("tsx watch src/index.ts", "tsx watch"),
    ("flask run --debug", "flask --debug"),
    ("flask --app api --debug run", "flask --debug"),
    ("FLASK_DEBUG=1 flask run", "flask --debug"),
    (".venv/bin/python -m flask run --reload", "flask --debug"),
    ("uvicorn main:app --reload --port $PORT", "uvicorn --reload"),
    ("uv run uvicorn main:app --reload", "uvicorn --reload"),
    ("hypercorn app:app --reload", "hypercorn --reload"),
    ("python manage.py runserver 127.0.0.1:$PORT", "django runserver"),
    ("poetry run python3 manage.py runserver", "django runserver"),
    ("bin/rails server -p $PORT", "rails server"),
    ("bundle exec rails s", "rails server"),
    ("air", "air"),
    ("cargo watch -x run", "cargo watch"),
    ("cd web && npm install && exec vite", "vite"),
]
NOT_RECOGNISED = [
    "vite build",
    "vite preview --port $PORT",
    "next start",
    "node server.js",
    "node server.js --watch",  # the script's own argument, not Node's
    "flask run",
    "flask run --debug --no-reload",
    "FLASK_DEBUG=0 flask run",
    "uvicorn main:app --port $PORT",
    "python manage.py runserver 127.0.0.1:$PORT --noreload",
    "python manage.py migrate",
    "rails console",
    "cargo run",
    "python -m http.server $PORT",
    "npm run build",
    "yarn install",
    "echo 'unbalanced",
]


@pytest.mark.parametrize(("cmd", "tool"), RECOGNISED)
def test_a_self_reloading_dev_server_is_recognised(tmp_path: Path, cmd: str, tool: str) -> None:
    reloader = detect(cmd, tmp_path)
    assert reloader is not None and reloader.tool == tool


@pytest.mark.parametrize("cmd", NOT_RECOGNISED)
def test_other_commands_are_not(tmp_path: Path, cmd: str) -> None:
    assert detect(cmd, tmp_path) is None


@pytest.mark.parametrize(
    ("cmd", "tool"),
    [
        ("npm run dev -- --port $PORT --strictPort --host 127.0.0.1", "vite"),
        ("pnpm dev --port $PORT", "vite"),
        ("yarn dev", "vite"),
        ("bun run dev", "vite"),
        ("npm start", "next dev"),  # start -> `npm run next` -> next dev
        ("npm run serve", None),
        ("npm run build", None),
        ("npm test", None),
    ],
)
def test_a_package_manager_script_is_read_from_package_json(
    tmp_path: Path, cmd: str, tool: str | None
) -> None:
    scripts = {"dev": "vite", "start": "npm run next", "next": "next dev", "serve": "node s.js"}
    (tmp_path / "package.json").write_text(
        json.dumps({"scripts": {**scripts, "build": "vite build"}})
    )
    (tmp_path / "apps").mkdir()
    for cwd in (tmp_path, tmp_path / "apps"):  # npm uses the nearest package.json above
        reloader = detect(cmd, cwd)
        assert (reloader.tool if reloader else None) == tool


def test_a_script_that_runs_itself_does_not_loop(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text(json.dumps({"scripts": {"dev": "npm run dev"}}))
    assert detect("npm run dev", tmp_path) is None


def manifest(tmp_path: Path, text: str, **files: str) -> Path:
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content)
    path = tmp_path / "devports.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_self_reloader_watches_only_what_it_reads_once_and_check_says_so(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    path = manifest(
        root,
        """
        [services.web]
        cwd = "web"
        cmd = "npm run dev -- --port $PORT"
        [services.pinned]
        cwd = "web"
        cmd = "vite"
        watch = ["src"]
        [services.whole]
        cwd = "web"
        cmd = "vite"
        watch = true
        [services.api]
        cmd = "python -m api"
        [services.flask]
        cmd = "flask run"
        env = { FLASK_DEBUG = "1" }
        """,
        **{
            "web/package.json": json.dumps({"scripts": {"dev": "vite"}}),
            "web/package-lock.json": "{}",
        },
    )
    services = load_manifest(path).services
    web = services["web"]
    assert web.reloads_itself == "vite" and web.default_watch
    watched = {p.relative_to(root / "web").as_posix() for p in web.watch or ()}
    assert {"package.json", "package-lock.json", "pnpm-lock.yaml", "vite.config.ts"} <= watched
    assert {".env", ".env.local", ".env.development.local"} <= watched
    assert not any(name.startswith("src") or name == "." for name in watched)
    # An explicit watch wins; a server devup does not recognise keeps watching its cwd.
    assert services["pinned"].watch == (root / "web" / "src",)
    assert not services["pinned"].default_watch
    assert services["whole"].watch == (root / "web",)
    assert services["flask"].reloads_itself == "flask --debug"
    assert services["api"].watch == (root,) and services["api"].reloads_itself is None

    plan = check_plan(load_manifest(path))
    assert plan["services"]["web"]["reloads_itself"] == "vite"
    text = format_check(plan)
    note = (
        "watch: off (vite reloads itself; devup restarts it only on package.json, lockfile,"
        " vite.config.*, .env changes)"
    )
    assert text.count("watch: off") == 2 and note in text  # web's and flask's
    assert "watch: off (flask --debug reloads itself; devup restarts it only on .env" in text


def test_a_self_reloader_behind_cd_watches_the_folder_it_runs_in(tmp_path: Path) -> None:
    """A Procfile's `web: cd frontend && npm run dev`: its package.json and config are there."""
    root = tmp_path.resolve()
    path = manifest(
        root,
        """
        [services.web]
        cmd = "cd frontend && npm run dev"
        """,
        **{
            "package.json": json.dumps({"scripts": {"lint": "eslint ."}}),
            "frontend/package.json": json.dumps({"scripts": {"dev": "vite"}}),
            "frontend/package-lock.json": "{}",
        },
    )
    web = load_manifest(path).services["web"]
    assert web.reloads_itself == "vite" and web.reloads_in == root / "frontend"
    assert {p.parent for p in web.watch or ()} == {root / "frontend"}
    text = format_check(check_plan(load_manifest(path)))
    assert "devup restarts it only on package.json, lockfile, vite.config.*, .env changes" in text


def test_procfile_lines_other_than_web_get_no_port_unless_they_use_it(tmp_path: Path) -> None:
    procfile = "web: python -m web\nworker: python -m worker\nadmin: python -m admin --port $PORT\n"
    base = '[services.shop]\nprocfile = "Procfile"\n'
    services = load_manifest(manifest(tmp_path, base, Procfile=procfile)).services
    needs = {name: spec.needs_port for name, spec in services.items()}
    assert needs == {"shop.web": True, "shop.worker": False, "shop.admin": True}
    # An explicit port = "auto" gives every line one; port = false gives none.
    for port, expected in (('"auto"', True), ("false", False)):
        path = manifest(tmp_path, base + f"port = {port}\n")
        assert {s.needs_port for s in load_manifest(path).services.values()} == {expected}


def test_a_self_reloader_is_restarted_on_a_new_gitignored_env_file_not_on_an_edit(
    project: Project, running: list[DevupProcess]
) -> None:
    """The watch list names files that may not exist yet (.env made later) and files the
    repository ignores (.env is in .gitignore): both count; an edit to the source does not."""
    # Listens on PORT: it becomes ready from devup's loop, once the watcher is on.
    fake = f"#!{sys.executable}\nimport os, socket, time\ns = socket.socket()\n"
    fake += "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"  # as servers do
    fake += "s.bind(('127.0.0.1', int(os.environ['PORT'])))\ns.listen()\ntime.sleep(600)\n"
    project.write(
        """
        [services.web]
        cwd = "web"
        cmd = "./nodemon server.js"
        """,
        **{"web/nodemon": fake, "web/server.js": "1\n", ".gitignore": ".env\n"},
    )
    (project.root / "web" / "nodemon").chmod(0o755)
    run = project.start()
    running.append(run)
    run.expect_line(r"web: nodemon reloads itself; devup restarts it only on .*\.env changes")
    first = run.expect_line(r"web started \(pid (\d+)").group(1)
    run.expect_line(r"1 service up")
    # watchdog adds its inotify watches from its own thread: wait until web/ has one (the first
    # watch may be devports.toml's, which made this test miss the .env write on a loaded machine).
    wait_for(
        lambda: inotify_watches_folder(run.proc.pid, project.root / "web"),
        10,
        what="devup's inotify watch on web/",
    )
    (project.root / "web" / "server.js").write_text("2\n")
    (project.root / "web" / ".env").write_text("A=1\n")
    run.expect_line(r"web: (\S+) changed, restarting")
    assert run.lines[-1].endswith("web: .env changed, restarting"), run.lines[-1]
    assert run.expect_line(r"web started \(pid (\d+)").group(1) != first
    assert run.stop() == 130
    assert sum("reloads itself" in line for line in run.lines) == 1


def test_a_config_in_a_missing_folder_is_left_out_of_the_watch(tmp_path: Path) -> None:
    """A file is watched through its folder: Rails' config/application.rb only when config/ is
    there (a missing folder could not be watched and would be reported as an error)."""
    from orchestrator.config.selfreload import watch_paths

    rails = detect("bin/rails server", tmp_path)
    assert rails is not None
    assert tmp_path / "config/application.rb" not in watch_paths(rails, tmp_path)
    (tmp_path / "config").mkdir()
    assert tmp_path / "config/application.rb" in watch_paths(rails, tmp_path)
