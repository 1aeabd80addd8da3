"""The environment each service gets: injected variables, env files and `env` tables.

Pure: values in, values out. Also tells which variables carry secrets (anything from an env file
or an `env` table, or built from one), so nothing else has to guess what may be printed.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from orchestrator.base.errors import DevupError, ManifestError
from orchestrator.base.quoting import printable
from orchestrator.base.smallfile import nul_line, read_capped
from orchestrator.config.manifest import Manifest, env_key

MAX_ENV_FILE_BYTES = 1024 * 1024
# What one NAME=value may hold (Linux's MAX_ARG_STRLEN); `${V}${V}` chains double per step, and
# 20 steps of a 560-byte manifest would otherwise take 543 MB.
MAX_VALUE_BYTES = 128 * 1024
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Variable(NamedTuple):
    name: str
    value: str
    source: str  # "injected", an env file's path, or "env"
    secret: bool


def read_env_text(path: Path) -> str:
    """The text of an env file ("" if missing), refusing what dotenv_values would hang on or
    flood with (a FIFO, a device), a file over the cap, invalid UTF-8 and NULs."""
    shown = printable(path)  # for messages: a bidi control in a folder name comes out escaped
    try:
        raw = read_capped(path, MAX_ENV_FILE_BYTES)
        if len(raw) > MAX_ENV_FILE_BYTES:  # env_file = "/dev/zero" would read until out of memory
            raise DevupError(f"env file {shown} is larger than {MAX_ENV_FILE_BYTES // 2**20} MiB")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise DevupError(f"cannot read env file {shown}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        raise DevupError(f"env file {shown}:{line}: not valid UTF-8") from None
    nul_at = nul_line(text)
    if nul_at is not None:
        raise DevupError(f"env file {shown}:{nul_at}: a NUL character (\\0)")
    return text


def read_env_bindings(text: str, path: Path) -> list[tuple[str, str]]:
    """The file's NAME=value pairs as python-dotenv parses them, before `${VAR}` is resolved."""
    from dotenv.parser import parse_stream

    # newline=None: CRLF and CR read as dotenv_values reads a file (universal newlines).
    bindings = list(parse_stream(io.StringIO(text, newline=None)))
    for binding in bindings:
        if binding.error:  # python-dotenv would only log a warning and skip it
            # Only what comes before "=": the rest may be a secret (a quote left open).
            shown = binding.original.string.strip().splitlines()[0].split("=", 1)[0][:60]
            where = f"{printable(path)}:{binding.original.line}"
            raise DevupError(
                f"env file {where}: cannot parse the line of {shown!r} (value not shown)"
            )
    return [(b.key, b.value) for b in bindings if b.key is not None and b.value is not None]


def _resolve_capped(name: str, raw: str, known: Mapping[str, str], path: Path) -> str:
    """One env-file value resolved as python-dotenv does, refused before it is built when it
    would hold more than MAX_VALUE_BYTES (lines doubling `${A}${A}` reach 2**40 in 40 lines)."""
    references = _dotenv_references(raw)
    if not references:
        return raw  # a literal: one too large to exec is named where it fails (argsize.py)
    # An upper bound first (the reference syntax counts too), so nothing huge is ever built.
    bound = len(raw) + sum(len(known.get(ref, "")) for ref in references)
    value = _resolve_dotenv(raw, known) if bound <= 2 * MAX_VALUE_BYTES else None
    if value is None or len(value.encode("utf-8", "surrogateescape")) > MAX_VALUE_BYTES:
        raise DevupError(
            f"env file {printable(path)}: {printable(name)} expands to more than "
            f"{MAX_VALUE_BYTES // 1024} KiB (the most one variable may hold)"
        )
    return value


def _resolve_dotenv(value: str, env: Mapping[str, str]) -> str:
    from dotenv.variables import parse_variables

    known: dict[str, str | None] = dict(env)
    return "".join(atom.resolve(known) for atom in parse_variables(value))


