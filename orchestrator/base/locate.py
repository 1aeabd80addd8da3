"""Finding devports.toml: the current folder or its nearest parent, as git finds `.git`.

Kept apart from manifest.py so commands that only need the project folder skip the parser.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.base.errors import UsageError

MANIFEST_NAME = "devports.toml"


def find_manifest(start: Path) -> Path:
    """devports.toml in `start` or its nearest parent; UsageError if there is none."""
    start = start.resolve()
    for folder in (start, *start.parents):
        candidate = folder / MANIFEST_NAME
        if candidate.exists():  # even a folder: load_manifest then says what is wrong with it
            return candidate
    raise UsageError(
        f"no {MANIFEST_NAME} in {start} or any parent folder",
        hint="create one with `devup init`, or pass -f PATH",
    )
