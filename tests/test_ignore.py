"""What a service's watcher ignores (defaults, .gitignore files, its own `ignore`), and the guard
that suspends watching a service that keeps restarting itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config.ignore import GitIgnores, Ignorer, read_gitignores
from orchestrator.run.selftrigger import SelfTriggerGuard


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
        ("vite.config.ts.timestamp-1700000000000-5f3a9c.mjs", False),
        ("web/vite.config.js.timestamp-1700000000000-5f3a9c.cjs", False),
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


def restart(
    guard: SelfTriggerGuard, gen: int, path: str, up_for_s: float | None, *folded: str
) -> tuple[str, str] | None:
    """One file-change restart of "api"'s process `gen`, as the supervisor reports it."""
    guard.began("api", gen, 4242, path, up_for_s)
    for other in folded:
        guard.folded("api", other, moved_here=False)
    return guard.announce("api", lambda _: True)


def test_a_file_changed_soon_after_each_of_5_starts_it_did_not_cause_suspends_once() -> None:
    guard = SelfTriggerGuard(starts=5, soon_s=2)
    # The first start is devup's own (not caused by out.json): out.json changes 0.1 s into each.
    for gen in range(1, 5):
        assert restart(guard, gen, "out.json", 0.1) == ("out.json", "")
    label, message = restart(guard, 5, "out.json", 0.1) or ("", "")
    assert label == "out.json"
    assert "api: out.json changed within 2s of each of its last 5 starts" in message
    assert "api (pid 4242) writes it itself" in message
    assert 'add "out.json" to its `ignore`' in message
    assert "api" in guard.suspended


def test_a_person_saving_the_same_file_every_half_second_is_never_suspended() -> None:
    guard = SelfTriggerGuard(starts=5, soon_s=2)
    assert restart(guard, 1, "app.py", 30.0) == ("app.py", "")  # the first save, long after
    for gen in range(2, 40):  # each later save 0.4 s into the process the previous one started
        assert restart(guard, gen, "app.py", 0.4) == ("app.py", "")
    assert not guard.suspended


def test_a_streak_breaks_on_another_file_a_late_change_or_a_gap_in_generations() -> None:
    guard = SelfTriggerGuard(starts=3, soon_s=2)
    restart(guard, 1, "out.json", 0.1)
    restart(guard, 2, "out.json", 0.1, "app.py")  # another file changed too
    restart(guard, 3, "out.json", 0.1)
    restart(guard, 4, "out.json", 5.0)  # long after the start
    restart(guard, 5, "out.json", 0.1)
    restart(guard, 7, "out.json", 0.1)  # generation 6 was started by a crash, not this file
    assert not guard.suspended
    restart(guard, 8, "out.json", 0.1)
    assert restart(guard, 9, "out.json", 0.1) != ("out.json", "")
    assert guard.suspended == {"api"}


def test_a_file_moved_into_place_names_the_restart_and_its_temporary_is_no_other_file() -> None:
    guard = SelfTriggerGuard(starts=5, soon_s=2)
    guard.began("api", 1, 4242, "src/sedXtPL6H", 30.0)
    guard.folded("api", "src/app.py", moved_here=True)
    assert guard.announce("api", lambda rel: rel == "src/app.py") == ("src/app.py", "")
    assert guard.announce("api", lambda _: True) is None  # announced once


def test_a_process_holding_the_changed_file_open_for_writing_is_named(tmp_path: Path) -> None:
    import psutil

    from orchestrator.run.selftrigger import holder_of

    path = tmp_path / "data.txt"
    me = psutil.Process()
    with open(path, "a"):
        assert holder_of(str(path), [me]) == (me.pid, me.name())
    with open(path):
        assert holder_of(str(path), [me]) is None  # open for reading only
    guard = SelfTriggerGuard()
    message = guard.suspend_for_holder("api", "data.txt", (4242, "python3"))
    assert "pid 4242 python3 holds it open for writing" in message
    assert guard.suspended == {"api"}


