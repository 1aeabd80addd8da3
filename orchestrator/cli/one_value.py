"""`devup url SERVICE` and `devup port SERVICE`: one value and a newline, for scripts
(`curl "$(devup url api)/health"`). While the project's devup runs, where the service really
answers (its status: the port it listens on, even one it took instead of PORT); otherwise the port
`devup up` will give it, from the same plan as `devup ports`.
"""

from __future__ import annotations

import sys

from orchestrator.base.errors import DevupError, UsageError

TYPE_CHECKING = False  # not typing's: importing typing costs every CLI start ~6 ms
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from orchestrator.config.manifest import Manifest


def quick(what: str, name: str) -> int | None:
    """The click-free path (entry.py) while a run is up and knows `name`: prints the value and
    returns 0; None when the CLI has to answer (no run, an unknown name, a Procfile group)."""
    from pathlib import Path

    from orchestrator.base.locate import find_manifest

    try:
        answer = _ask_the_run(find_manifest(Path.cwd()).parent)
    except DevupError:
        return None
    svc = (answer or {}).get(name)
    if svc is None:
        return None
    try:
        print(_value(what, name, svc))
    except DevupError as exc:
        print(exc.report(), file=sys.stderr)
        return exc.exit_code
    return 0


def one_value(what: str, manifest_path: Path, load: Any) -> Any:
    """A function of the service name that returns its `what`; `load()` reads the manifest, only
    when the run cannot answer (so a running devup answers even while devports.toml is broken)."""

    def value_of(name: str) -> str:
        running = _ask_the_run(manifest_path.parent)
        if running is not None and name in running:
            return _value(what, name, running[name])
        manifest: Manifest | None
        try:
            manifest = load()
        except DevupError:
            if running is None:
                raise
            manifest = None
        _check_one(manifest, list(running or {}), name)
        if running is not None:
            raise DevupError(
                f'"{name}" is not part of the running devup (it was started without it)',
                hint=f"`devup start {name}` adds it to the run",
            )
        assert manifest is not None
        return _planned(what, manifest, name)

    return value_of


def _ask_the_run(root: Path) -> dict[str, Any] | None:
    """The running devup's services (name -> status), None when none runs here."""
    from orchestrator.control import client

    try:
        answer = client.check_answer(client.request(root, "status"))
    except DevupError as exc:
        if str(exc) == client.NOT_RUNNING:
            return None
        raise
    services: dict[str, Any] = answer["services"]
    return services


def _check_one(manifest: Manifest | None, running: list[str], name: str) -> None:
    """An unknown name (did you mean) or a Procfile group of several lines: a usage error."""
    from orchestrator.control.client import unknown_service

    known = list(manifest.services) if manifest is not None else running
    lines = [n for n in known if n.startswith(name + ".")]
    if name in known:
        return
    if lines:
        raise UsageError(
            f'"{name}" names {len(lines)} services: {", ".join(lines)}', hint="name one of them"
        )
    raise unknown_service(name, known)


def _planned(what: str, manifest: Manifest, name: str) -> str:
    from orchestrator.cli.plan import port_plan

    if not manifest.services[name].needs_port:
        raise DevupError(f"{name} has no port (port = false in devports.toml)")
    planned = port_plan(manifest, [name])["services"][name]
    return _value(what, name, planned)


def _value(what: str, name: str, svc: dict[str, Any]) -> str:
    if svc.get("port") is None:
        raise DevupError(f"{name} has no port (port = false in devports.toml)")
    return str(svc["url"] if what == "url" else svc["port"])
