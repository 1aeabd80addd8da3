"""The manifest: finds, parses and validates devports.toml into frozen specs.

Pure: takes a path, returns a Manifest or raises ManifestError naming the line of the offending key.
"""

from __future__ import annotations

import ipaddress
import math
import re
import signal
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, NamedTuple, NoReturn, cast

from orchestrator.base.errors import ManifestError, UsageError
from orchestrator.base.quoting import printable, quoted
from orchestrator.base.records import compared_fields
from orchestrator.base.smallfile import nul_line, read_capped
from orchestrator.config.tomlpos import KeyPath, KeyPositions, key_positions

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

MAX_MANIFEST_BYTES = 1024 * 1024

RestartPolicy = Literal["on-failure", "always", "no"]
RESTART_POLICIES: tuple[RestartPolicy, ...] = ("on-failure", "always", "no")

TOP_LEVEL_KEYS = ("devup", "services")
DEVUP_KEYS = ("ports", "host", "stop_timeout", "debounce_ms", "env_file", "expose")
SERVICE_KEYS = (
    "cwd", "cmd", "procfile", "port", "strict_port", "env", "env_file", "watch", "ignore",
    "restart", "depends_on", "ready_log", "ready_timeout", "stop_signal", "expose",
)  # fmt: skip
MIN_PORT, MAX_PORT = 1024, 65535
RESERVED_NAME = "devup"  # the name of devup's own output lines and of .devup/logs/devup.log
_SERVICE_NAME = re.compile(r"[A-Za-z0-9_-]+")  # "." is reserved for Procfile lines (shop.web)
_USES_PORT = re.compile(r"\$\{?PORT\b")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# ASCII digits only (\d also takes full-width ones), few enough that int() never refuses them.
_PORT_RANGE = re.compile(r"\s*([0-9]{1,9})\s*-\s*([0-9]{1,9})\s*")
_TOML_ERROR_AT = re.compile(r"(.*) \(at line (\d+), column (\d+)\)", re.DOTALL)
_NO_SERVICES_HINT = 'add one, e.g. [services.web] with cmd = "npm run dev"'
# A path, a command line or an environment value cannot hold a NUL byte (the OS reads C strings).
_NUL_MESSAGE = "{} must not contain a NUL character (\\u0000)"


class Settings(NamedTuple):
    """The [devup] table."""

    port_range: tuple[int, int] = (3000, 3999)
    host: str = "127.0.0.1"
    stop_timeout_s: float = 5.0
    # 20, not the SPEC's first 50: nodemon does not wait at all, and at 50 every restart trailed it
    # by ~20 ms (bench/restart). webpack 5 aggregates changes for the same 20 ms. Bursts are safe
    # either way: one that reaches BURST_EVENTS waits for 300 ms of quiet (supervisor.py).
    debounce_ms: int = 20
    env_file: Path | None = None  # absolute; a missing file is not an error
    expose: bool = False


class ServiceSpec(NamedTuple):
    """One service after Procfile expansion: line `web` of service `shop` is `shop.web`."""

    name: str
    cmd: str
    cwd: Path  # absolute, exists
    needs_port: bool = True  # False for `port = false`
    preferred_port: int | None = None  # None = "auto"
    strict_port: bool = False
    env: tuple[tuple[str, str], ...] = ()  # the `env` table, unexpanded, in manifest order
    env_file: Path | None = None  # absolute; a missing file is not an error
    watch: tuple[Path, ...] | None = None  # absolute paths; None = watching disabled
    ignore: tuple[str, ...] = ()  # gitignore-style patterns, relative to cwd
    restart: RestartPolicy = "on-failure"
    depends_on: tuple[
        str, ...
    ] = ()  # service names, a Procfile service already expanded to its lines
    ready_log: str | None = None  # regex source
    ready_timeout_s: float = 30.0
    stop_signal: signal.Signals = signal.SIGTERM
    expose: bool = False
    line: int | None = None  # line of the [services.NAME] table, for messages
    reloads_itself: str | None = None  # the self-reloading dev server cmd runs: "vite", ...
    default_watch: bool = False  # True: `watch` is selfreload's list, not the manifest's
    reloads_in: Path | None = None  # where that server runs: cwd, or where `cd web && ...` goes