def test_a_gitignore_changed_again_and_again_is_followed_every_time(tmp_path: Path) -> None:
    # The verdict memo was keyed by the id() of a freed spec; a new one often got the same id.
    (tmp_path / ".gitignore").write_text("f0.py\n")
    ig = Ignorer(str(tmp_path), [], read_gitignores(tmp_path))
    wrong = 0
    for i in range(1, 60):
        (tmp_path / ".gitignore").write_text(f"f{i}.py\n")
        ig.forget()
        wrong += not ig.ignored(str(tmp_path / f"f{i}.py"))
        wrong += ig.ignored(str(tmp_path / f"f{i - 1}.py"))
    assert wrong == 0


QUICK_CASES = {
    ".gitignore": "node_modules\n*.log\nbuild/\n/log/\n!keep.log\nsrc/gen\n**/deep/out\nx[!a]y\n"
    "c*che/\n!build/keep/\nfoo**bar\n",
    "src/.gitignore": "!node_modules\n/only-here/\nlib/*/tmp\n",
    "src/app/.gitignore": "*\n!*.py\n!*/\n",
}
QUICK_PATHS = [
    "node_modules/x",
    "a/node_modules/b/c",
    "build/keep/z",
    "build/other/z",
    "log/a/b",
    "src/log/a",
    "src/gen/a/b",
    "a/src/gen/b",
    "src/deep/out/z",
    "deep/out/q",
    "x/y/z",
    "xby/q",
    "cache/a",
    "a/cxxche/b",
    "foo/mid/bar/q",
    "fooXbar/q",
    "src/node_modules/m/n",
    "src/only-here/x",
    "src/a/only-here/x",
    "src/lib/a/tmp/x",
    "src/lib/a/b/tmp/x",
    "src/app/models/x",
    "src/app/models/deeper/y",
    "plain/folder/z",
]


def test_the_quick_prefilter_and_the_walk_s_batches_give_pathspec_s_verdicts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """quickmatch.py only spares pathspec the paths no pattern could match: with it, and for a
    folder's subfolders asked at once (the walk), every verdict is the one pathspec gives alone."""
    from orchestrator.config import quickmatch

    (tmp_path / ".git").mkdir()
    write(tmp_path, {**QUICK_CASES, **{f"{rel}/file.log": "" for rel in QUICK_PATHS}})
    for rel in QUICK_PATHS:
        write(tmp_path, {f"{rel}/keep.log": "", f"{rel}/a.py": "", f"{rel}/xby": ""})
    folders = sorted({str(p.parent) for p in tmp_path.rglob("*") if ".git" not in p.parts})
    files = sorted(str(p) for p in tmp_path.rglob("*") if p.is_file() and ".git" not in p.parts)

    def verdicts(batched: bool) -> dict[str, bool]:
        ig = Ignorer(str(tmp_path), ["/plain/folder/"], read_gitignores(tmp_path))
        found = {}
        for folder in folders:
            names = sorted(p.name for p in Path(folder).iterdir() if p.is_dir())
            paths = [str(Path(folder) / name) for name in names]
            if batched:
                found.update(zip(paths, ig.ignored_folders_in(folder, names), strict=True))
            else:
                found.update((path, ig.ignored(path, True)) for path in paths)
        found.update((path, ig.ignored(path)) for path in files)
        return found

    quick = verdicts(batched=True)
    one_by_one = verdicts(batched=False)
    monkeypatch.setattr(quickmatch.QuickMatch, "could_match", lambda self, subject: True)
    monkeypatch.setattr(
        quickmatch.QuickMatch,
        "could_match_folders_in",
        lambda self, folder, names: [True] * len(names),
    )
    pathspec_alone = verdicts(batched=False)
    assert quick == pathspec_alone
    assert one_by_one == pathspec_alone
    assert 0 < sum(pathspec_alone.values()) < len(pathspec_alone)  # both kinds of verdict
