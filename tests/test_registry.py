"""The lease registry and the private state paths: format, permissions, repair of a damaged
file, pruning, release, and the lock held across processes."""

from __future__ import annotations

import json
import os
import random
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import orchestrator.registry as registry_module
from orchestrator.errors import DevupError
from orchestrator.manifest import Manifest, ServiceSpec, Settings
from orchestrator.paths import (
    devup_home,
    ensure_private_dir,
    project_key,
    project_run_dir,
    write_private_atomic,
)
from orchestrator.ports import allocate_ports
from orchestrator.registry import Registry


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "devup-home"
    monkeypatch.setenv("DEVUP_HOME", str(home))
    return home


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    return root


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_devup_home_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DEVUP_HOME", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert devup_home() == tmp_path / ".local" / "state" / "devup"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/is/ignored")
    assert devup_home() == tmp_path / ".local" / "state" / "devup"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert devup_home() == tmp_path / "state" / "devup"
    monkeypatch.setenv("DEVUP_HOME", str(tmp_path / "mine"))
    assert devup_home() == tmp_path / "mine"


def test_project_run_dir_is_short_and_per_project(home: Path, tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["very-long-folder-name"] * 12)
    assert project_run_dir(deep).parent == home / "run"
    assert len(project_run_dir(deep).name) == 16
    assert project_run_dir(deep) != project_run_dir(tmp_path)


def test_ensure_private_dir_creates_and_tightens(tmp_path: Path) -> None:
    fresh = ensure_private_dir(tmp_path / "a" / "b")
    assert mode(fresh) == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)  # mkdir's mode is masked by the umask
    ensure_private_dir(loose)
    assert mode(loose) == 0o700


def test_write_private_atomic_replaces_whole_file_as_0600(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old, world-readable")
    os.chmod(target, 0o644)
    write_private_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert mode(target) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]  # no temp file left


def test_locked_writes_versioned_private_json(home: Path, project: Path) -> None:
    registry = Registry()
    with registry.locked() as leases:
        leases[project_key(project)] = {"web": 3001, "api": 3000}
    doc = json.loads(registry.path.read_text())
    assert doc == {
        "version": 1,
        "projects": {project_key(project): {"ports": {"api": 3000, "web": 3001}}},
    }
    assert mode(home) == 0o700
    assert mode(registry.path) == 0o600
    assert mode(registry.lock_path) == 0o600
    assert Registry().read() == {project_key(project): {"api": 3000, "web": 3001}}


def test_an_exception_in_the_block_writes_nothing(home: Path, project: Path) -> None:
    registry = Registry()
    with registry.locked() as leases:
        leases[project_key(project)] = {"api": 3000}
    with pytest.raises(RuntimeError), registry.locked() as leases:
        leases[project_key(project)]["api"] = 3999
        raise RuntimeError("boom")
    assert registry.read() == {project_key(project): {"api": 3000}}


def test_an_unchanged_registry_is_not_rewritten(home: Path, project: Path) -> None:
    registry = Registry()
    with registry.locked() as leases:
        leases[project_key(project)] = {"api": 3000}
    inode = registry.path.stat().st_ino
    with registry.locked() as leases:
        assert leases == {project_key(project): {"api": 3000}}
    assert registry.path.stat().st_ino == inode


