"""The environment each service gets: injected variables, env files and `env` tables.

Pure: values in, values out. Also tells which variables carry secrets (anything from an env file
or an `env` table, or built from one), so nothing else has to guess what may be printed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import DevupError, ManifestError
from orchestrator.manifest import Manifest, env_key
from orchestrator.quoting import printable
from orchestrator.smallfile import nul_line, read_capped

MAX_ENV_FILE_BYTES = 1024 * 1024
# What one NAME=value may hold (Linux's MAX_ARG_STRLEN); `${V}${V}` chains double per step, and
# 20 steps of a 560-byte manifest would otherwise take 543 MB.
MAX_VALUE_BYTES = 128 * 1024
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Variable:
    name: str
    value: str
    source: str  # "injected", an env file's path, or "env"
    secret: bool


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines, parsed by honcho (as foreman and honcho read `.env`); missing file = {}."""
    from honcho.environ import parse

    shown = printable(path)  # for messages: a bidi control in a folder name comes out escaped
    try:
        raw = read_capped(path, MAX_ENV_FILE_BYTES)
        if len(raw) > MAX_ENV_FILE_BYTES:  # env_file = "/dev/zero" would read until out of memory
            raise DevupError(f"env file {shown} is larger than {MAX_ENV_FILE_BYTES // 2**20} MiB")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise DevupError(f"cannot read env file {shown}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        raise DevupError(f"env file {shown}:{line}: not valid UTF-8") from None
    nul_at = nul_line(text)
    if nul_at is not None:
        raise DevupError(f"env file {shown}:{nul_at}: a NUL character (\\0)")
    try:
        return dict(parse(text))
    except ValueError as exc:  # honcho's shlex: an unclosed quote, a trailing backslash
        lines = text.splitlines()
        line = next((n for n, t in enumerate(lines, 1) if not _parses(parse, t)), len(lines))
        raise DevupError(f"env file {shown}:{line}: {exc}") from None


def _parses(parse: Callable[[str], object], line: str) -> bool:
    try:
        parse(line)
    except ValueError:
        return False
    return True


def service_url(host: str, port: int) -> str:
    return f"http://{host}:{port}"


def injected(
    manifest: Manifest, ports: Mapping[str, int | None], name: str, *, color: bool
) -> dict[str, str]:
    """What devup itself sets: PORT, HOST, every S_PORT/S_URL, DEVUP_SERVICE, and the rest."""
    env: dict[str, str] = {}
    own = ports.get(name)
    if own is not None:
        env["PORT"] = str(own)
    env["HOST"] = manifest.settings.host
    for other, port in ports.items():
        if port is not None:
            key = env_key(other)
            env[f"{key}_PORT"] = str(port)
            env[f"{key}_URL"] = service_url("127.0.0.1", port)
    env["DEVUP_SERVICE"] = name
    env["PYTHONUNBUFFERED"] = "1"
    if color:
        env["FORCE_COLOR"] = "1"
    return env


def service_variables(
    manifest: Manifest,
    ports: Mapping[str, int | None],
    name: str,
    *,
    parent: Mapping[str, str],
    color: bool,
) -> tuple[list[Variable], list[str]]:
    """The variables devup sets for `name`, in the order they apply, and warnings to show.

    Later entries win: injected, then the global env file, the service's env file, its `env`.
    """
    spec = manifest.services[name]
    warnings: list[str] = []
    result: dict[str, Variable] = {}
    for key, value in injected(manifest, ports, name, color=color).items():
        result[key] = Variable(key, value, "injected", secret=False)
    for env_file in (manifest.settings.env_file, spec.env_file):
        if env_file is None:
            continue
        for key, value in read_env_file(env_file).items():
            if key == "PORT":
                warnings.append(f"{name}: {env_file.name} sets PORT, ignored (devup assigns it)")
                continue
            result[key] = Variable(key, value, str(env_file), secret=True)
    for key, raw in spec.env:
        expanded = _expand(raw, {k: v.value for k, v in result.items()}, parent, MAX_VALUE_BYTES)
        if expanded is None:
            raise ManifestError(
                manifest.path,
                f'service "{name}": env "{key}" expands to more than '
                f"{MAX_VALUE_BYTES // 1024} KiB (the most one variable may hold)",
                line=spec.line,
                hint=f'look at the ${{...}} references in env "{key}" and the ones they name',
            )
        result[key] = Variable(key, expanded, "env", secret=True)
    return list(result.values()), warnings


def build_env(
    manifest: Manifest,
    ports: Mapping[str, int | None],
    name: str,
    *,
    parent: Mapping[str, str] | None = None,
    color: bool = False,
) -> tuple[dict[str, str], list[str]]:
    """The whole environment of the service's process: the parent's, then devup's variables."""
    parent = dict(os.environ if parent is None else parent)
    if not color:
        parent.pop("FORCE_COLOR", None)
    # What devup injects never leaks in from outside (a shell that exports PORT, a devup started
    # from another devup's service): a service without a port must not see one.
    for stale in ("PORT", "DEVUP_SERVICE"):
        parent.pop(stale, None)
    for other in manifest.services:
        parent.pop(f"{env_key(other)}_PORT", None)
        parent.pop(f"{env_key(other)}_URL", None)
    variables, warnings = service_variables(manifest, ports, name, parent=parent, color=color)
    env = dict(parent)
    env.update((v.name, v.value) for v in variables)
    return env, warnings


def _expand(
    raw: str, values: Mapping[str, str], parent: Mapping[str, str], limit: int
) -> str | None:
    """`${VAR}` from devup's variables, else the parent environment; an unknown one is empty.
    None when the result would be over `limit` bytes, found before it is built."""
    pieces: list[str] = []
    size = 0  # in characters while building (never more than bytes); bytes checked at the end
    last = 0
    for match in _REFERENCE.finditer(raw):
        name = match.group(1)
        for piece in (raw[last : match.start()], values.get(name, parent.get(name, ""))):
            size += len(piece)
            if size > limit:
                return None
            pieces.append(piece)
        last = match.end()
    pieces.append(raw[last:])
    value = "".join(pieces)
    return value if len(value.encode("utf-8", "surrogateescape")) <= limit else None
