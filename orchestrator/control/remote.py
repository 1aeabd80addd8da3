"""What `devup status/restart/stop/start/reload` do from another terminal: find the running devup
from the project folder alone, check the names against its own list (never against devports.toml,
which may not parse), ask it over the control channel, and turn its answer into text.
"""

from __future__ import annotations

import contextlib
import json
import time

from orchestrator.base.errors import DevupError, UsageError
from orchestrator.base.gitbranch import branch_of
from orchestrator.base.paths import project_key
from orchestrator.control import client

TYPE_CHECKING = False  # not typing's: importing typing costs every CLI start ~6 ms
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from orchestrator.config.manifest import Manifest

STOP_WAIT_EXTRA_S = 10.0  # beyond stop_timeout: the run's own teardown (logs, leases, lock)
SETTLE_WAIT_EXTRA_S = 30.0  # beyond stop_timeout + ready_timeout: backoff, a busy port


def status(root: Path, as_json: bool) -> str:
    answer = client.check_answer(client.request(root, "status"))
    doc = {"pid": answer["pid"], "services": answer["services"]}
    if "manifest" in answer:  # a devup that follows its manifest (live.py)
        doc["manifest"] = answer["manifest"]
    # Which worktree this is: each git worktree of a repository is a project of its own.
    doc["folder"], doc["branch"] = project_key(root), branch_of(root)
    return json.dumps(doc, indent=2) if as_json else format_status(doc)