def test_a_truncated_registry_loads_empty_with_a_warning(home: Path, project: Path) -> None:
    registry = Registry()
    with registry.locked() as leases:
        leases[project_key(project)] = {"api": 3000, "web": 3001}
    whole = registry.path.read_bytes()
    registry.path.write_bytes(whole[: len(whole) // 2])  # as a crash mid-write would leave it
    lo = random.randrange(20000, 59800)  # a window other suites on this machine rarely use

    manifest = Manifest(
        project / "devports.toml",
        Settings(port_range=(lo, lo + 199)),
        {"api": ServiceSpec(name="api", cmd="true", cwd=project)},
    )
    plan = allocate_ports(manifest, ["api"], registry=registry)
    assert plan.ports["api"] is not None
    assert len(plan.messages) == 1
    assert plan.messages[0].startswith(f"port registry {registry.path} is unreadable (")
    assert "ports.json.corrupt" in plan.messages[0]
    assert (home / "ports.json.corrupt").read_bytes() == whole[: len(whole) // 2]
    # Rewritten whole on the way out; the next load is clean.
    fresh = Registry()
    assert fresh.read() == {project_key(project): {"api": plan.ports["api"]}}
    assert fresh.warnings == []


@pytest.mark.parametrize("content", [b"", b"[1, 2]", b'{"projects": {}}', b"\xff\xfe"])
def test_a_registry_of_the_wrong_shape_starts_over(home: Path, content: bytes) -> None:
    registry = Registry()
    ensure_private_dir(home)
    registry.path.write_bytes(content)
    with registry.locked() as leases:
        assert leases == {}
    assert len(registry.warnings) == 1
    assert json.loads(registry.path.read_text()) == {"version": 1, "projects": {}}


def test_malformed_entries_are_dropped_and_the_rest_kept(home: Path, project: Path) -> None:
    registry = Registry()
    ensure_private_dir(home)
    key = project_key(project)
    doc = {
        "version": 1,
        "projects": {
            key: {"ports": {"api": 3000, "web": "3001", "db": True, "big": 70000}},
            str(project / "other"): [],
        },
    }
    registry.path.write_text(json.dumps(doc))
    with registry.locked() as leases:
        assert leases == {key: {"api": 3000}}
    assert registry.warnings == [f"port registry {registry.path}: ignored 4 malformed entries"]


def test_a_newer_registry_version_is_refused_untouched(home: Path) -> None:
    registry = Registry()
    ensure_private_dir(home)
    registry.path.write_text('{"version": 2, "projects": {}}')
    with pytest.raises(DevupError, match="has version 2, this devup reads version 1"):
        registry.read()
    assert registry.path.read_text() == '{"version": 2, "projects": {}}'


def test_leases_of_deleted_projects_are_pruned(home: Path, tmp_path: Path, project: Path) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    registry = Registry()
    with registry.locked() as leases:
        leases[project_key(project)] = {"api": 3000}
        leases[project_key(gone)] = {"api": 3001}
    gone.rmdir()
    with registry.locked() as leases:
        assert leases == {project_key(project): {"api": 3000}}
    assert registry.read() == {project_key(project): {"api": 3000}}


def test_release_forgets_named_services_or_all(home: Path, project: Path) -> None:
    registry = Registry()
    with registry.locked() as leases:
        leases[project_key(project)] = {"api": 3000, "web": 3001, "db": 3002}
    assert registry.release(project, ["web", "nope"]) == ["web"]
    assert registry.read() == {project_key(project): {"api": 3000, "db": 3002}}
    assert sorted(registry.release(project)) == ["api", "db"]
    assert registry.read() == {}


HOLD_LOCK = textwrap.dedent(
    """
    import sys
    from orchestrator.registry import Registry

    with Registry().locked():
        print("locked", flush=True)
        sys.stdin.read()  # held until the test closes our stdin
    """
)


def test_the_lock_excludes_other_processes_and_times_out_with_a_message(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        monkeypatch.setattr(registry_module, "LOCK_TIMEOUT_S", 0.2)
        with pytest.raises(DevupError, match="stayed locked") as exc_info:
            Registry().read()
        assert exc_info.value.hint is not None and "Ctrl-Z" in exc_info.value.hint
        holder.communicate(input="", timeout=10)
        assert holder.returncode == 0
        assert Registry().read() == {}  # free again once the holder is gone
    finally:
        holder.kill()
        holder.wait()


def test_an_unusable_home_is_an_expected_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("DEVUP_HOME", str(blocker / "devup"))
    with pytest.raises(DevupError, match="cannot use the port registry") as exc_info:
        Registry().read()
    assert exc_info.value.hint == "set DEVUP_HOME to a folder you can write"
