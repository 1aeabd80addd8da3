"""What `devup check` and `devup ports` report: the plan as data (the --json shape) and as text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator import runstate
from orchestrator.environ import service_url
from orchestrator.manifest import Manifest, service_names, start_order
from orchestrator.process import GroupId, group_members
from orchestrator.programs import missing_program
from orchestrator.reach import reach


def check_plan(manifest: Manifest) -> dict[str, Any]:
    order = start_order(manifest)
    services: dict[str, Any] = {}
    for name in order:
        spec = manifest.services[name]
        port: int | str | None = spec.preferred_port if spec.needs_port else None
        if spec.needs_port and port is None:
            port = "auto"
        services[name] = {
            "cmd": spec.cmd,
            "cwd": str(spec.cwd),
            "port": port,
            "depends_on": list(spec.depends_on),
            "restart": spec.restart,
            "watch": [str(p) for p in spec.watch] if spec.watch is not None else None,
        }
    return {
        "manifest": str(manifest.path),
        "order": order,
        "services": services,
        "warnings": program_warnings(manifest, order),
    }


def program_warnings(manifest: Manifest, order: list[str]) -> list[str]:
    """A `cmd` whose program is not on PATH exits 127 at start: say so before."""
    warnings = []
    for name in order:
        spec = manifest.services[name]
        missing = missing_program(spec.cmd, spec.cwd)
        if missing is not None:
            where = "not found" if "/" in missing else "not on PATH"
            warnings.append(f"{name}: {missing} is {where}; its cmd would exit with code 127")
    return warnings


def format_check(plan: dict[str, Any]) -> str:
    rows = [f"{plan['manifest']}: ok, {len(plan['order'])} services, in start order:"]
    width = max(len(n) for n in plan["order"])
    for name in plan["order"]:
        svc = plan["services"][name]
        port = "no port" if svc["port"] is None else f"port {svc['port']}"
        deps = f", after {', '.join(svc['depends_on'])}" if svc["depends_on"] else ""
        rows.append(f"  {name.ljust(width)}  {port:<10}  {svc['cmd']}{deps}")
    rows.extend(f"warning: {warning}" for warning in plan.get("warnings", []))
    return "\n".join(rows)


def port_plan(manifest: Manifest, names: list[str] | None = None) -> dict[str, Any]:
    """The ports `devup up` will use (leases taken); while a run is live (or a killed run's
    processes live on), its ports, their holders and what each service listens on."""
    from orchestrator import audit
    from orchestrator.holders import describe
    from orchestrator.ports import allocate_ports

    order = start_order(manifest, names)
    running = runstate.running_pid(manifest.root) is not None
    groups = _live_groups(manifest.root)
    plan = allocate_ports(manifest, order, move_busy=not (running or groups))
    services: dict[str, Any] = {}
    for name in order:
        port = plan.ports.get(name)
        holder = plan.holders.get(name)
        services[name] = {
            "port": port,
            "url": service_url("127.0.0.1", port) if port is not None else None,
            "holder": describe(holder) if holder is not None else None,
            "listening": None,
            "warnings": [],
        }
        group = groups.get(name)
        if group is not None:
            listeners = audit.group_listeners(group)
            where = reach(port, ((lst.ip, lst.port) for lst in listeners))
            if where is not None and where.moved_from(port):  # it answers elsewhere: say where
                services[name].update(port=where.port, url=where.url, leased_port=port)
            services[name]["listening"] = [lst.address for lst in listeners]
            services[name]["warnings"] = audit.assess(
                manifest, manifest.services[name], port, listeners
            )
    return {"services": services, "running": running, "messages": list(plan.messages)}


def format_ports(plan: dict[str, Any]) -> str:
    services = plan["services"]
    width = max([len(n) for n in services] or [0])
    rows = list(plan["messages"])
    for name, svc in services.items():
        if svc["port"] is None:
            rows.append(f"{name.ljust(width)}  -      (no port)")
            continue
        held = f"  held by {svc['holder']}" if svc["holder"] else ""
        if svc.get("leased_port") not in (None, svc["port"]):
            held += f"  (its PORT={svc['leased_port']} is unused)"
        rows.append(f"{name.ljust(width)}  {svc['port']:<5}  {svc['url']}{held}")
        rows.extend(f"  warning: {warning}" for warning in svc.get("warnings", []))
    return "\n".join(rows)


def _live_groups(root: Path) -> dict[str, GroupId]:
    """The process groups of the project's run record that still have members: the live run's,
    or what a killed run left behind."""
    state = runstate.read_state(root)
    recorded = runstate.recorded_groups(state) if state else []
    return {name: group for name, group in recorded if group_members(group)}


def release_ports(manifest: Manifest, names: list[str]) -> str:
    from orchestrator.registry import Registry

    names = service_names(manifest, names)  # a typo is an unknown service, not "no leases"
    released = Registry().release(manifest.root, names or None)
    if not released:
        return "no leases to release"
    return f"released the leases of {', '.join(released)}"
