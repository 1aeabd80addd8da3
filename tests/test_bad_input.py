"""Hostile input never gets a traceback: one `devup: error:` line (and a hint), the right exit
code, and nothing lost. Each case here once ended in a Python traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import DEVUP, Project

from orchestrator.config.ignore import Ignorer, read_gitignores


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a failed run (a hint line may follow; nothing else may)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert lines and lines[0].startswith("devup: error: "), result.stderr
    assert all(line.startswith("hint: ") for line in lines[1:]), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("service", "key"),
    [
        ('cmd = "echo a\\u0000b"', '"cmd"'),
        ('cmd = "true"\ncwd = "a\\u0000b"', '"cwd"'),
        ('cmd = "true"\nwatch = ["src", "a\\u0000b"]', '"watch"'),
        ('cmd = "true"\nenv = { A = "x\\u0000" }', 'env "A"'),
    ],
)
def test_a_nul_character_is_a_manifest_error(project: Project, service: str, key: str) -> None:
    # The OS takes C strings: at `devup up` these were "ValueError: embedded null byte".
    project.write(f"[services.a]\n{service}\n")
    result = project.devup("check")
    assert result.returncode == 2
    assert error_line(result).endswith(
        f'service "a": {key} must not contain a NUL character (\\u0000)'
    )


def test_a_regex_with_a_huge_repeat_is_a_manifest_error(project: Project) -> None:
    project.write('[services.a]\ncmd = "true"\nready_log = "a{99999999999}"\n')
    result = project.devup("check")
    assert result.returncode == 2
    assert error_line(result) == (
        'devup: error: devports.toml:6: service "a": "ready_log" is not a valid regex: '
        "the repetition number is too large"
    )


def test_a_cwd_name_too_long_for_the_os_is_a_manifest_error(project: Project) -> None:
    project.write(f'[services.a]\ncmd = "true"\ncwd = "{"a" * 300}"\n')
    result = project.devup("check")
    assert result.returncode == 2
    assert "cannot be used: File name too long" in error_line(result)


def test_toml_nested_too_deeply_is_a_manifest_error(project: Project) -> None:
    (project.root / "devports.toml").write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    result = project.devup("check")
    assert result.returncode == 2
    assert error_line(result) == (
        "devup: error: devports.toml: invalid TOML: arrays or tables nested too deeply"
    )


def test_an_invalid_ignore_pattern_is_a_manifest_error(project: Project) -> None:
    project.write('[services.a]\ncmd = "true"\nignore = ["*.log", "tmp\\\\"]\n')
    result = project.devup("check")
    assert result.returncode == 2
    assert error_line(result) == (
        'devup: error: devports.toml:6: service "a": ignore pattern "tmp\\\\" is not a valid '
        "gitignore pattern"
    )


def test_an_invalid_gitignore_line_is_skipped_as_git_does(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("*.log\ntmp\\\n!\n")
    ignorer = Ignorer(str(tmp_path), [], read_gitignores(tmp_path))
    assert ignorer.ignored(str(tmp_path / "x.log"))
    assert not ignorer.ignored(str(tmp_path / "x.py"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("A=1\nB='unclosed\n", ".env:2: cannot parse the line of 'B' (value not shown)"),
        ("A=1\nB=x\0y\n", ".env:2: a NUL character (\\0)"),
        ("A=1\nB=\xff\n", ".env:2: not valid UTF-8"),
    ],
)
def test_a_broken_env_file_is_one_line_naming_its_line(
    project: Project, text: str, message: str
) -> None:
    project.write('[services.a]\ncmd = "true"\nenv_file = ".env"\n')
    (project.root / ".env").write_bytes(text.encode("latin-1"))
    result = project.devup("env", "a")
    assert result.returncode == 1
    assert error_line(result).endswith(message)


def test_a_file_named_dot_devup_is_an_error_not_a_traceback(project: Project) -> None:
    project.write('[services.a]\ncmd = "true"\nport = false\n')
    (project.root / ".devup").write_text("not a folder")
    result = project.devup("up", "--no-watch")
    assert result.returncode == 1
    assert (
        error_line(result) == f"devup: error: cannot create {project.root / '.devup'}: File exists"
    )


def test_xdg_runtime_dir_naming_a_file_is_an_error(project: Project, tmp_path: Path) -> None:
    project.write('[services.a]\ncmd = "true"\nport = false\n')
    runtime = tmp_path / "runtime-file"
    runtime.write_text("")
    result = project.devup("up", "--no-watch", env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)})
    assert result.returncode == 1
    assert "cannot create the control socket's folder" in error_line(result)
    assert result.stderr.endswith("Not a directory\nhint: set XDG_RUNTIME_DIR (or DEVUP_HOME) "
                                  "to a folder you can write\n")  # fmt: skip


def test_closed_stdout_runs_and_keeps_the_log(project: Project) -> None:
    project.write('[services.a]\ncmd = "echo hello"\nport = false\nrestart = "no"\n')
    closed = ["sh", "-c", 'exec "$@" >&-', "sh", *DEVUP]
    up = subprocess.run([*closed, "up", "--no-watch"], cwd=project.root, capture_output=True,
                        text=True, timeout=30)  # fmt: skip
    assert (up.returncode, up.stderr) == (0, "")
    assert "hello" in (project.root / ".devup" / "logs" / "a.log").read_text()
    for logs in (["logs"], ["logs", "-n", "1", "a"]):
        result = subprocess.run([*closed, *logs], cwd=project.root, capture_output=True,
                                text=True, timeout=30)  # fmt: skip
        assert (result.returncode, result.stderr) == (0, ""), logs


def test_export_into_a_place_that_cannot_be_a_folder_is_an_error(project: Project) -> None:
    project.write('[services.a]\ncmd = "true"\n')
    result = project.devup("export", "procfile", "-o", "devports.toml/out")
    assert result.returncode == 1
    assert error_line(result) == (
        f"devup: error: cannot write the export to {Path('devports.toml/out')}: Not a directory"
    )


def test_init_refuses_a_port_pool_check_would_reject(project: Project) -> None:
    (project.root / "Procfile").write_text("web: npm start\n")
    result = project.devup("init", "--ports", "abc", "--no-gitignore")
    assert result.returncode == 2
    assert error_line(result) == (
        'devup: error: --ports must be a range low-high within 1024-65535, got "abc"'
    )
    assert not (project.root / "devports.toml").exists()


def test_ctrl_c_while_the_cli_loads_exits_130_without_a_traceback(project: Project) -> None:
    # Deterministic stand-in for a Ctrl-C in the ~100 ms `import orchestrator.cli.main` takes.
    interrupted_import = """
        import sys

        class CtrlC:
            def find_spec(self, name, path=None, target=None):
                if name == "orchestrator.cli.main":
                    raise KeyboardInterrupt

        sys.meta_path.insert(0, CtrlC())
        sys.argv[1:] = ["check"]
        from orchestrator.cli.entry import main

        main()
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(interrupted_import)],
                            cwd=project.root, capture_output=True, text=True, timeout=30)  # fmt: skip
    assert (result.returncode, result.stderr) == (130, "")


