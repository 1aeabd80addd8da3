"""The summary of a run's start: once every service is up, done, failing or waiting on a failing
one, one table of all of them. The supervisor's reconcile asks whether it is due each turn."""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.run.service import ServiceRun
from orchestrator.run.states import State

# Fast failures in a row after which the summary stops waiting for a service ("crashing"): one
# is often a hiccup (a port taken for a moment, a database still starting) that a restart cures.
CRASH_LOOP_FAILURES = 2


def due(services: Mapping[str, ServiceRun]) -> bool:
    """Whether every service can be told about: settled, failing, or waiting on a failing one."""
    return all(_told(services, svc) for svc in services.values())


def table(services: Mapping[str, ServiceRun], took_s: float) -> str:
    listed = list(services.values())
    up = [s for s in listed if s.state in (State.READY, State.RUNNING)]
    tasks = [s for s in listed if s.is_task and s.satisfies_dependents]
    failing = len(listed) - len(up) - len(tasks)
    head = _count(len(up), "service") + " up"
    if tasks:
        head += ", " + _count(len(tasks), "task") + " done"
    if failing:
        head += f", {failing} not up"
    width = max(len(s.name) for s in listed)
    rows = [f"{head} in {took_s:.2f}s"]
    for s in listed:
        rows.append(f"  {s.name.ljust(width)}  {_row(services, s)}".rstrip())
    return "\n".join(rows)


def failing(svc: ServiceRun) -> bool:
    """Failing fast again and again (crash-looping), or given up on; not one `devup stop NAME`
    holds stopped."""
    if svc.satisfies_dependents or svc.held_by_request:
        return False
    if svc.state in (State.CRASHED, State.STOPPED):
        return True
    looping = svc.fast_failures >= CRASH_LOOP_FAILURES
    return looping and svc.state in (State.RESTARTING, State.STARTING)


def _told(services: Mapping[str, ServiceRun], svc: ServiceRun) -> bool:
    if svc.state is State.WAITING:
        return bool(_failing_dependencies(services, svc))
    restarting = svc.state is State.STOPPING and (
        svc.restart_due is not None or svc.start_when_stopped
    )  # stopping on its way to a restart (a file changed while it was starting): not settled
    if svc.state is State.RESTARTING or restarting:
        # One fast exit is a hiccup the summary waits out; a second makes it crash-looping.
        return failing(svc)
    return svc.settled or failing(svc)


def _failing_dependencies(
    services: Mapping[str, ServiceRun], svc: ServiceRun, seen: frozenset[str] = frozenset()
) -> list[str]:
    """The dependencies (direct, or through a waiting one) that keep `svc` waiting."""
    found: list[str] = []
    for name in svc.spec.depends_on:
        dep = services.get(name)
        if dep is None or name in seen:
            continue
        if failing(dep):
            found.append(name)
        elif dep.state is State.WAITING:
            found.extend(_failing_dependencies(services, dep, seen | {svc.name}))
    return found


def _row(services: Mapping[str, ServiceRun], s: ServiceRun) -> str:
    restarts = _count(s.restarts, "restart")
    code = f"exit {s.exit_code}" if s.exit_code is not None else "no exit code"
    if s.state in (State.READY, State.RUNNING):
        url = s.where[1] or "(no port)"
        pid = f"pid {s.spawn.child.pid}" if s.spawn.child else ""
        took = s.spawn.ready_after_s
        ready = f"ready in {took:.2f}s" if took is not None else "running"
        return f"{url:<22}  {pid:<10}  {ready}"
    if s.is_task and s.satisfies_dependents:
        return "done (exit 0)"
    if s.state is State.WAITING:
        return "waiting for " + ", ".join(dict.fromkeys(_failing_dependencies(services, s)))
    if s.spawn.missing_program is not None and s.state is State.CRASHED:
        return f"not found: {s.spawn.missing_program} ({code}), waiting for a change"
    if s.state is State.CRASHED:
        return f"crashed: {code}, {restarts}"
    if s.state is State.STOPPED:
        if s.generation == 0:
            return "not started"
        return f"exited: {code}" if s.exit_code == 0 else f"failed: {code}"
    if failing(s):
        return f"crashing: exit {s.last_exit_code}, {restarts}"
    return str(s.state.value)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