def format_status(doc: dict[str, Any]) -> str:
    head = ("NAME", "STATE", "PID", "PORT", "URL", "RESTARTS", "UPTIME", "EXIT")
    rows = [head]
    for name, svc in doc["services"].items():
        rows.append(
            (
                name,
                svc["state"],
                _dash(svc["pid"]),
                _dash(svc["port"]),
                _dash(svc["url"]),
                str(svc["restarts"]),
                format_uptime(svc["uptime_s"]),
                _dash(svc["exit_code"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    where = f" in {doc['folder']}" if doc.get("folder") else ""
    where += f" (branch {doc['branch']})" if doc.get("branch") else ""
    text = f"devup pid {doc['pid']}{where}\n" + "\n".join(lines)
    manifest = doc.get("manifest") or {}
    if manifest.get("error"):
        text += f"\n{manifest['error']}; still running the previous version"
    elif manifest.get("pending"):
        text += "\ndevports.toml changed since it was applied: `devup reload` applies it"
    return text


def format_uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def control(
    root: Path, verb: str, names: list[str], wait: bool, manifest_path: Path | None = None
) -> tuple[int, str]:
    """restart/stop/start/reload for the project folder `root`, never parsing devports.toml while
    devup runs: names are checked against the running devup's own list (a Procfile group names its
    lines), timeouts come from its answer. Only when nothing runs is the manifest read, to give a
    typo its did-you-mean before saying devup is not running."""
    try:
        facts = client.check_answer(client.request(root, "status"))
    except DevupError as exc:
        if str(exc) == client.NOT_RUNNING and names and manifest_path is not None:
            _check_names_in_file(manifest_path, names)
        raise
    run = facts.get("run", {})
    stop_s = float(run.get("stop_timeout_s", 5.0))
    settle_s = float(run.get("settle_timeout_s", stop_s + SETTLE_WAIT_EXTRA_S))
    if verb == "reload":
        return reload(root, settle_s)
    running = list(facts["services"])
    targets, unknown = expand_running(running, names)
    if unknown and verb in ("restart", "start") and _named_in_file(manifest_path, unknown):
        # Named in devports.toml since the run read it? Apply the file, then look again.
        with contextlib.suppress(DevupError):
            client.request(root, "reload", timeout_s=settle_s)
            running = list(client.check_answer(client.request(root, "status"))["services"])
            targets, unknown = expand_running(running, names)
    if unknown:
        import difflib

        choices = [*running, *{n.split(".")[0] for n in running if "." in n}]
        close = difflib.get_close_matches(unknown[0], choices, n=1)
        hint = f'did you mean "{close[0]}"?' if close else f"services: {', '.join(running)}"
        raise UsageError(f'unknown service "{unknown[0]}"', hint=hint)
    return send(root, verb, targets, wait, stop_s, settle_s)


def expand_running(running: list[str], names: list[str]) -> tuple[list[str], list[str]]:
    """The running services the user named (a Procfile service names all its lines), and the
    names that match none."""
    targets: list[str] = []
    unknown: list[str] = []
    for name in names:
        lines = [n for n in running if n.startswith(name + ".")]
        if name in running:
            targets.append(name)
        elif lines:
            targets.extend(lines)
        else:
            unknown.append(name)
    return targets, unknown


def reload(root: Path, timeout_s: float) -> tuple[int, str]:
    """`devup reload`: the running devup applies devports.toml (and its env files) as they are."""
    answer = client.request(root, "reload", timeout_s=timeout_s)
    if not answer.get("ok"):
        raise DevupError(str(answer.get("error", "devup refused the request")))
    return 0, str(answer.get("summary", ""))


def _check_names_in_file(manifest_path: Path, names: list[str]) -> None:
    from orchestrator.config.manifest import load_manifest, service_names

    try:
        manifest = load_manifest(manifest_path)
    except DevupError:
        return  # a broken file: "not running" is the answer that matters
    service_names(manifest, names)


def send(
    root: Path, verb: str, targets: list[str], wait: bool, stop_timeout_s: float, settle_s: float
) -> tuple[int, str]:
    """restart/stop/start of services the running devup knows by these names: exit code and
    text; waits up to `settle_s` for its answer (stop_timeout_s for the run to end, with no
    names to stop)."""
    if verb == "stop" and not targets:
        return stop_all(root, stop_timeout_s)
    answer = client.request(root, verb, targets, {"wait": wait}, timeout_s=settle_s)
    if not answer.get("ok") and "unknown" in answer:
        missing = ", ".join(f'"{n}"' for n in answer["unknown"])
        raise DevupError(
            f"{missing} not part of the running devup",
            hint="it was started with only some services; restart it with them to control these",
        )
    if "services" not in answer:
        client.check_answer(answer)
    if answer.get("manifest_error"):
        import sys

        what = "restarted" if verb == "restart" else "started"
        error = answer["manifest_error"]
        print(f"devup: {error}; {what} with the previous version", file=sys.stderr)
    states: dict[str, str] = answer["services"]
    lines = [f"{name} {state}" for name, state in states.items()]
    if verb == "stop":
        failed = wait and any(state != "stopped" for state in states.values())
    else:
        # A task (port = false, restart = "no") that finished with 0 came up as it should.
        failed = wait and bool(answer.get("failed", []))
    return (1 if failed else 0), "\n".join(lines)


def stop_all(root: Path, stop_timeout_s: float) -> tuple[int, str]:
    """Ask the run to stop as Ctrl-C would, and return once it has ended."""
    from orchestrator.system import runstate

    pid = client.check_answer(client.request(root, "status"))["pid"]
    client.check_answer(client.request(root, "stop"))
    deadline = time.monotonic() + stop_timeout_s + STOP_WAIT_EXTRA_S
    while runstate.running_pid(root) is not None:
        if time.monotonic() > deadline:
            raise DevupError(f"devup (pid {pid}) is still stopping")
        time.sleep(0.02)  # polling the run lock: the kernel drops it when devup exits
    return 0, f"devup (pid {pid}) stopped"


def settle_timeout(manifest: Manifest) -> float:
    """How long `restart/start/stop SERVICE` waits for devup's answer."""
    ready = max((s.ready_timeout_s for s in manifest.services.values()), default=0.0)
    return manifest.settings.stop_timeout_s + ready + SETTLE_WAIT_EXTRA_S


def _dash(value: object) -> str:
    return "-" if value is None else str(value)


def _named_in_file(manifest_path: Path | None, names: list[str]) -> bool:
    """Whether devports.toml as it is now names each of `names` (a typo never applies pending
    edits as a side effect of a command that then fails)."""
    if manifest_path is None:
        return False
    from orchestrator.config.manifest import load_manifest, service_names

    try:
        service_names(load_manifest(manifest_path), names)  # a Procfile group names its lines
    except DevupError:  # a file that does not parse, or a name it does not have
        return False
    return True
