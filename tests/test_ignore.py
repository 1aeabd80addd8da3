"""What a service's watcher ignores (defaults, .gitignore files, its own `ignore`), and the guard
that suspends watching a service that keeps restarting itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.ignore import GitIgnores, Ignorer, read_gitignores
from orchestrator.selftrigger import SelfTriggerGuard


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize(
    ("rel", "is_dir"),
    [
        ("node_modules", True),
        ("node_modules/react/index.js", False),
        ("web/node_modules/x.js", False),
        (".git/index", False),
        ("src/__pycache__/app.cpython-311.pyc", False),
        ("lib/x.pyc", False),
        (".venv/bin/python", False),
        ("dist/app.js", False),
        (".devup/logs/api.log", False),
        (".app.py.swp", False),
        ("app.py~", False),
        ("4913", False),
        ("src/.#app.py", False),
        ("app.py___jb_tmp___", False),
        ("app.py___jb_old___", False),
    ],
)
def test_defaults_ignore_tooling_folders_and_editor_temporaries(rel: str, is_dir: bool) -> None:
    ignorer = Ignorer("/p/api", (), GitIgnores())
    assert ignorer.ignored(f"/p/api/{rel}", is_dir)


@pytest.mark.parametrize(
    ("rel", "is_dir"),
    [
        ("db.sqlite3", False),
        ("data/app.sqlite", False),
        ("dev.db", False),
        ("db.sqlite3-journal", False),
        ("db.sqlite3-wal", False),
        ("db.sqlite3-shm", False),
        ("development.log", False),
        ("log", True),
        ("log/development.log", False),
        ("tmp", True),
        ("tmp/pids/server.pid", False),
        (".pytest_cache/v/cache/lastfailed", False),
        (".mypy_cache/3.12/app.json", False),
        (".ruff_cache/x", False),
        (".tox/py312/log", False),
        (".cache/x", False),
        ("coverage/lcov.info", False),
        (".coverage", False),
        (".parcel-cache/x", False),
        (".svelte-kit/generated/root.js", False),
        (".nuxt/app.js", False),
        (".turbo/cookies/1", False),
        ("node_modules/.vite/deps/x.js", False),
        (".vite/x", True),
    ],
)
def test_defaults_ignore_what_applications_and_tools_write_while_they_run(
    rel: str, is_dir: bool
) -> None:
    ignorer = Ignorer("/p/api", (), GitIgnores())
    assert ignorer.ignored(f"/p/api/{rel}", is_dir)


@pytest.mark.parametrize(
    "rel", ["app.py", "src/app.py", "package.json", "distance.py", "4914", "src/tmp/x.py"]
)
def test_source_files_are_not_ignored(rel: str) -> None:
    assert not Ignorer("/p/api", (), GitIgnores()).ignored(f"/p/api/{rel}")


def test_log_and_tmp_are_ignored_only_at_the_services_root() -> None:
    ignorer = Ignorer("/p/api", (), GitIgnores())
    assert not ignorer.ignored("/p/api/src/log", is_dir=True)
    assert not ignorer.ignored("/p/api/src/log/format.py")
    assert not ignorer.ignored("/p/api/app/tmp", is_dir=True)
    assert ignorer.ignored("/p/api/tmp/cache/x.rb")


def test_service_patterns_are_gitignore_style_relative_to_its_cwd() -> None:
    ignorer = Ignorer("/p/api", ("*.log", "tmp/", "/data.json", "!keep.log"), GitIgnores())
    assert ignorer.ignored("/p/api/out.log")
    assert ignorer.ignored("/p/api/sub/deep/out.log")
    assert not ignorer.ignored("/p/api/keep.log")
    assert ignorer.ignored("/p/api/tmp", is_dir=True)
    assert ignorer.ignored("/p/api/src/tmp/x.py")
    assert not ignorer.ignored("/p/api/tmp")  # tmp/ names folders only
    assert ignorer.ignored("/p/api/data.json")
    assert not ignorer.ignored("/p/api/src/data.json")  # anchored to the cwd


def test_a_service_pattern_can_watch_what_a_default_ignores() -> None:
    ignorer = Ignorer("/p/api", ("!dist/",), GitIgnores())
    assert not ignorer.ignored("/p/api/dist/app.js")


def test_nested_gitignores_of_the_repo_apply_with_gits_precedence(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    write(
        tmp_path,
        {
            ".gitignore": "*.gen\nsecrets/\n",
            "services/.gitignore": "!keep.gen\n",
            "services/api/.gitignore": "/local.json\ncache/\n",
            "services/api/pkg/.gitignore": "*.tmp\n",
            "services/api/cache/.gitignore": "!*\n",  # inside an ignored folder: never read
            "devports.toml": "",
        },
    )
    (tmp_path / ".git" / "info").mkdir()
    (tmp_path / ".git" / "info" / "exclude").write_text("*.mine\n")
    api = tmp_path / "services" / "api"
    gitignores = read_gitignores(tmp_path)
    ignorer = Ignorer(str(api), (), gitignores)

    def ignored(rel: str) -> bool:
        return ignorer.ignored(str(api / rel))

    assert ignored("x.gen")
    assert not ignored("keep.gen")
    assert ignored("local.json")
    assert not ignored("pkg/local.json")
    assert ignored("pkg/a.tmp")
    assert not ignored("a.tmp")  # pkg/.gitignore speaks for pkg only
    assert ignored("cache/x.py")
    assert ignored("secrets/key.py")
    assert ignored("notes.mine")
    assert not ignored("app.py")
    assert str(api / "cache") not in gitignores.by_folder


def test_outside_git_the_manifest_folders_gitignore_applies(tmp_path: Path) -> None:
    write(tmp_path, {".gitignore": "*.gen\n", "api/.gitignore": "*.other\n"})
    ignorer = Ignorer(str(tmp_path / "api"), (), read_gitignores(tmp_path))
    assert ignorer.ignored(str(tmp_path / "api" / "x.gen"))
    assert not ignorer.ignored(str(tmp_path / "api" / "x.other"))
    assert not ignorer.ignored(str(tmp_path / "api" / "x.py"))


def test_self_trigger_guard_suspends_on_the_sixth_change_within_the_window() -> None:
    guard = SelfTriggerGuard(limit=5, window_s=10)
    for t in range(5):
        assert guard.check("api", "out.json", float(t), 0.3) is None
    message = guard.check("api", "out.json", 5.0, 0.3)
    assert message is not None
    assert "api: restarted 5 times in 10s" in message
    assert 'add "out.json" to its `ignore`' in message
    assert guard.check("api", "app.py", 100.0, 50.0) == ""  # told once; stays suspended
    assert guard.check("web", "app.py", 5.0, 0.3) is None  # per service


def test_self_trigger_guard_forgets_restarts_older_than_the_window() -> None:
    guard = SelfTriggerGuard(limit=5, window_s=10)
    for t in (0.0, 3.0, 6.0, 9.0, 12.0, 15.0, 18.0, 21.0):
        assert guard.check("api", "app.py", t, 0.3) is None


def test_changes_long_after_a_start_look_like_a_person_and_never_suspend() -> None:
    guard = SelfTriggerGuard(limit=5, window_s=10, soon_s=2)
    for t in range(20):
        assert guard.check("api", "app.py", t * 0.5, 2.5) is None  # saved every 0.5 s, up 2.5 s
        assert guard.check("api", "app.py", t * 0.5, None) is None  # not running: crashed
