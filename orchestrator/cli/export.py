"""`devup export FORMAT`: the services written out for another runner (a Procfile and `.env` for
honcho or foreman; systemd, supervisord or runit through honcho's exporters), each with the port and
environment `devup up` gives it. Files holding values from env files or `env` tables are 0600.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.base.errors import DevupError, UsageError
from orchestrator.base.paths import ensure_private_dir, project_state_dir
from orchestrator.base.safefs import symlink_refused
from orchestrator.cli.oneoff import service_ports
from orchestrator.config.environ import service_variables
from orchestrator.config.manifest import Manifest

HEADER = "# Written by `devup export` from {manifest}; edit devports.toml and export again."
# Honcho's PROCFILE_LINE allows only these in a process name (foreman the same).
PROCFILE_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass(frozen=True)
class ExportOptions:
    app: str | None = None  # default: the project folder's name
    user: str | None = None  # default: the current user
    log_dir: str | None = None  # default: /var/log/APP
    shell: str = "/bin/sh"


@dataclass(frozen=True)
class ServiceExport:
    name: str  # usable as a Procfile process name: `shop.web` becomes `shop-web`
    cmd: str
    cwd: Path
    env: dict[str, str]  # devup's variables only, not the inherited environment
    secret: bool  # some value came from an env file or an `env` table


@dataclass(frozen=True)
class Written:
    path: Path
    private: bool


def export(
    manifest: Manifest,
    fmt: str,
    out: Path,
    options: ExportOptions,
    say: Callable[[str], None] = print,
) -> list[Written]:
    writer = FORMATS.get(fmt)
    if writer is None:
        raise UsageError(
            f'unknown export format "{fmt}"', hint=f"formats: {', '.join(sorted(FORMATS))}"
        )
    services = collect(manifest, say)
    try:
        state = project_state_dir(manifest.root)
        if out.is_relative_to(state):  # the default, .devup/export/FORMAT: devup's own folders
            folder = ensure_private_dir(state)
            for part in out.relative_to(state).parts:
                folder = ensure_private_dir(folder / part)
        out.mkdir(parents=True, exist_ok=True)
        return writer(manifest, services, out, options)
    except OSError as exc:  # a read-only or missing place, a file where a folder goes, ...
        where = exc.filename or out
        raise DevupError(f"cannot write the export to {where}: {exc.strerror or exc}") from None


def collect(manifest: Manifest, say: Callable[[str], None] = print) -> list[ServiceExport]:
    ports, messages = service_ports(manifest)
    for message in messages:
        say(message)
    result = []
    for name, spec in manifest.services.items():
        variables, warnings = service_variables(
            manifest, ports, name, parent=os.environ, color=False
        )
        for warning in warnings:
            say(warning)
        result.append(
            ServiceExport(
                name=procfile_name(name),
                cmd=spec.cmd,
                cwd=spec.cwd,
                env={v.name: v.value for v in variables},
                secret=any(v.secret for v in variables),
            )
        )
    return result


def procfile_name(name: str) -> str:
    return "".join(c if c in PROCFILE_NAME_CHARS else "-" for c in name)


def write_file(path: Path, text: str, *, private: bool, executable: bool = False) -> Written:
    """Replace `path` with `text`; 0600 when it holds private values (set before any byte)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = 0o700 if private and executable else 0o600 if private else 0o755 if executable else 0o644
    import tempfile

    # mkstemp: a new 0600 file of a name nobody can guess (O_EXCL, so a planted symlink is never
    # followed), in the same folder so that os.replace is one rename.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".devup-tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), mode)  # before any byte; fchmod ignores the umask
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return Written(path, private)


def _real_folders(out: Path, path: Path) -> None:
    """Create the folders between `out` and `path` (runit's APP-NAME/env/), refusing any that is
    a symlink: in a shared output folder a planted link would take the files, secrets and all,
    wherever it points."""
    folder = out
    for part in path.relative_to(out).parts[:-1]:
        folder = folder / part
        with contextlib.suppress(FileExistsError):
            folder.mkdir()
        if folder.is_symlink():
            raise symlink_refused(folder, where="in what it exports")


