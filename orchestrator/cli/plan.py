"""What `devup check` and `devup ports` report: the plan as data (the --json shape) and as text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.cli.programs import missing_program
from orchestrator.config.environ import service_url
from orchestrator.config.manifest import Manifest, ServiceSpec, service_names, start_order
from orchestrator.ports.reach import reach
from orchestrator.system import runstate
from orchestrator.system.process import GroupId, group_members


def check_plan(manifest: Manifest) -> dict[str, Any]:
    """The validated manifest as devup understands it, with the ports `devup up` will use (as
    `devup ports` shows them: leases taken only where a service has none, none moved)."""
    order = start_order(manifest)
    assigned, messages = _planned_ports(manifest)
    services: dict[str, Any] = {}
    for name in order:
        spec = manifest.services[name]
        port: int | str | None = spec.preferred_port if spec.needs_port else None
        if spec.needs_port and port is None:
            port = "auto"
        planned = assigned.get(name)
        services[name] = {
            "cmd": spec.cmd,
            "cwd": str(spec.cwd),
            "port": port,
            "depends_on": list(spec.depends_on),
            "restart": spec.restart,
            "watch": [str(p) for p in spec.watch] if spec.watch is not None else None,
            "planned_port": planned,
            "url": service_url("127.0.0.1", planned) if planned is not None else None,
            "reloads_itself": spec.reloads_itself,
            "watch_note": watch_note(spec),
        }
    return {
        "manifest": str(manifest.path),
        "order": order,
        "services": services,
        "messages": messages,
        "warnings": program_warnings(manifest, order),
    }


def _planned_ports(manifest: Manifest) -> tuple[dict[str, int | None], list[str]]:
    from orchestrator.base.errors import DevupError
    from orchestrator.cli.oneoff import service_ports

    try:
        return service_ports(manifest)
    except DevupError as exc:  # a busy strict_port, a full pool: the manifest itself is fine
        return {}, [exc.message]


def program_warnings(manifest: Manifest, order: list[str]) -> list[str]:
    """A `cmd` whose program is not on PATH exits 127 at start: say so before."""
    warnings = []
    for name in order:
        spec = manifest.services[name]
        if "PATH=" in spec.cmd or any(key == "PATH" for key, _ in spec.env) or spec.env_file:
            continue  # it runs with a PATH of its own (node_modules/.bin, a venv): not devup's
        missing = missing_program(spec.cmd, spec.cwd)
        if missing is not None:
            where = "not found" if "/" in missing else "not on PATH"
            warnings.append(f"{name}: {missing} is {where}; its cmd would exit with code 127")
    return warnings


def format_check(plan: dict[str, Any]) -> str:
    root = Path(plan["manifest"]).parent
    rows = [
        *plan["messages"],
        f"{plan['manifest']}: ok, {len(plan['order'])} services, in start order:",
    ]
    width = max(len(n) for n in plan["order"])
    for name in plan["order"]:
        svc = plan["services"][name]
        if svc["port"] is None:
            port = "no port"
        elif svc["planned_port"] is not None:
            port = f"port {svc['planned_port']}"
        else:
            port = f"port {svc['port']}"
        deps = f", after {', '.join(svc['depends_on'])}" if svc["depends_on"] else ""
        rows.append(f"  {name.ljust(width)}  {port:<10}  {svc['cmd']}{deps}")
        if svc.get("watch_note"):
            rows.append(f"  {''.ljust(width)}  {svc['watch_note']}")
            continue
        watch = svc["watch"]
        shown = ", ".join(_relative(Path(p), root) for p in watch) if watch is not None else "off"
        rows.append(f"  {' ' * width}  watch: {shown}")
    rows.extend(f"warning: {warning}" for warning in plan.get("warnings", []))
    return "\n".join(rows)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) if path != root else "."
    except ValueError:
        return str(path)


def watch_note(spec: ServiceSpec) -> str | None:
    """`watch: off (vite reloads itself; devup restarts it only on package.json, ...)` for a
    self-reloading dev server on its default watch list."""
    if spec.reloads_itself is None or not spec.default_watch:
        return None
    from orchestrator.config.selfreload import describe

    return f"watch: off ({describe(spec.reloads_itself, spec.reloads_in or spec.cwd)})"


def port_plan(manifest: Manifest, names: list[str] | None = None) -> dict[str, Any]:
    """The ports `devup up` will use (leases taken); while a run is live (or a killed run's
    processes live on), its ports, their holders and what each service listens on."""
    from orchestrator.ports.allocation import allocate_ports
    from orchestrator.ports.holders import describe
    from orchestrator.run import audit

    order = start_order(manifest, names)
    running = runstate.running_pid(manifest.root) is not None
    if running:
        live = running_ports(manifest.root, order)
        if live is not None:
            return live
    groups = _live_groups(manifest.root)
    plan = allocate_ports(manifest, order, mode="running" if running or groups else "plan")
    services: dict[str, Any] = {}
    for name in order:
        port = plan.ports.get(name)
        holder = plan.holders.get(name)
        services[name] = {
            "port": port,
            "url": service_url("127.0.0.1", port) if port is not None else None,
            "holder": describe(holder) if holder is not None else None,
            "lease": plan.leases.get(name),
            "listening": None,
            "warnings": [],
        }
        group = groups.get(name)
        if group is not None:
            listeners = audit.group_listeners(group)
            where = reach(port, ((lst.ip, lst.port) for lst in listeners))
            if where is not None and where.moved_from(port):  # it answers elsewhere: say where
                services[name].update(port=where.port, url=where.url, assigned_port=port)
            services[name]["listening"] = [lst.address for lst in listeners]
            services[name]["warnings"] = audit.assess(
                manifest, manifest.services[name], port, listeners
            )
    return {"services": services, "running": running, "messages": list(plan.messages)}


def running_ports(root: Path, order: list[str] | None = None) -> dict[str, Any] | None:
    """The ports the project's running devup uses, from the run alone (no manifest), limited to
    `order` (in that order) when given; None when no devup there can answer (it ended just now,
    or is still starting: the plan answers then)."""
    from orchestrator.base.errors import DevupError
    from orchestrator.base.paths import project_key
    from orchestrator.control import client
    from orchestrator.ports.registry import Registry
    from orchestrator.ports.runports import live_ports

    try:
        answer = client.check_answer(client.request(root, "status"))
        if "ports" not in answer.get("run", {}):
            return None
    except DevupError:
        return None
    live = live_ports(answer, Registry().read().get(project_key(root), {}), order)
    if order is not None:
        # The run's order is the full start order; the named services keep theirs.
        live["services"] = {n: live["services"][n] for n in order if n in live["services"]}
    return live


def _live_groups(root: Path) -> dict[str, GroupId]:
    """The process groups of the project's run record that still have members: the live run's,
    or what a killed run left behind."""
    state = runstate.read_state(root)
    recorded = runstate.recorded_groups(state) if state else []
    return {name: group for name, group in recorded if group_members(group)}


def release_ports(manifest: Manifest, names: list[str]) -> str:
    from orchestrator.ports.registry import Registry

    names = service_names(manifest, names)  # a typo is an unknown service, not "no leases"
    released = Registry().release(manifest.root, names or None)
    if not released:
        return "no leases to release"
    return f"released the leases of {', '.join(released)}"
