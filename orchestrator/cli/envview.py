"""What devup may show of a service's environment: `devup env` (secrets masked unless revealed)
and the warning about env files that other users can read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from orchestrator.config.environ import service_variables
from orchestrator.config.manifest import Manifest

MASK = "***"


def env_listing(manifest: Manifest, name: str, *, reveal: bool) -> dict[str, Any]:
    """The variables devup sets for `name` (the --json shape): values from env files and `env`
    tables are `***` unless `reveal`. Ports are those `devup up` uses (or uses now)."""
    from orchestrator.cli.oneoff import check_service, service_ports

    check_service(manifest, name)  # did-you-mean, Procfile groups: as `devup run`
    ports, port_messages = service_ports(manifest)
    variables, warnings = service_variables(manifest, ports, name, parent=os.environ, color=False)
    return {
        "service": name,
        "revealed": reveal,
        "variables": [
            {
                "name": v.name,
                "value": v.value if reveal or not v.secret else MASK,
                "source": v.source,
                "secret": v.secret,
            }
            for v in variables
        ],
        "messages": [*port_messages, *warnings],
    }


def format_env(listing: dict[str, Any]) -> str:
    rows = list(listing["messages"])
    pairs = [(f"{v['name']}={v['value']}", v["source"]) for v in listing["variables"]]
    width = max([len(p) for p, _ in pairs] or [0])
    rows += [f"{pair.ljust(width)}  # {source}" for pair, source in pairs]
    return "\n".join(rows)


def env_file_warnings(manifest: Manifest, names: list[str]) -> list[str]:
    """One line per env file of `names` that the group or others may read."""
    files: list[Path] = []
    for env_file in [manifest.settings.env_file, *(manifest.services[n].env_file for n in names)]:
        if env_file is not None and env_file not in files:
            files.append(env_file)
    warnings = []
    for path in files:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            continue  # a missing env file is not an error
        if mode & 0o044:
            shown = _relative(path, manifest.root)
            warnings.append(
                f"{shown} is readable by other users (mode {mode:04o}); chmod 600 {shown}"
            )
    return warnings


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