def export_procfile(
    manifest: Manifest, services: list[ServiceExport], out: Path, options: ExportOptions
) -> list[Written]:
    """A Procfile plus `.env`: variables all services share go to `.env`; each line sets its own.

    honcho and foreman give every process PORT=5000, 5100, ... (and treat a PORT in `.env` as the
    base of that sequence), so each line sets PORT itself, after `cd` into the service's folder.
    """
    shared = _shared(services)
    lines = [HEADER.format(manifest=manifest.path), ""]
    for svc in services:
        own = {k: v for k, v in svc.env.items() if shared.get(k) != v}
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in own.items())
        cd = f"cd {shlex.quote(str(svc.cwd))}"
        lines.append(f"{svc.name}: {cd} && export {exports} && {_exec(svc.cmd)}")
    env_lines = [HEADER.format(manifest=manifest.path)]
    env_lines += [f"{k}={shlex.quote(v)}" for k, v in shared.items()]
    secret = any(s.secret for s in services)
    return [
        write_file(out / "Procfile", "\n".join(lines) + "\n", private=secret),
        write_file(out / ".env", "\n".join(env_lines) + "\n", private=True),
    ]


def _shared(services: list[ServiceExport]) -> dict[str, str]:
    first, *rest = services
    return {
        k: v
        for k, v in first.env.items()
        if k not in ("PORT", "DEVUP_SERVICE") and all(s.env.get(k) == v for s in rest)
    }


def _honcho_exporter(module: str) -> Callable[..., list[Written]]:
    def write(
        manifest: Manifest, services: list[ServiceExport], out: Path, options: ExportOptions
    ) -> list[Written]:
        import importlib

        from honcho.environ import ProcessParams

        try:
            exporter = importlib.import_module(f"honcho.export.{module}").Export()
        except ImportError as exc:  # pragma: no cover - jinja2 is a dependency
            raise DevupError(f"honcho's {module} exporter is not available: {exc}") from None
        app = options.app or _app_name(manifest)
        context = {
            "app": app,
            "app_root": str(manifest.root),
            "log": options.log_dir or f"/var/log/{app}",
            "shell": options.shell,
            "user": options.user or getpass.getuser(),
        }
        secret = any(s.secret for s in services)
        processes = [
            ProcessParams(s.name, _command(module, s, options.shell), False, s.env)
            for s in services
        ]
        written = []
        for f in exporter.render(processes, context):
            _real_folders(out, out / f.name)
            written.append(
                write_file(
                    out / f.name,
                    f.content,
                    private=secret and _holds_env(module, f.name),
                    executable=f.executable,
                )
            )
        return written

    return write


def _command(module: str, svc: ServiceExport, shell: str) -> str:
    """The service's command as honcho's template for `module` needs it.

    Every service runs in its own folder while the exporters have one app_root, so each command
    starts with `cd`. systemd and supervisord wrap the command in '...' after `sh -c`; runit puts
    it bare after `chpst`, so there it becomes a whole `sh -c '...'`.
    """
    script = f"cd {shlex.quote(str(svc.cwd))} && {_exec(svc.cmd)}"
    if module == "runit":
        return f"{shell} -c {shlex.quote(script)}"
    return script.replace("'", "'\\''")  # closes the template's quote, adds one ', reopens


def _exec(cmd: str) -> str:
    """`exec CMD` when CMD is one command, so the runner's signals reach the service itself
    (systemd's KillMode=process in honcho's unit signals only the main process)."""
    return cmd if _SHELL_LISTS.search(cmd) else f"exec {cmd}"


_SHELL_LISTS = re.compile(r"[;&|\n]")


def _holds_env(module: str, filename: str) -> bool:
    """Whether honcho's `module` exporter wrote environment values into `filename`."""
    if module == "runit":  # APP-NAME/env/KEY: one value per file (chpst -e reads the folder)
        return Path(filename).parent.name == "env"
    return module == "supervisord" or filename.endswith(".service")


def _app_name(manifest: Manifest) -> str:
    return procfile_name(manifest.root.name) or "app"


FORMATS: dict[str, Callable[[Manifest, list[ServiceExport], Path, ExportOptions], list[Written]]]
FORMATS = {
    "procfile": export_procfile,
    "systemd": _honcho_exporter("systemd"),
    "supervisord": _honcho_exporter("supervisord"),
    "runit": _honcho_exporter("runit"),
}


def describe(written: Iterable[Written], out: Path) -> str:
    rows = [f"wrote to {out}:"]
    for w in written:
        note = "  (0600: holds values from env files or env tables)" if w.private else ""
        rows.append(f"  {w.path.relative_to(out)}{note}")
    return "\n".join(rows)