@compared_fields(3)
class Manifest(NamedTuple):
    path: Path  # absolute path of devports.toml
    settings: Settings
    services: dict[str, ServiceSpec]  # in manifest order
    # The file's mtime when it was read (stat before the read, so a later edit never matches):
    # `devup ports` answers from the run while the file is unchanged (cli/entry.py). Not compared.
    mtime_ns: int | None = None

    @property
    def root(self) -> Path:
        """The project folder: the manifest's directory."""
        return self.path.parent


def load_manifest(path: Path) -> Manifest:
    """Read, parse and validate; raises ManifestError (exit 2) on any bad input."""
    path = path.resolve()
    try:
        mtime_ns: int | None = path.stat().st_mtime_ns
    except OSError:
        mtime_ns = None  # _read_source says what is wrong
    source = _read_source(path)
    try:
        data = tomllib.loads(source)
    except ValueError as e:  # TOMLDecodeError, or int()'s digit limit on a 5,000-digit number
        raise _syntax_error(path, source, str(e)) from None
    except RecursionError:  # tomllib recurses once per level of `a = [[[[...` or `{b = {b = ...`
        raise ManifestError(path, "invalid TOML: arrays or tables nested too deeply") from None
    manifest = _Validator(path, key_positions(source)).manifest(data)
    return manifest._replace(mtime_ns=mtime_ns)


def env_key(service_name: str) -> str:
    """`shop.web` -> `SHOP_WEB`: the prefix of a service's `_PORT` / `_URL` variables."""
    # One regex pass: the per-character join it replaces was ~1 ms per service at 50 services
    # (build_env calls this for every other service, before the first spawn).
    return _NOT_IN_ENV_KEY.sub("_", service_name).upper()


_NOT_IN_ENV_KEY = re.compile(r"[^A-Za-z0-9]")


def start_order(manifest: Manifest, names: list[str] | None = None) -> list[str]:
    """The named services (all when None) plus everything they depend on, dependencies first."""
    services = manifest.services
    wanted: set[str] = set()
    pending = list(services) if names is None else _expand_names(manifest, names)
    while pending:
        name = pending.pop()
        if name not in wanted:
            wanted.add(name)
            pending.extend(services[name].depends_on)
    # Depth-first in manifest order: each service comes right after what it needs, so the order
    # reads like the manifest with dependencies pulled forward.
    index = {name: i for i, name in enumerate(services)}
    order: list[str] = []
    placed: set[str] = set()
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in placed:
            return
        if name in visiting:
            raise ValueError(f"dependency cycle through {name}")  # load_manifest rejects these
        visiting.add(name)
        for dep in sorted(services[name].depends_on, key=index.__getitem__):
            visit(dep)
        order.append(name)
        placed.add(name)

    for name in services:
        if name in wanted:
            visit(name)
    return order


def service_names(manifest: Manifest, names: list[str]) -> list[str]:
    """The services the user named (a Procfile service names all its lines); an unknown name is a
    UsageError with a did-you-mean hint."""
    return _expand_names(manifest, names)


def _expand_names(manifest: Manifest, names: list[str]) -> list[str]:
    expanded: list[str] = []
    for name in names:
        lines = _procfile_lines(manifest.services, name)
        if name in manifest.services:
            expanded.append(name)
        elif lines:
            expanded.extend(lines)
        else:
            choices = [*manifest.services, *{n.split(".")[0] for n in manifest.services}]
            hint = _did_you_mean(name, choices) or f"services: {', '.join(manifest.services)}"
            raise UsageError(f"unknown service {_quote(name)}", hint=hint)
    return expanded


def _procfile_lines(services: Iterable[str], base: str) -> list[str]:
    return [name for name in services if name.startswith(base + ".")]


def _read_source(path: Path) -> str:
    """The manifest's text, or a ManifestError saying why it cannot be used."""
    if path.is_dir():
        raise ManifestError(path, "is a folder, not a file")
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise ManifestError(path, "no such file") from None
    except OSError as e:
        raise ManifestError(path, f"cannot read: {e.strerror or e}") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(path, f"file is larger than {MAX_MANIFEST_BYTES // 1024 // 1024} MiB")
    try:
        return raw.decode("utf-8-sig")  # -sig: tolerate the BOM some Windows editors write
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        message = f"file is not valid UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start})"
        raise ManifestError(path, message, line=line) from None