def test_who_with_a_port_out_of_range_is_a_usage_error(project: Project) -> None:
    result = project.devup("who", "70000")
    assert result.returncode == 2  # SPEC: 2 for a usage error
    assert error_line(result) == "devup: error: port must be 1-65535, got 70000"


def not_a_file(project: Project, kind: str) -> str:
    """A path in the project that is `kind`: an endless device, a FIFO nobody writes, or a regular
    file over the 1 MiB cap."""
    if kind == "device":
        return "/dev/zero"  # read() never ends
    path = project.root / kind
    if kind == "fifo":
        os.mkfifo(path)  # open() blocks until a writer comes
    else:
        path.write_bytes(b"# a comment line\n" * 70_000)
    return str(path)


ENDLESS = [
    ("device", "not a regular file"),
    ("fifo", "not a regular file"),
    ("big", "is larger than 1 MiB"),
]


@pytest.mark.parametrize(("kind", "problem"), ENDLESS)
def test_an_env_file_that_is_no_small_file_is_refused(
    project: Project, kind: str, problem: str
) -> None:
    path = not_a_file(project, kind)
    project.write(f'[services.a]\ncmd = "true"\nenv_file = "{path}"\n')
    result = project.devup("env", "a", timeout=20)
    assert result.returncode == 1
    assert problem in error_line(result)


