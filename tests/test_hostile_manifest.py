"""Manifests and environments that would hurt devup itself: a service that takes devup's own name,
names that turn the terminal's text around, values too large to start a program with, `${V}`
chains that grow without bound, and watching the whole machine or the kernel's pseudo files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import Project
from test_bad_input import error_line

from orchestrator.base.mounts import mount_types


@pytest.mark.parametrize("name", ["devup", "DevUp"])
def test_a_service_named_devup_is_a_manifest_error(project: Project, name: str) -> None:
    project.write(f'[services.{name}]\ncmd = "true"\n')
    result = project.devup("check")
    assert result.returncode == 2
    assert error_line(result) == (
        f'devup: error: devports.toml:4: service "{name}": "devup" names devup\'s own lines '
        "and log; a service needs another name"
    )
    assert result.stderr.splitlines()[1] == f"hint: rename it, e.g. [services.{name}-app]"


def test_a_procfile_line_named_devup_is_fine(project: Project) -> None:
    project.write('[services.x]\nprocfile = "Procfile"\n', Procfile="devup: true\n")
    result = project.devup("check")
    assert result.returncode == 0, result.stderr
    assert "x.devup" in result.stdout


@pytest.mark.parametrize(
    ("char", "shown"),
    [
        ("\u202e", "\\u202e"),  # RIGHT-TO-LEFT OVERRIDE
        ("\u2066", "\\u2066"),  # LEFT-TO-RIGHT ISOLATE
        ("\u200f", "\\u200f"),  # RIGHT-TO-LEFT MARK
        ("\u200b", "\\u200b"),  # ZERO WIDTH SPACE (a format character)
        ("\u2028", "\\u2028"),  # LINE SEPARATOR
        ("\x85", "\\u0085"),  # NEXT LINE (a C1 control)
    ],
)
def test_bidi_and_format_characters_in_names_are_shown_escaped(
    project: Project, char: str, shown: str
) -> None:
    project.write(f'[services."a{char}b"]\ncmd = "true"\n')
    result = project.devup("check")
    assert result.returncode == 2
    assert f'service "a{shown}b": a service name may contain only' in error_line(result)
    project.write(f'[services.c]\ncmd = "true"\ndepends_on = ["x{char}"]\n')
    result = project.devup("check")
    assert result.returncode == 2
    assert f'depends_on names unknown service "x{shown}"' in error_line(result)
    project.write('[services.c]\ncmd = "true"\n')
    result = project.devup("run", f"x{char}", "--", "true")
    assert result.returncode == 2
    assert error_line(result) == f'devup: error: unknown service "x{shown}"'
    assert char not in result.stderr


def test_a_bidi_control_in_a_path_is_shown_escaped(project: Project) -> None:
    project.write('[services.a]\ncmd = "true"\ncwd = "x\u202ey"\n')
    result = project.devup("check")
    assert result.returncode == 2
    assert error_line(result).endswith(f'cwd "x\\u202ey" does not exist ({project.root}/x\\u202ey)')
    (project.root / "x\u202ey").mkdir()
    project.write('[services.a]\ncmd = "true"\nenv_file = "x\u202ey"\n')
    result = project.devup("env", "a")
    assert result.returncode == 1
    assert error_line(result) == (
        f"devup: error: cannot read env file {project.root}/x\\u202ey: Is a directory"
    )
    assert "\u202e" not in result.stderr


def test_a_bidi_control_in_an_unknown_command_is_shown_escaped(project: Project) -> None:
    project.write('[services.a]\ncmd = "true"\n')
    result = project.devup("x\u202ey")
    assert result.returncode == 2
    assert error_line(result) == 'devup: error: no command "x\\u202ey"'
    assert result.stderr.splitlines()[1].endswith("to start a service: devup up x\\u202ey")


BIG = "x" * 200_000


def test_an_env_value_too_large_to_exec_is_named_in_run(project: Project) -> None:
    project.write('[services.a]\ncmd = "true"\nport = false\nenv_file = ".env"\n')
    (project.root / ".env").write_text(f"SMALL=1\nHUGE_TOKEN={BIG}\n")
    (project.root / ".env").chmod(0o600)
    result = project.devup("run", "a", "--", "true")
    assert result.returncode == 126
    assert error_line(result) == (
        "devup: error: cannot run true: environment variable HUGE_TOKEN is 200,012 bytes, "
        "over the 128 KiB one may hold"
    )


def test_an_env_value_too_large_to_exec_is_named_in_up(project: Project) -> None:
    project.write('[services.a]\ncmd = "true"\nport = false\nenv_file = ".env"\n')
    (project.root / ".env").write_text(f"HUGE_TOKEN={BIG}\n")
    (project.root / ".env").chmod(0o600)
    result = project.devup("up", "--no-watch")
    assert result.returncode == 1
    assert "a could not start: environment variable HUGE_TOKEN is 200,012 bytes, over the " \
           "128 KiB one may hold" in result.stdout  # fmt: skip
    assert "every service has exited (a failed)" in result.stdout


def test_doubling_references_are_capped_naming_the_variable(project: Project) -> None:
    doubling = ", ".join(f'V{i} = "${{V{i - 1}}}${{V{i - 1}}}"' for i in range(1, 21))
    project.write(f'[services.a]\ncmd = "true"\nenv = {{ V0 = "{"x" * 64}", {doubling} }}\n')
    assert (project.root / "devports.toml").stat().st_size < 700
    result = project.devup("env", "a", timeout=20)
    assert result.returncode == 2
    # V11 is 128 KiB exactly, the most a value may hold; V12 would be 256 KiB.
    assert error_line(result) == (
        'devup: error: devports.toml:4: service "a": env "V12" expands to more than 128 KiB '
        "(the most one variable may hold)"
    )


def test_doubling_references_in_an_env_file_are_capped_naming_the_variable(
    project: Project,
) -> None:
    # python-dotenv resolves ${V} from the file's earlier lines: 40 lines would make 2**40 bytes.
    lines = ["V0=" + "x" * 64, *(f"V{i}=${{V{i - 1}}}${{V{i - 1}}}" for i in range(1, 41))]
    (project.root / ".env").write_text("\n".join(lines) + "\n")
    project.write('[services.a]\ncmd = "true"\nenv_file = ".env"\n')
    result = project.devup("env", "a", timeout=20)
    assert result.returncode == 1
    assert error_line(result) == (
        f"devup: error: env file {project.root / '.env'}: V12 expands to more than 128 KiB "
        "(the most one variable may hold)"
    )


@pytest.mark.parametrize(
    ("watch", "problem"),
    [
        ('"/"', 'watch "/" is the root folder: that would watch the whole machine'),
        ('"/proc"', 'watch "/proc" is on a proc file system'),
        ('"/proc/sys"', 'watch "/proc/sys" is on a proc file system'),
        ('"/sys"', 'watch "/sys" is on a sysfs file system'),
        ('"/dev"', 'watch "/dev" is on a devtmpfs file system'),
    ],
)
def test_watching_the_root_or_a_pseudo_file_system_is_a_manifest_error(
    project: Project, watch: str, problem: str
) -> None:
    path = Path(watch.strip('"'))
    if path != Path("/"):
        device = path.stat().st_dev
        fstype = mount_types().get(f"{os.major(device)}:{os.minor(device)}")
        if fstype is None or f" on a {fstype} " not in problem:
            pytest.skip(f"{path} is on {fstype} here")
    project.write(f'[services.a]\ncmd = "true"\nwatch = ["src", {watch}]\n')
    result = project.devup("check")
    assert result.returncode == 2
    assert problem in error_line(result)
    assert error_line(result).startswith('devup: error: devports.toml:6: service "a": ')


def test_watching_a_folder_that_holds_a_pseudo_file_system_is_a_manifest_error(
    project: Project,
) -> None:
    cgroups = Path("/sys/fs/cgroup")
    below = [p for p in cgroups.iterdir() if os.path.ismount(p)] if cgroups.is_dir() else []
    device = cgroups.stat().st_dev if cgroups.is_dir() else 0
    if not below or mount_types().get(f"{os.major(device)}:{os.minor(device)}") != "tmpfs":
        pytest.skip("no tmpfs /sys/fs/cgroup holding cgroup mounts here")
    project.write('[services.a]\ncmd = "true"\nwatch = ["/sys/fs/cgroup"]\n')
    result = project.devup("check")
    assert result.returncode == 2
    assert 'watch "/sys/fs/cgroup" holds a cgroup' in error_line(result)


def test_a_cwd_of_root_watched_by_default_is_a_manifest_error(project: Project) -> None:
    project.write('[services.a]\ncmd = "true"\ncwd = "/"\n')
    result = project.devup("check")
    assert result.returncode == 2
    assert 'cwd "/" is the root folder' in error_line(result)
    project.write('[services.a]\ncmd = "true"\ncwd = "/"\nwatch = false\n')
    assert project.devup("check").returncode == 0


def test_an_environment_too_large_as_a_whole_is_said_in_run(project: Project) -> None:
    # Each value under the limit of one variable (and the env file under its 1 MiB), together
    # over ARG_MAX: nine values in the file, each copied into three more by the env table.
    if os.sysconf("SC_ARG_MAX") >= 36 * 100_000:
        pytest.skip(f"ARG_MAX is {os.sysconf('SC_ARG_MAX')} here (stack limit)")
    copies = ", ".join(f'W{i}_{j} = "${{V{i}}}"' for i in range(9) for j in range(3))
    project.write(f'[services.a]\ncmd = "true"\nport = false\nenv_file = ".env"\n'
                  f"env = {{ {copies} }}\n")  # fmt: skip
    (project.root / ".env").write_text("".join(f"V{i}={'x' * 100_000}\n" for i in range(9)))
    (project.root / ".env").chmod(0o600)
    result = project.devup("run", "a", "--", "true")
    assert result.returncode == 126
    assert error_line(result).startswith(
        "devup: error: cannot run true: the environment and arguments take "
    )
    assert error_line(result).endswith(
        f"bytes together, over the {os.sysconf('SC_ARG_MAX'):,} bytes a program may be started with"
    )