def _syntax_error(path: Path, source: str, message: str) -> ManifestError:
    """tomllib's `Msg (at line L, column C)` as `devports.toml:L:C: Msg`."""
    if "integer string conversion" in message:  # int()'s own words differ between Pythons
        limit = sys.get_int_max_str_digits()
        number = re.search(rf"\d{{{limit + 1},}}", source)
        line = source.count("\n", 0, number.start()) + 1 if number else None
        digits = f"{len(number.group())} digits" if number else "too many digits"
        return ManifestError(
            path, f"invalid TOML: a number of {digits} (at most {limit})", line=line
        )
    match = _TOML_ERROR_AT.fullmatch(message)
    if match:
        text, line, col = match.group(1), int(match.group(2)), int(match.group(3))
        return ManifestError(path, f"invalid TOML: {text}", line=line, col=col)
    if message.endswith(" (at end of document)"):
        text = message.removesuffix(" (at end of document)")
        return ManifestError(path, f"invalid TOML: {text}", line=source.count("\n") + 1)
    return ManifestError(path, f"invalid TOML: {message}")


def _did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    import difflib  # here: only a mistake needs it, not every start

    close = difflib.get_close_matches(word, list(choices), n=1)
    return f'did you mean "{close[0]}"?' if close else None


def _quote(name: str) -> str:
    """A name the user wrote, in double quotes, with control and format characters (a bidi
    override) escaped (\\u0001, \\u202e)."""
    return quoted(name)


def _show(value: object) -> str:
    """A value as the user wrote it in TOML, for `got ...`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = quoted(value)
        return shown if len(shown) <= 40 else shown[:36] + '..."'
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    shown = str(value)
    return shown if len(shown) <= 40 else shown[:36] + "..."


def _is_number(value: object) -> bool:
    """An int or float a user could mean: TOML's integers are 64-bit but tomllib allows more."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63