@pytest.mark.parametrize(("kind", "problem"), ENDLESS)
def test_a_procfile_that_is_no_small_file_is_refused(
    project: Project, kind: str, problem: str
) -> None:
    path = not_a_file(project, kind)
    project.write(f'[services.shop]\nprocfile = "{path}"\n')
    result = project.devup("check", timeout=20)
    assert result.returncode == 2
    assert 'service "shop": ' in error_line(result)
    assert problem in error_line(result)


def test_a_nul_character_in_a_procfile_is_a_manifest_error(project: Project) -> None:
    # `devup check` said ok, then `devup up` died with "ValueError: embedded null byte".
    project.write('[services.shop]\nprocfile = "Procfile"\n')
    (project.root / "Procfile").write_bytes(b"api: true\nweb: echo a\0b\n")
    result = project.devup("check")
    assert result.returncode == 2
    assert error_line(result).endswith('procfile "Procfile":2: a NUL character (\\0)')


@pytest.mark.parametrize("ports", ["1" + "0" * 5000 + "-3999", "\uff13\uff10\uff10\uff10-3999"])
def test_a_port_pool_of_huge_or_non_ascii_numbers_is_an_error(project: Project, ports: str) -> None:
    (project.root / "devports.toml").write_text(
        f'[devup]\nports = "{ports}"\n[services.a]\ncmd = "true"\n'
    )
    result = project.devup("check")
    assert result.returncode == 2
    assert '"ports" must be a range like "3000-3999"' in error_line(result)
    (project.root / "devports.toml").unlink()
    (project.root / "Procfile").write_text("web: npm start\n")
    result = project.devup("init", "--ports", ports, "--no-gitignore")
    assert result.returncode == 2
    assert error_line(result).startswith("devup: error: --ports must be a range low-high")
    assert not (project.root / "devports.toml").exists()


def test_logs_with_a_5000_digit_count_is_a_usage_error(project: Project) -> None:
    project.write('[services.a]\ncmd = "true"\n')
    result = project.devup("logs", "-n", "9" * 5000)
    assert result.returncode == 2
    assert "is not a valid integer" in error_line(result)


def test_logs_with_a_count_in_non_ascii_digits_is_a_usage_error(project: Project) -> None:
    project.write('[services.a]\ncmd = "true"\n')
    result = project.devup("logs", "-n", "\u00b2")  # "2".isdigit() is true; int() refuses it
    assert result.returncode == 2
    assert "is not a valid integer" in error_line(result)


@pytest.mark.parametrize(
    ("manifest", "shown"),
    [
        ('[services."a\\u0001b"]\ncmd = "true"\n', 'service "a\\u0001b": a service name'),
        ('[services.x]\ncmd = "true"\nenv = { "A\\u0000B" = "x" }\n', 'env name "A\\u0000B"'),
    ],
)
def test_a_name_with_control_characters_is_shown_escaped(
    project: Project, manifest: str, shown: str
) -> None:
    (project.root / "devports.toml").write_text(manifest)
    result = project.devup("check")
    assert result.returncode == 2
    assert shown in error_line(result)
    assert not any(ord(c) < 32 for c in result.stderr.replace("\n", ""))
