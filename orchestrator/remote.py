"""What `devup status/restart/stop/start` do from another terminal: check the names against the
manifest, ask the running devup over the control channel, and turn its answer into text.
"""

from __future__ import annotations

import json
import time

from orchestrator import client
from orchestrator.errors import DevupError

TYPE_CHECKING = False  # not typing's: importing typing costs every CLI start ~6 ms
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from orchestrator.manifest import Manifest

STOP_WAIT_EXTRA_S = 10.0  # beyond stop_timeout: the run's own teardown (logs, leases, lock)
SETTLE_WAIT_EXTRA_S = 30.0  # beyond stop_timeout + ready_timeout: backoff, a busy port


def status(root: Path, as_json: bool) -> str:
    answer = client.check_answer(client.request(root, "status"))
    doc = {"pid": answer["pid"], "services": answer["services"]}
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
    return f"devup pid {doc['pid']}\n" + "\n".join(lines)


def format_uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def command(manifest: Manifest, verb: str, names: list[str], wait: bool) -> tuple[int, str]:
    """restart/stop/start of named services (stop of all with no names): exit code and text."""
    from orchestrator.errors import UsageError
    from orchestrator.manifest import service_names

    try:
        targets = service_names(manifest, names) if names else []
    except UsageError:
        # Not in devports.toml (or its Procfiles) as they are now; but if the running devup still
        # runs every one of them (a Procfile line removed since it started), they are its to act on.
        if not _all_running(manifest.root, names):
            raise
        targets = names
    stop_s = manifest.settings.stop_timeout_s
    return send(manifest.root, verb, targets, wait, stop_s, settle_timeout(manifest))


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
    states: dict[str, str] = answer["services"]
    lines = [f"{name} {state}" for name, state in states.items()]
    if verb == "stop":
        failed = wait and any(state != "stopped" for state in states.values())
    else:
        # A task (port = false, restart = "no") that finished with 0 came up as it should.
        failed = wait and bool(answer.get("failed", []))
    return (1 if failed else 0), "\n".join(lines)


def _all_running(root: Path, names: list[str]) -> bool:
    try:
        services = client.check_answer(client.request(root, "status"))["services"]
    except DevupError:
        return False  # not running: the name error is the one to show
    return all(name in services for name in names)


def stop_all(root: Path, stop_timeout_s: float) -> tuple[int, str]:
    """Ask the run to stop as Ctrl-C would, and return once it has ended."""
    from orchestrator import runstate

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