class _Table:
    """One table being validated: typed getters whose errors name the key's line and the service."""

    def __init__(
        self,
        path: Path,
        positions: KeyPositions,
        keypath: KeyPath,
        data: dict[str, Any],
        label: str,
    ) -> None:
        self.path = path
        self.positions = positions
        self.keypath = keypath
        self.data = data
        self.label = label  # `service "api": ` or `[devup]: `, put before every message

    @property
    def line(self) -> int | None:
        return self.positions.line(self.keypath)

    def fail(self, key: str | None, message: str, hint: str | None = None) -> NoReturn:
        where = self.keypath if key is None else (*self.keypath, key)
        line = self.positions.line(where)
        raise ManifestError(self.path, self.label + message, line=line, hint=hint)

    def check_keys(self, allowed: tuple[str, ...]) -> None:
        for key in self.data:
            if key not in allowed:
                hint = _did_you_mean(key, allowed) or f"valid keys: {', '.join(allowed)}"
                self.fail(key, f"unknown key {_quote(key)}", hint)

    def child(self, key: str, data: dict[str, Any]) -> _Table:
        """The sub-table `key` (a service's `env`), so its errors name the line of its own keys."""
        return _Table(self.path, self.positions, (*self.keypath, key), data, self.label)

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            self.fail(key, f'"{key}" must be true or false, got {_show(value)}')
        return value

    def string(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            self.fail(key, f'"{key}" must be a non-empty string, got {_show(value)}')
        if value is not None and "\0" in value:
            self.fail(key, _NUL_MESSAGE.format(f'"{key}"'))
        return value

    def seconds(self, key: str, default: float) -> float:
        value = self.data.get(key, default)
        if not _is_number(value) or value <= 0:
            self.fail(key, f'"{key}" must be a number of seconds > 0, got {_show(value)}')
        return float(value)

    def strings(self, key: str) -> list[str] | None:
        """A list of non-empty strings; a lone string is a one-item list."""
        value = self.data.get(key)
        if value is None or isinstance(value, str):
            return None if value is None else [cast(str, self.string(key))]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(key, f'"{key}" must be a list of strings, got {_show(value)}')
        if any("\0" in v for v in value):
            self.fail(key, _NUL_MESSAGE.format(f'"{key}"'))
        return value

    def path_in(self, key: str, base: Path) -> Path | None:
        value = self.string(key)
        return None if value is None else (base / value).resolve()


class _Validator:
    """Turns the parsed TOML of one manifest into a Manifest, or raises on the first problem."""

    def __init__(self, path: Path, positions: KeyPositions) -> None:
        self.path = path
        self.positions = positions
        self.root = path.parent
        self.tables: dict[str, _Table] = {}  # declared service name -> its table
        self.owner: dict[str, str] = {}  # service name (Procfile lines expanded) -> declared name

    def table(self, keypath: KeyPath, data: dict[str, Any], label: str) -> _Table:
        return _Table(self.path, self.positions, keypath, data, label)

    def manifest(self, data: dict[str, Any]) -> Manifest:
        top = self.table((), data, "")
        top.check_keys(TOP_LEVEL_KEYS)
        for key, example in (("devup", "[devup]"), ("services", "[services.web]")):
            if not isinstance(data.get(key, {}), dict):
                top.fail(key, f'"{key}" must be a table like {example}, got {_show(data[key])}')
        settings = self.settings(self.table(("devup",), data.get("devup", {}), "[devup]: "))
        declared: dict[str, Any] = data.get("services", {})
        if not declared:
            raise ManifestError(self.path, "no services defined", hint=_NO_SERVICES_HINT)
        services: dict[str, ServiceSpec] = {}
        for name, raw in declared.items():
            for spec in self.service(name, raw):
                services[spec.name] = spec
                self.owner[spec.name] = name
        self.check_env_keys(services)
        self.check_ports(services)
        services = {name: self.resolve_depends(spec, services) for name, spec in services.items()}
        self.check_cycles(services)
        return Manifest(self.path, settings, services)

    def settings(self, t: _Table) -> Settings:
        t.check_keys(DEVUP_KEYS)
        defaults = Settings()
        port_range = defaults.port_range
        if "ports" in t.data:
            port_range = self.port_range(t)
        host = t.string("host") or defaults.host
        expose = t.boolean("expose")
        if not expose and not _is_loopback(host):
            t.fail(
                "host",
                f'host "{host}" is not a loopback address and expose is not true',
                hint='set expose = true in [devup] to serve on every interface, or use "127.0.0.1"',
            )
        debounce_ms = t.data.get("debounce_ms", defaults.debounce_ms)
        if isinstance(debounce_ms, bool) or not isinstance(debounce_ms, int) or debounce_ms < 0:
            t.fail(
                "debounce_ms", f'"debounce_ms" must be an integer >= 0, got {_show(debounce_ms)}'
            )
        return Settings(
            port_range=port_range,
            host=host,
            stop_timeout_s=t.seconds("stop_timeout", defaults.stop_timeout_s),
            debounce_ms=debounce_ms,
            env_file=t.path_in("env_file", self.root),
            expose=expose,
        )

    def port_range(self, t: _Table) -> tuple[int, int]:
        value = t.data["ports"]
        numbers = parse_port_range(value) if isinstance(value, str) else None
        if numbers is None:
            t.fail("ports", f'"ports" must be a range like "3000-3999", got {_show(value)}')
        low, high = numbers
        if not MIN_PORT <= low <= MAX_PORT or not MIN_PORT <= high <= MAX_PORT:
            t.fail("ports", f'"ports" must lie within {MIN_PORT}-{MAX_PORT}, got {_show(value)}')
        if low > high:
            t.fail("ports", f'"ports" range must run low-high, got {_show(value)}')
        return low, high

    def service(self, name: str, raw: object) -> list[ServiceSpec]:
        """The spec of one [services.NAME] table: one per Procfile line for a procfile service."""
        t = self.table(("services", name), {}, f"service {_quote(name)}: ")
        if not name:
            t.fail(None, "a service name must not be empty")
        if "." in name:
            hint = f'use "-" or "_" instead, e.g. "{name.replace(".", "-")}"'
            t.fail(None, '"." in a service name is reserved for Procfile lines (shop.web)', hint)
        if not _SERVICE_NAME.fullmatch(name):
            t.fail(None, 'a service name may contain only letters, digits, "-" and "_"')
        if name.lower() == RESERVED_NAME:  # devup.log too, on a file system that ignores case
            hint = f"rename it, e.g. [services.{name}-app]"
            t.fail(
                None, '"devup" names devup\'s own lines and log; a service needs another name', hint
            )
        if not isinstance(raw, dict):
            hint = f'write [services.{name}] with cmd = "..." on the next line'
            t.fail(None, f"must be a table, got {_show(raw)}", hint)
        t.data = raw
        self.tables[name] = t
        t.check_keys(SERVICE_KEYS)
        cwd = self.root
        if "cwd" in raw:
            cwd = cast(Path, t.path_in("cwd", self.root))
            problem = _folder_problem(cwd)
            if problem is not None:
                t.fail("cwd", f"cwd {_show(raw['cwd'])} {problem} ({printable(cwd)})")
        cmd, procfile = t.string("cmd"), t.string("procfile")
        if cmd is not None and procfile is not None:
            t.fail("procfile", 'has both "cmd" and "procfile"; keep one')
        if cmd is None and procfile is None:
            t.fail(None, 'needs "cmd" (or "procfile")', hint='add cmd = "npm run dev", for example')
        needs_port, preferred_port = self.port(t, is_procfile=procfile is not None)
        watch = self.watch(t, cwd)
        base = ServiceSpec(
            name=name,
            cmd=cmd or "",
            cwd=cwd,
            needs_port=needs_port,
            preferred_port=preferred_port,
            strict_port=t.boolean("strict_port"),
            env=self.env(t),
            env_file=t.path_in("env_file", cwd),
            watch=watch,
            ignore=self.ignore(t),
            restart=self.restart(t),
            depends_on=tuple(dict.fromkeys(t.strings("depends_on") or ())),
            ready_log=self.ready_log(t),
            ready_timeout_s=t.seconds(
                "ready_timeout", ServiceSpec._field_defaults["ready_timeout_s"]
            ),
            stop_signal=self.stop_signal(t),
            expose=t.boolean("expose"),
            line=t.line,
        )
        if procfile is None:
            return [_self_reloading(base, "watch" in raw)]
        return [
            _self_reloading(
                base._replace(
                    name=f"{name}.{process}",
                    cmd=line_cmd,
                    needs_port=needs_port
                    if "port" in raw
                    else procfile_line_needs_port(process, line_cmd),
                ),
                "watch" in raw,
            )
            for process, line_cmd in self.procfile(t, cwd / procfile).items()
        ]

    def port(self, t: _Table, is_procfile: bool) -> tuple[bool, int | None]:
        """(needs_port, preferred_port) from `port`: an integer, "auto" or false."""
        value = t.data.get("port", "auto")
        if value is False or value == "auto":
            return value == "auto", None
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not MIN_PORT <= value <= MAX_PORT
        ):
            hint = 'or "auto" for a port from the pool, or false for a service that needs none'
            t.fail(
                "port", f'"port" must be an integer {MIN_PORT}-{MAX_PORT}, got {_show(value)}', hint
            )
        if is_procfile:
            hint = 'use "auto" (each line gets its own port) or false'
            t.fail("port", "a procfile service cannot have one fixed port", hint)
        return True, value

    def env(self, t: _Table) -> tuple[tuple[str, str], ...]:
        value = t.data.get("env", {})
        if not isinstance(value, dict):
            t.fail(
                "env", f'"env" must be a table like {{ LOG_LEVEL = "debug" }}, got {_show(value)}'
            )
        env: list[tuple[str, str]] = []
        where = t.child("env", value)
        for key, item in value.items():
            if key == "PORT":
                where.fail(key, "env may not set PORT", hint='choose the port with "port" instead')
            if not _ENV_NAME.fullmatch(key):
                where.fail(key, f"env name {_quote(key)} is not a valid variable name")
            if isinstance(item, bool):
                item = "true" if item else "false"
            elif _is_number(item):
                item = str(item)
            elif not isinstance(item, str):
                where.fail(
                    key, f'env "{key}" must be a string, number or boolean, got {_show(item)}'
                )
            elif "\0" in item:
                where.fail(key, _NUL_MESSAGE.format(f'env "{key}"'))
            env.append((key, item))
        return tuple(env)

    def watch(self, t: _Table, cwd: Path) -> tuple[Path, ...] | None:
        value = t.data.get("watch", True)
        if value is True:
            if "cwd" in t.data:  # a cwd of "/" or in /proc is watched as such by default
                self.check_watch(t, "cwd", (cwd,))
            return (cwd,)
        if value is False:
            return None
        paths = cast(list[str], t.strings("watch"))
        watched = tuple((cwd / p).resolve() for p in paths) or None  # watching nothing: disabled
        self.check_watch(t, "watch", watched or ())
        return watched

    def check_watch(self, t: _Table, key: str, paths: tuple[Path, ...]) -> None:
        from orchestrator.config.watchroots import watch_problem

        for path in paths:
            problem = watch_problem(path)
            if problem is not None:
                hint = 'watch the service\'s own folders, like watch = ["src"], or watch = false'
                t.fail(key, f"{key} {_quote(str(path))} {problem}", hint)

    def ignore(self, t: _Table) -> tuple[str, ...]:
        patterns = t.strings("ignore") or []
        if patterns:
            from orchestrator.config.ignore import (
                invalid_pattern,  # pathspec: only when there are some
            )

            bad = invalid_pattern(patterns)
            if bad is not None:
                hint = 'a trailing "\\" or a lone "!" matches nothing; write "\\\\" for a backslash'
                t.fail(
                    "ignore", f"ignore pattern {_show(bad)} is not a valid gitignore pattern", hint
                )
        return tuple(patterns)

    def restart(self, t: _Table) -> RestartPolicy:
        value = t.data.get("restart", "on-failure")
        if value not in RESTART_POLICIES:
            hint = _did_you_mean(value, RESTART_POLICIES) if isinstance(value, str) else None
            t.fail(
                "restart",
                f'"restart" must be "on-failure", "always" or "no", got {_show(value)}',
                hint,
            )
        return cast(RestartPolicy, value)

    def ready_log(self, t: _Table) -> str | None:
        pattern = t.string("ready_log")
        if pattern is not None:
            try:
                re.compile(pattern)
            except (re.error, OverflowError, RecursionError) as e:  # a{99999999999}, ((((...
                t.fail("ready_log", f'"ready_log" is not a valid regex: {e}')
        return pattern

    def stop_signal(self, t: _Table) -> signal.Signals:
        value = t.data.get("stop_signal", "SIGTERM")
        name = value.upper() if isinstance(value, str) else ""
        name = name if name.startswith("SIG") else "SIG" + name
        if name in signal.Signals.__members__:
            return signal.Signals[name]
        hint = _did_you_mean(name, signal.Signals.__members__) if isinstance(value, str) else None
        t.fail(
            "stop_signal",
            f'"stop_signal" must be a signal name like "SIGTERM", got {_show(value)}',
            hint,
        )

    def procfile(self, t: _Table, procfile: Path) -> dict[str, str]:
        shown = _show(t.data["procfile"])
        try:
            raw = read_capped(procfile, MAX_MANIFEST_BYTES)
            if len(raw) > MAX_MANIFEST_BYTES:
                t.fail("procfile", f"procfile {shown} is larger than 1 MiB")
            text = raw.decode("utf-8")
        except FileNotFoundError:
            t.fail("procfile", f"procfile {shown} not found ({printable(procfile)})")
        except (OSError, UnicodeDecodeError) as e:
            t.fail("procfile", f"cannot read procfile {shown}: {getattr(e, 'strerror', None) or e}")
        line = nul_line(text)
        if line is not None:
            t.fail("procfile", f"procfile {shown}:{line}: a NUL character (\\0)")
        from honcho.environ import parse_procfile  # here: only a Procfile needs it

        try:
            processes = dict(parse_procfile(text).processes)
        except AssertionError:  # honcho asserts that a process name appears once
            t.fail("procfile", f"procfile {shown} names a process twice")
        if not processes:
            t.fail(
                "procfile",
                f"procfile {shown} has no processes",
                hint='a line looks like "web: npm start"',
            )
        return processes

    def resolve_depends(self, spec: ServiceSpec, services: dict[str, ServiceSpec]) -> ServiceSpec:
        """depends_on with each Procfile service name expanded to its lines."""
        t = self.tables[self.owner[spec.name]]
        resolved: list[str] = []
        for dep in spec.depends_on:
            lines = [dep] if dep in services else _procfile_lines(services, dep)
            if not lines:
                hint = _did_you_mean(dep, [*self.tables, *services])
                t.fail("depends_on", f"depends_on names unknown service {_quote(dep)}", hint)
            resolved.extend(line for line in lines if line not in resolved)
        return spec._replace(depends_on=tuple(resolved))

    def check_cycles(self, services: dict[str, ServiceSpec]) -> None:
        done: set[str] = set()
        for start in services:
            path: list[str] = []
            stack = [iter([start])]
            while (
                stack
            ):  # an iterative depth-first search, so a long chain cannot hit recursion limits
                name = next(stack[-1], None)
                if name is None:
                    stack.pop()
                    if path:
                        done.add(path.pop())
                elif name in path:
                    cycle = [*path[path.index(name) :], name]
                    t = self.tables[self.owner[cycle[0]]]
                    t.fail("depends_on", f"dependency cycle: {' -> '.join(cycle)}")
                elif name not in done:
                    path.append(name)
                    stack.append(iter(services[name].depends_on))

    def check_ports(self, services: dict[str, ServiceSpec]) -> None:
        wanted: dict[int, str] = {}
        for spec in services.values():
            port = spec.preferred_port
            if port is not None and port in wanted:
                message = f'port {port} is also the port of service "{wanted[port]}"'
                self.tables[self.owner[spec.name]].fail("port", message)
            if port is not None:
                wanted[port] = spec.name

    def check_env_keys(self, services: dict[str, ServiceSpec]) -> None:
        seen: dict[str, str] = {}
        for name in services:
            key = env_key(name)
            if key in seen:
                message = f'services "{seen[key]}" and "{name}" both map to {key}_PORT'
                line = self.tables[self.owner[name]].line
                raise ManifestError(self.path, message, line=line, hint="rename one of them")
            seen[key] = name


