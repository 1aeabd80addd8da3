"""Fixtures of the reliability suite: where its fixture processes record themselves."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder the fixture processes (fixtures/proc.py) write their pid records into."""
    folder = tmp_path / "records"
    folder.mkdir()
    monkeypatch.setenv("RELIABILITY_DIR", str(folder))
    return folder
