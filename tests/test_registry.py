"""The lease registry and the private state paths: format, permissions, repair of a damaged
file, pruning, release, and the lock held across processes."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import port_window, wait_for

import orchestrator.ports.registry as registry_module
from orchestrator.base.errors import DevupError
from orchestrator.base.paths import (
    devup_home,
    ensure_private_dir,
    project_key,
    project_run_dir,
    write_private_atomic,
)
from orchestrator.config.manifest import Manifest, ServiceSpec, Settings
from orchestrator.ports.allocation import allocate_ports
from orchestrator.ports.registry import Registry


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


def test_project_run_dir_name_is_the_sha256_of_the_real_path(home: Path, tmp_path: Path) -> None:
    # A running devup and the `devup status` of another devup version must agree on the name.
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "real", target_is_directory=True)
    digest = hashlib.sha256(os.path.realpath(link).encode()).hexdigest()
    assert project_run_dir(link).name == digest[:16]


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
    lo, hi = port_window(200)  # a window other suites on this machine rarely use

    manifest = Manifest(
        project / "devports.toml",
        Settings(port_range=(lo, hi)),
        {"api": ServiceSpec(name="api", cmd="true", cwd=project)},
    )
    plan = allocate_ports(manifest, ["api"], registry=registry)
    assert plan.ports["api"] is not None
    assert len(plan.messages) == 1
    assert plan.messages[0].startswith(f"port registry {registry.path} is unreadable (")
    (aside,) = home.glob("ports.json.damaged-*")
    assert f"kept as {aside.name}" in plan.messages[0]
    assert aside.read_bytes() == whole[: len(whole) // 2]
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


def test_a_deleted_projects_leases_are_kept_and_its_absence_recorded(
    home: Path, tmp_path: Path, project: Path
) -> None:
    """Dropped only by `ports --prune` or 30 days on (test_worktrees.py): a folder on a disk
    not mounted today keeps its ports."""
    gone = tmp_path / "gone"
    gone.mkdir()
    registry = Registry()
    with registry.locked() as leases:
        leases[project_key(project)] = {"api": 3000}
        leases[project_key(gone)] = {"api": 3001}
    gone.rmdir()
    before = time.time()
    with registry.locked() as leases:
        assert leases == {project_key(project): {"api": 3000}, project_key(gone): {"api": 3001}}
    assert list(registry.missing) == [project_key(gone)]
    assert int(before) <= registry.missing[project_key(gone)] <= time.time()
    doc = json.loads(registry.path.read_text())
    assert doc["projects"][project_key(gone)]["missing_since"] == int(
        registry.missing[project_key(gone)]
    )
    assert registry.prune() == {project_key(gone): {"api": 3001}}
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
    from orchestrator.ports.registry import Registry

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


# -- a devup killed inside a write -------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import os, random, sys
    import orchestrator.ports.registry as registry_module
    from orchestrator.ports.registry import Registry

    root, pause_in, flag = sys.argv[1], sys.argv[2], sys.argv[3]
    if pause_in != "never":
        # Stop inside write_private_atomic at a chosen step, for the test to SIGKILL us there.
        def pause(*args, **kwargs):
            print("paused", flush=True)
            sys.stdin.read()
        setattr(os, pause_in, pause)
    # The flag file holds 1 while the registry writes ports.json, 0 otherwise: after a SIGKILL
    # the test reads there whether the kill landed inside a write, however the write is made.
    flag_fd = os.open(flag, os.O_RDWR | os.O_CREAT, 0o600)
    write = registry_module.write_private_atomic
    def observed_write(path, data, **kwargs):
        os.pwrite(flag_fd, b"1", 0)
        write(path, data, **kwargs)
        os.pwrite(flag_fd, b"0", 0)
    registry_module.write_private_atomic = observed_write
    while True:
        with Registry().locked() as leases:
            leases[root] = {f"s{i}": random.randrange(1024, 65536) for i in range(3000)}
    """
)


