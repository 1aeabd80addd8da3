"""The scripted suite starts no process: instead of the leak check of tests/conftest.py (a scan
of every process, for tests that start some), any attempt to start one fails the test."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def no_leftover_processes(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a scripted test started a process: {args}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    yield "no processes"
