"""`devup restart|start|stop SERVICE... [--no-wait]` and `devup stop` without click or the manifest
parser: the names go straight to the running devup, with the timeouts it reports. Any doubt (an
option, a name the run does not know, a devports.toml changed since the run read it, no run) gives
None, and the click CLI answers as always, with its messages and exit codes.
"""

from __future__ import annotations

import os
import sys

from orchestrator.errors import DevupError

VERBS = ("restart", "start", "stop")


def run(verb: str, args: list[str]) -> int | None:
    """The exit code, after printing what `devup VERB ARGS...` prints; None: use the CLI."""
    wait = True
    names: list[str] = []
    for arg in args:
        if arg == "--no-wait" and wait:
            wait = False
        elif arg.startswith("-"):
            return None  # --help, -f FILE, ...: the CLI's job
        else:
            names.append(arg)
    if verb not in VERBS or (not names and verb != "stop"):
        return None
    from pathlib import Path

    from orchestrator import client
    from orchestrator.locate import find_manifest

    try:
        manifest = find_manifest(Path.cwd())
        facts = client.check_answer(client.request(manifest.parent, "status"))
        loaded = facts["run"]
        if (loaded["manifest"], loaded["manifest_mtime_ns"]) != (
            str(manifest),
            os.stat(manifest).st_mtime_ns,
        ):
            return None  # edited since: the CLI checks the names against the file as it is now
    except (DevupError, OSError, KeyError, TypeError):
        return None  # no manifest, no run, a devup without "run" facts: the CLI says what is wrong
    if not all(name in facts["services"] for name in names):
        return None  # a typo, a Procfile group (web for web.1, web.2), a service not started
    from orchestrator.remote import send

    try:
        code, text = send(
            manifest.parent, verb, names, wait, loaded["stop_timeout_s"], loaded["settle_timeout_s"]
        )
    except DevupError as exc:
        print(exc.report(), file=sys.stderr)
        return exc.exit_code
    if text:
        print(text)
    return code