def _dotenv_references(value: str) -> list[str]:
    from dotenv.variables import Variable as Reference
    from dotenv.variables import parse_variables

    return [atom.name for atom in parse_variables(value) if isinstance(atom, Reference)]


def service_url(host: str, port: int) -> str:
    return f"http://{host}:{port}"


def injected(
    manifest: Manifest,
    ports: Mapping[str, int | None],
    name: str,
    *,
    color: bool,
    urls: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """What devup itself sets: PORT, HOST, every S_PORT/S_URL, DEVUP_SERVICE, and the rest.
    `urls`: where a service proved to answer when that is not http://127.0.0.1:S_PORT."""
    env: dict[str, str] = {}
    own = ports.get(name)
    if own is not None:
        env["PORT"] = str(own)
    env["HOST"] = manifest.settings.host
    for other, port in ports.items():
        if port is not None:
            key = env_key(other)
            env[f"{key}_PORT"] = str(port)
            env[f"{key}_URL"] = (urls or {}).get(other) or service_url("127.0.0.1", port)
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
    urls: Mapping[str, str] | None = None,
) -> tuple[list[Variable], list[str]]:
    """The variables devup sets for `name`, in the order they apply, and warnings to show.

    Later entries win: injected, then the global env file, the service's env file, its `env`.
    """
    spec = manifest.services[name]
    warnings: list[str] = []
    result: dict[str, Variable] = {}
    for key, value in injected(manifest, ports, name, color=color, urls=urls).items():
        result[key] = Variable(key, value, "injected", secret=False)
    for env_file in (manifest.settings.env_file, spec.env_file):
        if env_file is None:
            continue
        base = {**parent, **{k: v.value for k, v in result.items()}}
        from_file: dict[str, str] = {}  # earlier lines win over `base`, as in python-dotenv
        for key, raw in read_env_bindings(read_env_text(env_file), env_file):
            value = _resolve_capped(key, raw, {**base, **from_file}, env_file)
            shown = _only_injected(raw, _dotenv_references(raw), result, from_file)
            if key == "PORT":
                warnings.append(f"{name}: {env_file.name} sets PORT, ignored (devup assigns it)")
                continue
            from_file[key] = value
            result[key] = Variable(key, value, str(env_file), secret=not shown)
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
        shown = _only_injected(raw, _REFERENCE.findall(raw), result, {})
        result[key] = Variable(key, expanded, "env", secret=not shown)
    return list(result.values()), warnings


def _only_injected(
    raw: str, references: list[str], known: Mapping[str, Variable], own: Mapping[str, str]
) -> bool:
    """Whether a value built only from references to what devup injects (`${API_URL}`,
    `http://${HOST}:${API_PORT}`) may be shown: it holds nothing the user wrote as a value.
    A literal value, one with words of its own around the references (`sk-live-${X}`,
    `postgres://app:hunter2@${HOST}/db`), or one naming an env-file or `env` value or the parent
    environment, is masked."""
    first, *rest = _ANY_REFERENCE.split(raw)
    return (
        bool(references)
        and _SCHEME.fullmatch(first) is not None
        and all(_GLUE.fullmatch(part) is not None for part in rest)
        and all(ref not in own and ref in known and not known[ref].secret for ref in references)
    )


# What may stand around references in a value that is shown: a URL scheme before them, and
# between and after them only `:` and `/` (`http://${HOST}:${API_PORT}`, `${API_URL}/`). Any word
# the user wrote (`sk-live-${X}`, `${HOST}:s3cret`, `user:pass@`, a path or query) is masked.
_ANY_REFERENCE = re.compile(r"\$\{[^}]*\}")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)?")
_GLUE = re.compile(r"[:/]*")


def build_env(
    manifest: Manifest,
    ports: Mapping[str, int | None],
    name: str,
    *,
    parent: Mapping[str, str] | None = None,
    color: bool = False,
    urls: Mapping[str, str] | None = None,
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
    variables, warnings = service_variables(
        manifest, ports, name, parent=parent, color=color, urls=urls
    )
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
