"""`devup restart|start|stop SERVICE... [--no-wait]`, `devup stop` and `devup reload` without click:
the project folder is the one holding devports.toml (found, never parsed), the names go to the
running devup, which checks them (remote.control). Any option (`-f FILE`, `--help`, ...) gives
None, and the click CLI answers.
"""

from __future__ import annotations

import sys

from orchestrator.base.errors import DevupError

VERBS = ("restart", "start", "stop", "reload")


def run(verb: str, args: list[str]) -> int | None:
    """The exit code, after printing what `devup VERB ARGS...` prints; None: use the CLI."""
    wait = True
    names: list[str] = []
    for arg in args:
        if arg == "--no-wait" and wait and verb != "reload":
            wait = False
        elif arg.startswith("-"):
            return None  # --help, -f FILE, ...: the CLI's job
        else:
            names.append(arg)
    if verb not in VERBS or (not names and verb in ("restart", "start")):
        return None
    if verb == "reload" and names:
        return None  # the CLI says reload takes no names
    from pathlib import Path

    from orchestrator.base.locate import find_manifest
    from orchestrator.control.remote import control

    try:
        manifest = find_manifest(Path.cwd())
        code, text = control(manifest.parent, verb, names, wait, manifest_path=manifest)
    except DevupError as exc:
        print(exc.report(), file=sys.stderr)
        return exc.exit_code
    if text:
        print(text)
    return code
