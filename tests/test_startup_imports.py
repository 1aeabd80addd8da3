"""What `devup up` imports before its first service is spawned: only what that path needs.
Python's own import report (PYTHONPROFILEIMPORTTIME, as `-X importtime`) and the debug trace go
to the same stderr in order, so the modules listed before the trace's first `-> starting` line
were imported before the first spawn."""

from __future__ import annotations

import re

import pytest
from conftest import DevupProcess, Project

IMPORTED = re.compile(r"^import time:\s+-?\d+ \|\s+\d+ \| +(\S+)$")
# Heavy, and needed only by other commands, a mistake, a Procfile or a later moment of the run.
NOT_BEFORE_THE_FIRST_SPAWN = {
    "click": "the click CLI: the plain start is parsed by cli/plain_up.py",
    "orchestrator.cli.main": "the click CLI",
    "difflib": "did-you-mean, for a mistake only",
    "honcho": "the Procfile parser, for a Procfile only",
    "uuid": "a run id is os.urandom's",
    "hashlib": "it loads OpenSSL: base.paths.sha256 is CPython's own SHA-256",
    "ctypes.util": "find_library runs `ldconfig -p` in a child process",
    "watchdog": "the watcher (not with --no-watch)",
    "jinja2": "devup export",
    "mcp": "devup mcp",
    # Dataclass creation exec()s generated methods (~1 ms a class) and `dataclasses` imports
    # inspect, ast and dis: the records before the first spawn are NamedTuples or plain classes.
    "dataclasses": "records on the start's path are NamedTuples or __slots__ classes",
    "inspect": "imported by dataclasses (and by typing's runtime helpers), not needed to start",
}


@pytest.mark.parametrize("argv", [["--no-watch"], ["up", "api", "--no-watch", "--no-color"]])
def test_the_start_imports_nothing_heavy_before_its_first_spawn(
    project: Project,
    running: list[DevupProcess],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
) -> None:
    project.write("""
        [services.api]
        cmd = "sleep 60"
        port = false
    """)
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    monkeypatch.setenv("DEVUP_DEBUG", "1")
    run = project.start(*argv)
    running.append(run)
    run.expect_line(r"^devup\[debug\] \+\S+ api \w+ -> starting")
    before = [m.group(1) for m in map(IMPORTED.match, run.lines) if m]
    assert "orchestrator.run.supervisor" in before  # the report is read
    early = {
        name: why
        for name, why in NOT_BEFORE_THE_FIRST_SPAWN.items()
        if any(module == name or module.startswith(name + ".") for module in before)
    }
    assert early == {}
