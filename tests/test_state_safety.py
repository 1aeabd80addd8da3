"""devup's own files are never a way in: a symlink planted where devup keeps state (or writes an
export) is refused or moved aside, never followed, and a damaged state file gets one error line or
a repair with a warning, never a traceback. Real files, real symlinks, real CLI runs."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from conftest import Project
from test_bad_input import error_line

ONE_SHOT = '[services.a]\ncmd = "echo hello"\nport = false\nrestart = "no"\n'


def test_run_lock_as_a_symlink_is_refused_and_its_target_kept(
    project: Project, tmp_path: Path
) -> None:
    project.write(ONE_SHOT)
    target = tmp_path / "precious"
    target.write_text("precious\n")
    (project.root / ".devup").mkdir(mode=0o700)
    (project.root / ".devup" / "run.lock").symlink_to(target)
    result = project.devup("up", "--no-watch")
    assert result.returncode == 1
    assert error_line(result).startswith(
        f"devup: error: {project.root / '.devup' / 'run.lock'} is a symbolic link (to {target})"
    )
    assert target.read_text() == "precious\n"  # was truncated to devup's pid


def test_a_dangling_log_symlink_is_moved_aside_not_written_through(
    project: Project, tmp_path: Path
) -> None:
    project.write(ONE_SHOT)
    logs = project.root / ".devup" / "logs"
    logs.mkdir(mode=0o700, parents=True)
    target = tmp_path / "created-by-devup"
    (logs / "a.log").symlink_to(target)
    result = project.devup("up", "--no-watch")
    assert result.returncode == 0, result.stderr
    assert not os.path.lexists(target)
    log = logs / "a.log"
    assert stat.S_ISREG(log.lstat().st_mode) and "hello" in log.read_text()
    assert os.readlink(logs / "a.log.prev") == str(target)  # the previous run's, set aside


def test_dot_devup_as_a_symlink_to_a_shared_folder_is_refused_untouched(
    project: Project, tmp_path: Path
) -> None:
    project.write(ONE_SHOT)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    (project.root / ".devup").symlink_to(shared)
    result = project.devup("up", "--no-watch")
    assert result.returncode == 1
    assert error_line(result).startswith(
        f"devup: error: {project.root / '.devup'} is a symbolic link (to {shared})"
    )
    assert result.stderr.splitlines()[1].startswith("hint: remove the link")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777  # was turned 0700
    assert os.listdir(shared) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="making a folder of another user needs root")
def test_dot_devup_of_another_user_is_refused(project: Project) -> None:
    project.write(ONE_SHOT)
    (project.root / ".devup").mkdir(mode=0o755)
    os.chown(project.root / ".devup", 65534, 65534)
    result = project.devup("up", "--no-watch")
    assert result.returncode == 1
    assert "belongs to " in error_line(result) and "(uid 65534), not to you" in error_line(result)
    assert stat.S_IMODE((project.root / ".devup").stat().st_mode) == 0o755


def test_a_dangling_registry_lock_symlink_is_refused(
    project: Project, devup_home: Path, tmp_path: Path
) -> None:
    project.write('[services.a]\ncmd = "true"\n')
    target = tmp_path / "created-by-devup"
    (devup_home / "ports.lock").symlink_to(target)
    result = project.devup("ports")
    assert result.returncode == 1
    assert "ports.lock is a symbolic link" in error_line(result)
    assert not os.path.lexists(target)


def test_the_control_socket_folder_as_a_symlink_is_refused(
    project: Project, devup_home: Path, tmp_path: Path
) -> None:
    project.write(ONE_SHOT)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    (devup_home / "runtime").mkdir()
    (devup_home / "runtime" / "devup").symlink_to(shared)
    result = project.devup("up", "--no-watch")
    assert result.returncode == 1
    assert f"{devup_home / 'runtime' / 'devup'} is a symbolic link" in error_line(result)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777


def test_export_never_writes_through_a_planted_symlink(project: Project, tmp_path: Path) -> None:
    project.write('[services.a]\ncmd = "true"\nenv = { TOKEN = "s3cret" }\n')
    out = project.root / "out"
    out.mkdir()
    stolen = {name: tmp_path / f"stolen{name}" for name in (".env", "Procfile")}
    for name, target in stolen.items():
        (out / f".{name}.devup-tmp").symlink_to(target)  # the old fixed temp names
    result = project.devup("export", "procfile", "-o", "out")
    assert result.returncode == 0, result.stderr
    assert not any(os.path.lexists(target) for target in stolen.values())
    env = out / ".env"
    assert stat.S_ISREG(env.lstat().st_mode) and stat.S_IMODE(env.stat().st_mode) == 0o600
    assert "s3cret" in (out / "Procfile").read_text() + env.read_text()
    planted = [f".{name}.devup-tmp" for name in stolen]
    assert sorted(p.name for p in out.iterdir()) == sorted([".env", "Procfile", *planted])


DAMAGED_REGISTRIES = {
    "a folder": lambda path: path.mkdir(),
    "nested 100,000 deep": lambda path: path.write_text("[" * 100_000 + "]" * 100_000),
    "a 5,000-digit version": lambda path: path.write_text(
        '{"version": ' + "9" * 5000 + ', "projects": {}}'
    ),
    "a 4,000-digit version": lambda path: path.write_text(
        '{"version": ' + "9" * 4000 + ', "projects": {}}'
    ),
    "garbage": lambda path: path.write_bytes(b"\x00\xff garbage"),
    "a symlink": lambda path: path.symlink_to(path.with_name("elsewhere.json")),
}


@pytest.mark.parametrize("damage", DAMAGED_REGISTRIES)
def test_a_damaged_port_registry_is_set_aside_with_a_warning(
    project: Project, devup_home: Path, damage: str
) -> None:
    project.write('[services.a]\ncmd = "true"\n')
    registry = devup_home / "ports.json"
    DAMAGED_REGISTRIES[damage](registry)
    result = project.devup("ports")
    assert "Traceback" not in result.stderr
    assert result.returncode == 0, result.stderr
    assert f"port registry {registry} is " in result.stdout + result.stderr
    aside = [p.name for p in devup_home.iterdir() if p.name.startswith("ports.json.damaged-")]
    assert len(aside) == 1, aside
    assert f"(the damaged one is kept as {aside[0]})" in result.stdout + result.stderr
    doc = json.loads(registry.read_text())
    assert doc["version"] == 1 and len(doc["projects"]) == 1
    again = project.devup("ports")  # repaired: no warning the second time
    assert (again.returncode, again.stderr) == (0, "")
    assert "port registry" not in again.stdout


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_port_registry_is_one_error_line(project: Project, devup_home: Path) -> None:
    project.write('[services.a]\ncmd = "true"\n')
    registry = devup_home / "ports.json"
    registry.write_text('{"version": 1, "projects": {}}')
    registry.chmod(0)
    result = project.devup("ports")
    assert result.returncode == 1
    assert error_line(result) == (
        f"devup: error: cannot read the port registry {registry}: Permission denied"
    )


@pytest.mark.parametrize(
    "content",
    [b"[" * 100_000 + b"]" * 100_000, b'{"services": ' * 50_000],
    ids=["nested", "nested-unclosed"],
)
def test_a_damaged_run_record_is_no_traceback(project: Project, content: bytes) -> None:
    project.write(ONE_SHOT)
    state = project.root / ".devup"
    state.mkdir(mode=0o700)
    (state / "run.json").write_bytes(content)
    for args in (["ports"], ["who", "1"], ["up", "--no-watch"]):
        result = project.devup(*args)
        assert "Traceback" not in result.stderr, (args, result.stderr)
        assert result.returncode in (0, 1), (args, result.stderr)
    assert "hello" in (state / "logs" / "a.log").read_text()


def test_export_refuses_a_planted_symlink_folder(project: Project, tmp_path: Path) -> None:
    project.write('[services.web]\ncmd = "true"\nenv = { TOKEN = "s3cret" }\n')
    out = project.root / "out"
    out.mkdir()
    stolen = tmp_path / "stolen"
    stolen.mkdir()
    (out / "app-web").symlink_to(stolen)  # runit writes app-web/env/TOKEN
    result = project.devup("export", "runit", "--app", "app", "-o", "out")
    assert result.returncode == 1
    assert error_line(result) == (
        f"devup: error: {Path('out/app-web')} is a symbolic link (to {stolen}); "
        "devup does not follow links in what it exports"
    )
    assert os.listdir(stolen) == []


def test_export_to_its_default_folder_refuses_a_dot_devup_symlink(
    project: Project, tmp_path: Path
) -> None:
    project.write('[services.a]\ncmd = "true"\nenv = { TOKEN = "s3cret" }\n')
    shared = tmp_path / "shared"
    shared.mkdir()
    (project.root / ".devup").symlink_to(shared)
    result = project.devup("export", "procfile")
    assert result.returncode == 1
    assert error_line(result).startswith(
        f"devup: error: {project.root / '.devup'} is a symbolic link (to {shared})"
    )
    assert os.listdir(shared) == []