def procfile_line_needs_port(process: str, cmd: str) -> bool:
    """Heroku's convention: only `web` takes traffic. Another line gets a port only when its
    command uses $PORT (a worker listens on nothing, and a port would hold up its readiness)."""
    return process == "web" or _USES_PORT.search(cmd) is not None


def _self_reloading(spec: ServiceSpec, watch_given: bool) -> ServiceSpec:
    """A dev server that reloads itself (Vite, `next dev`, `flask --debug`, ...) is by default
    restarted only on the files it reads once; an explicit `watch` wins."""
    from orchestrator.config import selfreload

    # `env = { FLASK_DEBUG = "1" }` turns Flask's reloader on as the same word in cmd would.
    prefix = " ".join(f"{k}={v}" for k, v in spec.env if k == "FLASK_DEBUG" and " " not in v)
    reloader = selfreload.detect(f"{prefix} {spec.cmd}" if prefix else spec.cmd, spec.cwd)
    if reloader is None:
        return spec
    folder = reloader.folder or spec.cwd
    if watch_given:
        return spec._replace(reloads_itself=reloader.tool, reloads_in=folder)
    return spec._replace(
        watch=selfreload.watch_paths(reloader, folder),
        reloads_itself=reloader.tool,
        reloads_in=folder,
        default_watch=True,
    )


def parse_port_range(text: str) -> tuple[int, int] | None:
    """ "3000-3999" -> (3000, 3999), unchecked against the allowed ports; None if not a range."""
    match = _PORT_RANGE.fullmatch(text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _folder_problem(path: Path) -> str | None:
    """Why `path` cannot be a service's folder, or None."""
    try:
        if path.is_dir():
            return None
        return "is not a folder" if path.exists() else "does not exist"
    except OSError as e:  # a name over NAME_MAX, ...
        return f"cannot be used: {e.strerror or e}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname may resolve to anything: treat it as public
