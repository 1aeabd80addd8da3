"""Each git worktree of a repository is its own project: two worktrees run at once on ports of
their own, and `who`, `status` and `ports --all` name the folder and branch that own a port;
`ports --prune` drops a removed worktree's leases, and the registry drops a folder's 30 days after
it was first seen gone. Real git repositories, real runs, a real registry file."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, DevupProcess, Project

from orchestrator.base.gitbranch import branch_of
from orchestrator.base.paths import control_dir, ensure_private_dir, project_key
from orchestrator.control import client
from orchestrator.ports.registry import MISSING_PRUNE_S, Registry
from orchestrator.system import runalive

SERVER = f"{sys.executable} {REPO / 'tests' / 'fixtures' / 'server.py'}"
DAY_S = 86400


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout.strip()


def make_repo(root: Path, pool: tuple[int, int]) -> Project:
    """A repository on branch main holding a two-service devports.toml, committed."""
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    project = Project(root, pool)
    project.write(f"""
        [services.api]
        cmd = "{SERVER}"
        [services.web]
        cmd = "{SERVER}"
    """)
    (root / ".gitignore").write_text(".devup/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "services")
    return project


def test_the_branch_is_read_from_git_files_in_a_repo_a_worktree_and_detached(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    assert branch_of(repo) is None  # not in git
    git(repo, "init", "-q", "-b", "main")
    (repo / "sub").mkdir()
    (repo / "sub" / "f").write_text("x")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "one")
    assert branch_of(repo) == "main"
    assert branch_of(repo / "sub") == "main"  # a project folder below the repository's root
    git(repo, "worktree", "add", "-q", "-b", "feat/x", str(tmp_path / "wt"))
    assert (tmp_path / "wt" / ".git").is_file()  # `gitdir: ...`, as git writes it
    assert branch_of(tmp_path / "wt") == "feat/x"
    git(tmp_path / "wt", "checkout", "-q", "--detach")
    assert branch_of(tmp_path / "wt") == git(repo, "rev-parse", "--short=7", "HEAD")
    assert branch_of(repo) == "main"  # each worktree has its own HEAD

    # What is not git's own shape names no branch and never hangs (`status` reads it each time).
    odd = tmp_path / "odd"
    (odd / ".git").mkdir(parents=True)
    os.mkfifo(odd / ".git" / "HEAD")
    assert branch_of(odd) is None
    (tmp_path / "file").mkdir()
    (tmp_path / "file" / ".git").write_text("not a gitdir line\n")
    assert branch_of(tmp_path / "file") is None


def test_two_worktrees_run_at_once_on_their_own_ports_and_are_named_by_branch(
    tmp_path: Path, pool: tuple[int, int], running: list[DevupProcess]
) -> None:
    main = make_repo(tmp_path / "shop", pool)
    feat_root = tmp_path / "shop-feat"
    git(main.root, "worktree", "add", "-q", "-b", "feat-b", str(feat_root))
    feat = Project(feat_root, pool)

    runs = [main.start("--no-watch"), feat.start("--no-watch")]
    running.extend(runs)
    for run in runs:
        run.expect_line(r"2 services up", timeout=30)

    status = {}
    for project, branch in ((main, "main"), (feat, "feat-b")):
        result = project.devup("status", "--json")
        assert result.returncode == 0, result.stderr
        doc = json.loads(result.stdout)
        assert (doc["folder"], doc["branch"]) == (project_key(project.root), branch)
        status[branch] = {name: svc["port"] for name, svc in doc["services"].items()}
        text = project.devup("status").stdout.splitlines()[0]
        assert text == f"devup pid {doc['pid']} in {project_key(project.root)} (branch {branch})"
    main_ports, feat_ports = set(status["main"].values()), set(status["feat-b"].values())
    assert len(main_ports) == len(feat_ports) == 2
    assert not main_ports & feat_ports

    # Asked from either worktree, `who` names the one that owns the port.
    for port, owner_root, branch in (
        (status["feat-b"]["api"], feat.root, "feat-b"),
        (status["main"]["web"], main.root, "main"),
    ):
        for asking in (main, feat):
            result = asking.devup("who", str(port), "--json")
            assert result.returncode == 0, result.stderr
            owner = json.loads(result.stdout)["listeners"][0]["owner"]
            assert (owner["project"], owner["branch"]) == (project_key(owner_root), branch)
            assert owner["kind"] == ("this" if asking.root == owner_root else "other")
        text = main.devup("who", str(port)).stdout
        assert f"  project  {project_key(owner_root)} (branch {branch})" in text

    listing = json.loads(main.devup("ports", "--all", "--json").stdout)
    by_folder = {p["folder"]: p for p in listing["projects"]}
    for project, branch in ((main, "main"), (feat, "feat-b")):
        entry = by_folder[project_key(project.root)]
        assert (entry["branch"], entry["running"], entry["exists"]) == (branch, True, True)
        assert entry["leases"] == status[branch]
        assert entry["devup_pid"] == json.loads(project.devup("status", "--json").stdout)["pid"]
    text = main.devup("ports", "--all").stdout
    assert f"{project_key(feat.root)}" in text and "feat-b" in text

    for run in runs:
        assert run.stop() == 130
    git(main.root, "worktree", "remove", str(feat_root))
    assert not feat_root.exists()

    pruned = main.devup("ports", "--prune")
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.splitlines() == [
        f"dropped the leases of {project_key(feat_root)}: "
        + ", ".join(f"{n} {p}" for n, p in sorted(status["feat-b"].items()))
    ]
    assert Registry().read() == {project_key(main.root): status["main"]}
    assert "nothing to prune" in main.devup("ports", "--prune").stdout


def write_registry(home: Path, projects: dict[str, dict[str, object]]) -> None:
    ensure_private_dir(home)
    doc = {"version": 1, "projects": projects}
    (home / "ports.json").write_text(json.dumps(doc))


def test_a_folder_gone_more_than_30_days_loses_its_leases_on_the_next_write(
    devup_home: Path, tmp_path: Path
) -> None:
    now = time.time()
    here = tmp_path / "here"
    here.mkdir()
    back = tmp_path / "back"  # gone once, there again: the record of its absence is dropped
    back.mkdir()
    gone_31, gone_29, gone_now = (str(tmp_path / n) for n in ("gone-31", "gone-29", "gone-now"))
    write_registry(
        devup_home,
        {
            project_key(here): {"ports": {"api": 3000}},
            project_key(back): {"ports": {"api": 3001}, "missing_since": int(now - 31 * DAY_S)},
            gone_31: {"ports": {"api": 3002}, "missing_since": int(now - 31 * DAY_S)},
            gone_29: {"ports": {"api": 3003}, "missing_since": int(now - 29 * DAY_S)},
            gone_now: {"ports": {"api": 3004}},
        },
    )
    assert MISSING_PRUNE_S == 30 * DAY_S
    with Registry().locked():
        pass
    projects = json.loads((devup_home / "ports.json").read_text())["projects"]
    assert sorted(projects) == sorted([project_key(here), project_key(back), gone_29, gone_now])
    assert projects[gone_29]["missing_since"] == int(now - 29 * DAY_S)  # unchanged
    assert now - 5 <= projects[gone_now]["missing_since"] <= time.time()  # first seen gone now
    assert "missing_since" not in projects[project_key(back)]
    assert "missing_since" not in projects[project_key(here)]

    listing = json.loads(
        subprocess.run(
            [sys.executable, "-m", "orchestrator", "ports", "--all", "--json"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    )
    gone = next(p for p in listing["projects"] if p["folder"] == gone_29)
    assert (gone["exists"], gone["running"], gone["branch"]) == (False, False, None)
    assert gone["missing_since"].startswith(
        time.strftime("%Y-%m-%d", time.localtime(now - 29 * DAY_S))
    )


def test_a_gone_folder_whose_devup_still_runs_is_never_dropped(
    devup_home: Path, tmp_path: Path
) -> None:
    """A worktree removed under a running devup: its run lock went with the folder, but the
    devup still answers on its control socket, so neither rule drops its leases."""
    gone = str(tmp_path / "removed-under-a-run")
    write_registry(
        devup_home,
        {gone: {"ports": {"api": 3005}, "missing_since": int(time.time() - 31 * DAY_S)}},
    )
    folder = ensure_private_dir(control_dir(Path(gone)))
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(folder / client.SOCKET_NAME))
        listener.listen()
        assert runalive.run_is_up(gone)
        with Registry().locked():
            pass
        assert Registry().prune() == {}
        assert Registry().read() == {gone: {"api": 3005}}
    # The socket a killed devup left, nobody listening: gone for good.
    assert not runalive.run_is_up(gone)
    assert Registry().prune() == {gone: {"api": 3005}}
    assert Registry().read() == {}


def test_the_socket_name_agrees_with_the_control_client() -> None:
    assert runalive.SOCKET_NAME == client.SOCKET_NAME


@pytest.mark.parametrize("args", [["--all", "api"], ["--prune", "--release"]])
def test_all_and_prune_refuse_services_and_release(tmp_path: Path, args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", "ports", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ},
    )
    assert result.returncode == 2
    assert result.stderr.startswith("devup: error: --all and --prune")


def test_the_run_record_does_not_make_a_deleted_project_folder_again(tmp_path: Path) -> None:
    """A worktree removed under its running devup: the run's next record must not bring back
    FOLDER/.devup, or `ports --prune` could never drop its leases (nor `git worktree add` it)."""
    from orchestrator.system import runstate

    gone = tmp_path / "removed-worktree"
    runstate.write_state(gone, "run-id", {})
    assert not gone.exists()


def test_a_worktree_holding_another_ones_run_record_leaves_its_services_alone(
    tmp_path: Path, pool: tuple[int, int], running: list[DevupProcess]
) -> None:
    """A .devup/ committed to git comes along into a new worktree: its run record names the
    other worktree's running services, which must not be taken for this one's leftovers."""
    main = make_repo(tmp_path / "shop", pool)
    feat_root = tmp_path / "shop-feat"
    git(main.root, "worktree", "add", "-q", "-b", "feat", str(feat_root))
    feat = Project(feat_root, pool)
    first = main.start("--no-watch")
    running.append(first)
    first.expect_line(r"2 services up", timeout=30)
    pids = {
        n: s["pid"]
        for n, s in json.loads(main.devup("status", "--json").stdout)["services"].items()
    }

    (feat_root / ".devup").mkdir()
    (feat_root / ".devup" / "run.json").write_bytes(
        (main.root / ".devup" / "run.json").read_bytes()
    )
    second = feat.start("--no-watch")
    running.append(second)
    second.expect_line(r"2 services up", timeout=30)
    assert not any("left by" in line or "survived" in line for line in second.lines), second.lines
    after = json.loads(main.devup("status", "--json").stdout)["services"]
    assert {n: s["pid"] for n, s in after.items()} == pids
    assert all(s["state"] == "ready" for s in after.values()), after
    for run in (first, second):
        assert run.stop() == 130


def test_devup_keeps_its_state_folder_out_of_git(
    tmp_path: Path, pool: tuple[int, int], running: list[DevupProcess]
) -> None:
    """No .gitignore names .devup/: `git add -A` still must not take a run's record and logs."""
    root = tmp_path / "app"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    project = Project(root, pool)
    project.write(f"""
        [services.api]
        cmd = "{SERVER}"
    """)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "services")
    run = project.start("--no-watch")
    running.append(run)
    run.expect_line(r"1 service up", timeout=30)
    assert run.stop() == 130
    assert (root / ".devup" / "run.json").exists() or (root / ".devup" / "logs").is_dir()
    assert git(root, "status", "--porcelain") == ""
