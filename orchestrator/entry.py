"""The `devup` entry point. `devup status [--json]`, which editors, scripts and agents poll, is
answered here without loading click or the manifest parser (their imports are most of its time);
every other command line goes to the click CLI in cli.py.
"""

from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    if args in (["status"], ["status", "--json"]):
        sys.exit(_status(as_json=len(args) == 2))
    from orchestrator.cli import main as cli_main

    cli_main()


def _status(as_json: bool) -> int:
    from pathlib import Path

    from orchestrator.errors import DevupError
    from orchestrator.locate import find_manifest
    from orchestrator.remote import status

    try:
        print(status(find_manifest(Path.cwd()).parent, as_json))
    except DevupError as exc:
        print(exc.report(), file=sys.stderr)
        return exc.exit_code
    return 0
