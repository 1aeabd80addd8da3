"""`devup ports` while the project's devup runs: the ports it uses, told by the run itself (its
status answer), with each port's lease from the registry. A service listening on its own port is
its holder; only a port its service does not hold is looked up, so 50 services cost one request.

Kept free of click, psutil and the manifest parser: entry.py answers `devup ports` with it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs every CLI start ~6 ms
if TYPE_CHECKING:
    from typing import Any


def live_ports(
    answer: dict[str, Any], leases: dict[str, int], names: list[str] | None = None
) -> dict[str, Any]:
    """The `ports --json` document of a running devup from its status `answer`; `names` limits
    it to those services (in the run's start order)."""
    run = answer["services"]
    planned: dict[str, int | None] = answer["run"]["ports"]
    messages: list[str] = []
    services: dict[str, Any] = {}
    for name, port in planned.items():
        if names is not None and name not in names:
            continue
        svc = run.get(name, {})
        assigned = port  # its PORT; where it answers differs when it ignored PORT
        port = svc.get("port", assigned)
        lease = leases.get(name)
        services[name] = {
            "port": port,
            "url": svc.get("url") or (f"http://127.0.0.1:{port}" if port is not None else None),
            "holder": _holder(name, svc, port),
            "lease": lease,
            "listening": svc.get("listening"),
            "warnings": svc.get("warnings", []),
        }
        if assigned is not None and port != assigned:
            services[name]["assigned_port"] = assigned
        if assigned is not None and lease is not None and assigned != lease:
            messages.append(
                f"{name}: using {assigned} for this run ({lease} stays {name}'s; "
                f"`devup who {lease}` shows who holds it)"
            )
    return {"services": services, "running": True, "messages": messages}


def _holder(name: str, svc: dict[str, Any], port: int | None) -> str | None:
    if port is None:
        return None
    listening = svc.get("listening") or []
    pids = svc.get("listening_pids") or [svc.get("pid")] * len(listening)
    for address, pid in zip(listening, pids, strict=False):
        if pid is not None and address.endswith(f":{port}"):
            return f"{_process_name(pid) or name} (pid {pid})"
    # Not (yet) its service's: whoever it is, looked up as `devup ports` does without a run.
    from orchestrator.ports.allocation import is_port_free
    from orchestrator.ports.holders import describe_all, find_holders

    return None if is_port_free(port) else describe_all(find_holders(port))


def _process_name(pid: int) -> str | None:
    """The process's name as ps shows it: /proc's comm on Linux (psutil's import alone costs
    more than this whole command should), else psutil's."""
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as comm:
            return comm.read().strip() or None
    except FileNotFoundError:
        pass
    except OSError:
        return None
    import psutil

    try:
        return str(psutil.Process(pid).name())
    except psutil.Error:  # gone, or not ours to look at: the service's name is shown instead
        return None


def format_ports(plan: dict[str, Any]) -> str:
    """The text of a `ports --json` document, running or not."""
    services = plan["services"]
    width = max([len(n) for n in services] or [0])
    rows = list(plan["messages"])
    for name, svc in services.items():
        if svc["port"] is None:
            rows.append(f"{name.ljust(width)}  -      (no port)")
            continue
        held = f"  held by {svc['holder']}" if svc["holder"] else ""
        if svc.get("assigned_port") not in (None, svc["port"]):
            held += f"  (its PORT={svc['assigned_port']} is unused)"
        rows.append(f"{name.ljust(width)}  {svc['port']:<5}  {svc['url']}{held}")
        rows.extend(f"  warning: {warning}" for warning in svc.get("warnings", []))
    return "\n".join(rows)