def start_writer(project: Path, pause_in: str, flag: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(project), pause_in, str(flag)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def temp_files(home: Path) -> list[Path]:
    return list(home.glob(".ports.json.*.tmp"))


@pytest.mark.parametrize("pause_in", ["fsync", "replace"])
def test_a_devup_killed_inside_a_write_leaves_the_old_registry(
    home: Path, project: Path, pause_in: str
) -> None:
    registry = Registry()
    with registry.locked() as leases:
        leases[project_key(project)] = {"api": 3000}
    writer = start_writer(project, pause_in, project.parent / "inside-a-write")
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "paused\n"
        assert len(temp_files(home)) == 1  # the new file is written, not yet renamed
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
    finally:
        writer.kill()
        writer.wait()
    assert registry.read() == {project_key(project): {"api": 3000}}
    assert registry.warnings == []
    with registry.locked() as leases:  # the next writer sweeps what the killed one left
        assert leases == {project_key(project): {"api": 3000}}
    assert temp_files(home) == []


def test_a_devup_killed_at_random_points_of_its_writes_leaves_a_loadable_registry(
    home: Path, project: Path, tmp_path: Path
) -> None:
    # Kills at random points until enough of them landed inside a write (the writer says so in
    # `flag`); the registry must load whole after every kill, those above all.
    flag = tmp_path / "inside-a-write"
    wanted, kills, inside = 4, 0, 0
    deadline = time.monotonic() + 40
    while inside < wanted:
        assert time.monotonic() < deadline, f"only {inside} of {kills} kills landed inside a write"
        flag.unlink(missing_ok=True)
        writer = start_writer(project, "never", flag)
        try:
            wait_for(lambda: flag.exists() and flag.read_bytes() == b"0", 10, what="a write")
            time.sleep(random.uniform(0.0, 0.2))  # a random point in the write loop
            writer.send_signal(signal.SIGKILL)
            writer.wait(timeout=10)
        finally:
            writer.kill()
            writer.wait()
        kills += 1
        inside += flag.read_bytes() == b"1"
        registry = Registry()
        leases = registry.read()
        assert registry.warnings == [] and not list(home.glob("ports.json.damaged-*"))
        assert list(leases) == [project_key(project)] and len(leases[project_key(project)]) == 3000


# -- many devups at once -----------------------------------------------------------------------

ALLOCATOR = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from orchestrator.config.manifest import Manifest, ServiceSpec, Settings
    from orchestrator.ports.allocation import allocate_ports

    root, lo, hi = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    names = [f"svc{i}" for i in range(5)]
    specs = {n: ServiceSpec(name=n, cmd="true", cwd=root) for n in names}
    manifest = Manifest(root / "devports.toml", Settings(port_range=(lo, hi)), specs)
    for line in sys.stdin:  # one round per line, all children released at once
        print(json.dumps(allocate_ports(manifest, names).ports), flush=True)
    """
)


def test_twenty_devups_in_twenty_projects_get_100_distinct_ports_in_each_of_10_rounds(
    home: Path, tmp_path: Path, pool: tuple[int, int]
) -> None:
    roots = []
    for i in range(20):
        root = tmp_path / f"p{i}"
        root.mkdir()
        roots.append(root)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ALLOCATOR, str(root), str(pool[0]), str(pool[1])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for root in roots
    ]
    try:
        for _ in range(10):
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            plans = [json.loads(proc.stdout.readline()) for proc in procs if proc.stdout]
            ports = [port for plan in plans for port in plan.values()]
            assert len(ports) == 100 and len(set(ports)) == 100
            assert all(pool[0] <= p <= pool[1] for p in ports)
            assert Registry().read() == {
                project_key(r): plan for r, plan in zip(roots, plans, strict=True)
            }
            with Registry().locked() as leases:  # the next round starts from nothing again
                leases.clear()
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


# -- the CLI --------------------------------------------------------------------------------------


def test_devup_ports_release_forgets_this_projects_leases(
    home: Path, project: Path, tmp_path: Path
) -> None:
    lo, _ = port_window(200)
    (project / "devports.toml").write_text(
        f'[devup]\nports = "{lo}-{lo + 199}"\n[services.api]\ncmd = "x"\n[services.web]\ncmd = "x"\n'
    )
    other = tmp_path / "other"
    other.mkdir()
    with Registry().locked() as leases:
        leases[project_key(other)] = {"api": lo + 150}

    def devup(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "orchestrator", *args],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return result.stdout

    ports = json.loads(devup("ports", "--json"))["services"]
    assert Registry().read()[project_key(project)] == {
        "api": ports["api"]["port"],
        "web": ports["web"]["port"],
    }
    assert devup("ports", "--release", "web") == "released the leases of web\n"
    assert Registry().read()[project_key(project)] == {"api": ports["api"]["port"]}
    assert devup("ports", "--release") == "released the leases of api\n"
    assert devup("ports", "--release") == "no leases to release\n"
    assert Registry().read() == {project_key(other): {"api": lo + 150}}  # others' untouched
    typo = subprocess.run(
        [sys.executable, "-m", "orchestrator", "ports", "--release", "wbe"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (typo.returncode, typo.stderr.splitlines()[0]) == (
        2,
        'devup: error: unknown service "wbe"',
    )


def test_a_damaged_temporary_ports_file_is_no_loss(tmp_path: Path) -> None:
    # A NUL in a project folder's name made every devup command of the user fail.
    (tmp_path / "temporary.json").write_text(
        '{"version": 1, "projects": {"/tmp/x\\u0000y": {"pid": 5, "ports": {"a": 3000}}}}'
    )
    registry = Registry(tmp_path)
    with registry.locked() as leases:
        assert leases == {} and registry.temporary == {}
