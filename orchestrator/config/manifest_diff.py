"""What an edit of devports.toml (or of an env file it names) changes in a run: services added,
removed, changed (restarted, or only updated when what changed is how devup supervises them).

Pure: two plans in, a PlanDiff out; live.py reads the files and the supervisor applies the diff.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import NamedTuple

from orchestrator.config.manifest import Manifest, env_key

# Fields that only tell devup how to supervise a service: a change applies to the running process
# without restarting it (watch and ignore through a new watcher, the rest at its next start).
SUPERVISION_FIELDS = (
    "watch", "ignore", "restart", "depends_on", "ready_log", "ready_timeout_s", "stop_signal",
    "expose", "strict_port",
)  # fmt: skip
# The rest (env, env_file, port settings) is compared through its effect: the port given and
# the environment built. `line` (where the table sits in the file) is not a change.


class Plan(NamedTuple):
    """What a run does with one version of its manifest."""

    manifest: Manifest
    order: tuple[str, ...]  # the services it runs, dependencies first
    ports: Mapping[str, int | None]  # every service of the manifest, run or not
    envs: Mapping[str, Mapping[str, str]]  # the whole environment of each service in `order`


class ServiceChange(NamedTuple):
    name: str
    reasons: tuple[str, ...]  # manifest keys, or the injected variables whose value changed
    restart: bool  # False: only supervision settings changed


class PlanDiff(NamedTuple):
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[ServiceChange, ...]  # in the new start order
    settings: tuple[str, ...]  # [devup] keys whose value changed

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.settings)


def ports_to_choose(old: Plan, new: Manifest) -> list[str]:
    """Services of `new` that need a port chosen: new ones, and those whose `port` setting changed
    to something other than the port they have. Every other service keeps its port, even a busy
    one (its own running process holds it)."""
    names = []
    for name, spec in new.services.items():
        before = old.manifest.services.get(name)
        if before is None or name not in old.ports or spec.needs_port != before.needs_port:
            names.append(name)
            continue
        moved = spec.preferred_port != before.preferred_port
        if moved and spec.preferred_port not in (None, old.ports[name]):
            names.append(name)
    return names


def compare(old: Plan, new: Plan) -> PlanDiff:
    added = tuple(n for n in new.order if n not in old.order)
    removed = tuple(n for n in old.order if n not in new.order)
    # Their S_PORT / S_URL appear or vanish in everyone's environment: that alone restarts no one
    # (a service that uses one through its `env` table sees that value change, and restarts).
    comings_and_goings = {
        f"{env_key(n)}_{suffix}" for n in (*added, *removed) for suffix in ("PORT", "URL")
    }
    changed = []
    for name in new.order:
        if name not in old.order:
            continue
        reasons = _process_reasons(old, new, name, comings_and_goings)
        restart = bool(reasons)
        reasons += [
            _key(f)
            for f in SUPERVISION_FIELDS
            if getattr(old.manifest.services[name], f) != getattr(new.manifest.services[name], f)
        ]
        if reasons:
            changed.append(ServiceChange(name, tuple(dict.fromkeys(reasons)), restart))
    settings = tuple(
        _key(f)
        for f in new.manifest.settings._fields
        if getattr(old.manifest.settings, f) != getattr(new.manifest.settings, f)
    )
    return PlanDiff(added, removed, tuple(changed), settings)


def _process_reasons(old: Plan, new: Plan, name: str, ignored: set[str]) -> list[str]:
    """Why the process must restart: its command, folder, port or environment changed."""
    before, after = old.manifest.services[name], new.manifest.services[name]
    reasons = [f for f in ("cmd", "cwd") if getattr(before, f) != getattr(after, f)]
    if old.ports.get(name) != new.ports.get(name):
        reasons.append("port")
    env_before, env_after = old.envs[name], new.envs[name]
    injected = _injected_names(new.manifest) | _injected_names(old.manifest)
    for key in sorted(set(env_before) | set(env_after)):
        if key in ignored or env_before.get(key) == env_after.get(key):
            continue
        if key in ("PORT", f"{env_key(name)}_PORT", f"{env_key(name)}_URL"):
            continue  # its own port: said as "port" above
        if key in injected:
            reasons.append(key)  # another service's URL, or HOST: the name says which
        else:
            reasons.append("env")
    return reasons


def _injected_names(manifest: Manifest) -> set[str]:
    names = {"HOST"}
    for service in manifest.services:
        names |= {f"{env_key(service)}_PORT", f"{env_key(service)}_URL"}
    return names


def _key(field_name: str) -> str:
    """A ServiceSpec or Settings field as the manifest spells it."""
    return {"port_range": "ports"}.get(field_name, field_name.removesuffix("_s"))


def summary(diff: PlanDiff, file_name: str, idle: Collection[str] = ()) -> str:
    """`devports.toml changed: api restarted (env), worker added, old-admin stopped`; services
    in `idle` (stopped by the user, or waiting to start) are only updated."""
    parts = []
    for change in diff.changed:
        verb = "restarted" if change.restart and change.name not in idle else "updated"
        parts.append(f"{change.name} {verb} ({', '.join(change.reasons)})")
    parts += [f"{name} added" for name in diff.added]
    parts += [f"{name} stopped" for name in diff.removed]
    parts += [f"[devup] {key} changed" for key in diff.settings]
    if not parts:
        return f"{file_name} changed: nothing to apply"
    return f"{file_name} changed: " + ", ".join(parts)
