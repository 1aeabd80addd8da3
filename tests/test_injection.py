"""The supervisor is given the outside world one way: a host, or the real one with its clock and
spawn swapped; both at once is refused (the host would run on its own clock, unseen)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config.manifest import load_manifest
from orchestrator.output.printer import Printer
from orchestrator.run.host import PosixHost
from orchestrator.run.supervisor import Supervisor


def build(tmp_path: Path, **inject: object) -> Supervisor:
    (tmp_path / "devports.toml").write_text('[services.api]\ncmd = "true"\nport = false\n')
    manifest = load_manifest(tmp_path / "devports.toml")
    printer = Printer(["api"], lambda _b: None, color=False)
    return Supervisor(manifest, ["api"], {"api": None}, {"api": {}}, printer, **inject)  # type: ignore[arg-type]


def test_a_clock_is_honoured_alone_and_through_a_host(tmp_path: Path) -> None:
    assert build(tmp_path, clock=lambda: 42.0).host.now() == 42.0
    assert build(tmp_path, host=PosixHost(lambda: 7.0)).host.now() == 7.0


@pytest.mark.parametrize("beside", ["clock", "spawn"])
def test_a_clock_or_spawn_beside_a_host_is_refused(tmp_path: Path, beside: str) -> None:
    with pytest.raises(TypeError, match="pass clock and spawn to the host"):
        build(tmp_path, host=PosixHost(lambda: 7.0), **{beside: lambda *_: 42.0})
