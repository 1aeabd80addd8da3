"""devports.toml: the specs a good manifest gives, and the exact line every bad one prints."""

from __future__ import annotations

import os
import signal
import textwrap
from pathlib import Path

import pytest

from orchestrator.base.errors import ManifestError, UsageError
from orchestrator.base.locate import find_manifest
from orchestrator.config.manifest import (
    MAX_MANIFEST_BYTES,
    Manifest,
    ServiceSpec,
    Settings,
    env_key,
    load_manifest,
    start_order,
)

VALID_KEYS_HINT = (
    "valid keys: cwd, cmd, procfile, port, strict_port, env, env_file, watch, ignore, restart, "
    "depends_on, ready_log, ready_timeout, stop_signal, expose"
)
PORT_HINT = 'or "auto" for a port from the pool, or false for a service that needs none'


def write(folder: Path, text: str, name: str = "devports.toml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> Manifest:
    return load_manifest(write(tmp_path, text))


def test_full_manifest_gives_every_key_its_spec_value(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    (root / "services/api").mkdir(parents=True)
    write(root, "web: npm start\nworker: node worker.js\n", "apps/shop/Procfile")
    manifest = load(
        root,
        """
        [devup]
        ports = "4000-4099"
        host = "0.0.0.0"
        stop_timeout = 2.5
        debounce_ms = 0
        env_file = ".env"
        expose = true

        [services.db]
        cmd = "postgres"
        port = false
        restart = "no"

        [services.api]
        cwd = "services/api"
        cmd = "python -m api"
        port = 3001
        strict_port = true
        env = { LOG_LEVEL = "debug", PUBLIC_URL = "${WEB_URL}", WORKERS = 4, DEBUG = true }
        env_file = ".env.local"
        watch = ["src", "pyproject.toml"]
        ignore = ["*.log", "tmp/"]
        restart = "always"
        depends_on = ["db"]
        ready_log = "Listening on"
        ready_timeout = 10
        stop_signal = "INT"
        expose = true

        [services.shop]
        cwd = "apps/shop"
        procfile = "Procfile"
        depends_on = ["api"]
        """,
    )
    assert manifest.path == root / "devports.toml"
    assert manifest.root == root
    assert manifest.settings == Settings(
        port_range=(4000, 4099),
        host="0.0.0.0",
        stop_timeout_s=2.5,
        debounce_ms=0,
        env_file=root / ".env",
        expose=True,
    )
    assert list(manifest.services) == ["db", "api", "shop.web", "shop.worker"]
    assert manifest.services["db"] == ServiceSpec(
        name="db", cmd="postgres", cwd=root, needs_port=False, watch=(root,), restart="no", line=9
    )
    api = root / "services/api"
    assert manifest.services["api"] == ServiceSpec(
        name="api",
        cmd="python -m api",
        cwd=api,
        needs_port=True,
        preferred_port=3001,
        strict_port=True,
        env=(
            ("LOG_LEVEL", "debug"),
            ("PUBLIC_URL", "${WEB_URL}"),
            ("WORKERS", "4"),
            ("DEBUG", "true"),
        ),
        env_file=api / ".env.local",
        watch=(api / "src", api / "pyproject.toml"),
        ignore=("*.log", "tmp/"),
        restart="always",
        depends_on=("db",),
        ready_log="Listening on",
        ready_timeout_s=10.0,
        stop_signal=signal.SIGINT,
        expose=True,
        line=14,
    )
    shop = root / "apps/shop"
    web = manifest.services["shop.web"]
    assert (web.cmd, web.cwd, web.depends_on, web.line) == ("npm start", shop, ("api",), 30)
    assert (web.needs_port, web.preferred_port, web.watch) == (True, None, (shop,))
    assert manifest.services["shop.worker"].cmd == "node worker.js"


def test_defaults(tmp_path: Path) -> None:
    manifest = load(tmp_path, '[services.web]\ncmd = "npm run dev"\n')
    root = tmp_path.resolve()
    assert manifest.settings == Settings()
    assert manifest.services == {
        "web": ServiceSpec(name="web", cmd="npm run dev", cwd=root, watch=(root,), line=1)
    }


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('[services]\nweb = { cmd = "x" }\n', 2),
        ('services.web.cmd = "x"\n', 1),
        ('# a comment\n\n[services."web"]\ncmd = "x"\n', 3),
    ],
)
def test_service_line_is_its_table(tmp_path: Path, text: str, line: int) -> None:
    assert load(tmp_path, text).services["web"].line == line


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"auto"', (True, None)),
        ("false", (False, None)),
        ("1024", (True, 1024)),
        ("65535", (True, 65535)),
    ],
)
def test_port_values(tmp_path: Path, value: str, expected: tuple[bool, int | None]) -> None:
    spec = load(tmp_path, f'[services.web]\ncmd = "x"\nport = {value}\n').services["web"]
    assert (spec.needs_port, spec.preferred_port) == expected


@pytest.mark.parametrize(
    ("key", "value", "attribute", "expected"),
    [
        ("watch", "false", "watch", None),
        ("watch", "[]", "watch", None),
        ("watch", '"src"', "watch", ("src",)),
        ("ignore", '"*.log"', "ignore", ("*.log",)),
        ("stop_signal", '"SIGHUP"', "stop_signal", signal.SIGHUP),
        ("stop_signal", '"term"', "stop_signal", signal.SIGTERM),
        ("ready_timeout", "0.5", "ready_timeout_s", 0.5),
        ("env", "{ RATIO = 0.5, OFF = false }", "env", (("RATIO", "0.5"), ("OFF", "false"))),
    ],
)
def test_value_forms(
    tmp_path: Path, key: str, value: str, attribute: str, expected: object
) -> None:
    spec = load(tmp_path, f'[services.web]\ncmd = "x"\n{key} = {value}\n').services["web"]
    if attribute == "watch" and isinstance(expected, tuple):
        expected = tuple(tmp_path.resolve() / p for p in expected)
    assert getattr(spec, attribute) == expected


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1"])
def test_loopback_hosts_need_no_expose(tmp_path: Path, host: str) -> None:
    text = f'[devup]\nhost = "{host}"\n[services.web]\ncmd = "x"\n'
    assert load(tmp_path, text).settings.host == host


CMD = 'cmd = "x"\n'

BAD_MANIFESTS = [
    # The file as a whole
    (
        "",
        "devports.toml: no services defined",
        'add one, e.g. [services.web] with cmd = "npm run dev"',
    ),
    (
        '[devup]\nports = "3000-3100"\n[services]\n',
        "devports.toml: no services defined",
        'add one, e.g. [services.web] with cmd = "npm run dev"',
    ),
    (
        '[services.api]\ncmd = "x\n',
        "devports.toml:2:9: invalid TOML: Illegal character '\\n'",
        None,
    ),
    ("[services.api]\ncmd = ", "devports.toml:2: invalid TOML: Invalid value", None),
    (
        "[services.api]\nport = " + "9" * 5000 + "\n",
        "devports.toml:2: invalid TOML: a number of 5000 digits (at most 4300)",
        None,
    ),
    # Unknown keys, at every level
    (
        "[service.api]\n" + CMD,
        'devports.toml:1: unknown key "service"',
        'did you mean "services"?',
    ),
    ("zzz = 1\n", 'devports.toml:1: unknown key "zzz"', "valid keys: devup, services"),
    (
        '[devup]\nprots = "3000-3100"\n',
        'devports.toml:2: [devup]: unknown key "prots"',
        'did you mean "ports"?',
    ),
    (
        '[services.api]\ncmnd = "x"\n',
        'devports.toml:2: service "api": unknown key "cmnd"',
        'did you mean "cmd"?',
    ),
    (
        "[services.api]\n" + CMD + "zzz = 1\n",
        'devports.toml:3: service "api": unknown key "zzz"',
        VALID_KEYS_HINT,
    ),
    # Table shapes
    ("devup = 1\n", 'devports.toml:1: "devup" must be a table like [devup], got 1', None),
    (
        "[[services]]\n" + CMD,
        'devports.toml:1: "services" must be a table like [services.web], got an array',
        None,
    ),
    (
        '[services]\napi = "python -m api"\n',
        'devports.toml:2: service "api": must be a table, got "python -m api"',
        'write [services.api] with cmd = "..." on the next line',
    ),
    # Service names
    (
        '[services."a.b"]\n' + CMD,
        'devports.toml:1: service "a.b": "." in a service name is reserved for Procfile lines '
        "(shop.web)",
        'use "-" or "_" instead, e.g. "a-b"',
    ),
    (
        '[services."a b"]\n' + CMD,
        'devports.toml:1: service "a b": a service name may contain only letters, digits, "-" '
        'and "_"',
        None,
    ),
    (
        '[services.""]\n' + CMD,
        'devports.toml:1: service "": a service name must not be empty',
        None,
    ),
    (
        "[services.a-b]\n" + CMD + "[services.a_b]\n" + CMD,
        'devports.toml:3: services "a-b" and "a_b" both map to A_B_PORT',
        "rename one of them",
    ),
    # [devup]
    (
        '[devup]\nports = "3000"\n',
        'devports.toml:2: [devup]: "ports" must be a range like "3000-3999", got "3000"',
        None,
    ),
    (
        "[devup]\nports = 3000\n",
        'devports.toml:2: [devup]: "ports" must be a range like "3000-3999", got 3000',
        None,
    ),
    (
        '[devup]\nports = "80-90"\n',
        'devports.toml:2: [devup]: "ports" must lie within 1024-65535, got "80-90"',
        None,
    ),
    (
        '[devup]\nports = "3999-3000"\n',
        'devports.toml:2: [devup]: "ports" range must run low-high, got "3999-3000"',
        None,
    ),
    (
        '[devup]\n\nhost = "0.0.0.0"\n',
        'devports.toml:3: [devup]: host "0.0.0.0" is not a loopback address and expose is not true',
        'set expose = true in [devup] to serve on every interface, or use "127.0.0.1"',
    ),
    (
        "[devup]\nhost = 1\n",
        'devports.toml:2: [devup]: "host" must be a non-empty string, got 1',
        None,
    ),
    (
        "[devup]\nstop_timeout = 0\n",
        'devports.toml:2: [devup]: "stop_timeout" must be a number of seconds > 0, got 0',
        None,
    ),
    (
        '[devup]\nstop_timeout = "5"\n',
        'devports.toml:2: [devup]: "stop_timeout" must be a number of seconds > 0, got "5"',
        None,
    ),
    (
        "[devup]\ndebounce_ms = -1\n",
        'devports.toml:2: [devup]: "debounce_ms" must be an integer >= 0, got -1',
        None,
    ),
    (
        "[devup]\ndebounce_ms = 1.5\n",
        'devports.toml:2: [devup]: "debounce_ms" must be an integer >= 0, got 1.5',
        None,
    ),
    (
        "[devup]\nenv_file = false\n",
        'devports.toml:2: [devup]: "env_file" must be a non-empty string, got false',
        None,
    ),
    (
        '[devup]\nexpose = "yes"\n',
        'devports.toml:2: [devup]: "expose" must be true or false, got "yes"',
        None,
    ),
    # cmd and procfile
    (
        "[services.api]\nport = 3001\n",
        'devports.toml:1: service "api": needs "cmd" (or "procfile")',
        'add cmd = "npm run dev", for example',
    ),
    (
        '[services.api]\ncmd = " "\n',
        'devports.toml:2: service "api": "cmd" must be a non-empty string, got " "',
        None,
    ),
    (
        '[services.api]\ncmd = ["python", "-m", "api"]\n',
        'devports.toml:2: service "api": "cmd" must be a non-empty string, got an array',
        None,
    ),
    (
        '[services.api]\ncmd = "x"\nprocfile = "Procfile"\n',
        'devports.toml:3: service "api": has both "cmd" and "procfile"; keep one',
        None,
    ),
    # port
    (
        '[services.api]\ncmd = "x"\nport = "abc"\n',
        'devports.toml:3: service "api": "port" must be an integer 1024-65535, got "abc"',
        PORT_HINT,
    ),
    (
        '[services.api]\ncmd = "x"\nport = true\n',
        'devports.toml:3: service "api": "port" must be an integer 1024-65535, got true',
        PORT_HINT,
    ),
    (
        '[services.api]\ncmd = "x"\nport = 80\n',
        'devports.toml:3: service "api": "port" must be an integer 1024-65535, got 80',
        PORT_HINT,
    ),
    (
        '[services.api]\ncmd = "x"\nport = 65536\n',
        'devports.toml:3: service "api": "port" must be an integer 1024-65535, got 65536',
        PORT_HINT,
    ),
    (
        '[services.api]\ncmd = "x"\nport = 3000.0\n',
        'devports.toml:3: service "api": "port" must be an integer 1024-65535, got 3000.0',
        PORT_HINT,
    ),
    (
        '[services]\napi = { cmd = "x", port = "abc" }\n',
        'devports.toml:2: service "api": "port" must be an integer 1024-65535, got "abc"',
        PORT_HINT,
    ),
    (
        'services.api.cmd = "x"\nservices.api.port = "abc"\n',
        'devports.toml:2: service "api": "port" must be an integer 1024-65535, got "abc"',
        PORT_HINT,
    ),
    (
        "[services.api]\n" + CMD + "port = 3000\n[services.web]\n" + CMD + "port = 3000\n",
        'devports.toml:6: service "web": port 3000 is also the port of service "api"',
        None,
    ),
    (
        '[services.api]\ncmd = "x"\nstrict_port = 1\n',
        'devports.toml:3: service "api": "strict_port" must be true or false, got 1',
        None,
    ),
    # env
    (
        '[services.api]\ncmd = "x"\nenv = ["A=1"]\n',
        'devports.toml:3: service "api": "env" must be a table like { LOG_LEVEL = "debug" }, '
        "got an array",
        None,
    ),
    (
        '[services.api]\ncmd = "x"\n\n[services.api.env]\nA = "1"\nPORT = "3000"\n',
        'devports.toml:6: service "api": env may not set PORT',
        'choose the port with "port" instead',
    ),
    (
        '[services.api]\ncmd = "x"\nenv = { "1X" = "a" }\n',
        'devports.toml:3: service "api": env name "1X" is not a valid variable name',
        None,
    ),
    (
        '[services.api]\ncmd = "x"\n[services.api.env]\nA = [1]\n',
        'devports.toml:4: service "api": env "A" must be a string, number or boolean, got an array',
        None,
    ),
    (
        '[services.api]\ncmd = "x"\nenv_file = 1\n',
        'devports.toml:3: service "api": "env_file" must be a non-empty string, got 1',
        None,
    ),
    # watch, ignore
    (
        '[services.api]\ncmd = "x"\nwatch = 1\n',
        'devports.toml:3: service "api": "watch" must be a list of strings, got 1',
        None,
    ),
    (
        '[services.api]\ncmd = "x"\nwatch = ["src", 1]\n',
        'devports.toml:3: service "api": "watch" must be a list of strings, got an array',
        None,
    ),
    (
        '[services.api]\ncmd = "x"\nignore = { a = 1 }\n',
        'devports.toml:3: service "api": "ignore" must be a list of strings, got a table',
        None,
    ),
    # restart
    (
        '[services.api]\ncmd = "x"\nrestart = "alway"\n',
        'devports.toml:3: service "api": "restart" must be "on-failure", "always" or "no", '
        'got "alway"',
        'did you mean "always"?',
    ),
    (
        '[services.api]\ncmd = "x"\nrestart = false\n',
        'devports.toml:3: service "api": "restart" must be "on-failure", "always" or "no", '
        "got false",
        None,
    ),
    # depends_on
    (
        "[services.db]\n" + CMD + '[services.api]\ncmd = "x"\ndepends_on = ["dbb"]\n',
        'devports.toml:5: service "api": depends_on names unknown service "dbb"',
        'did you mean "db"?',
    ),
    (
        '[services.api]\ncmd = "x"\ndepends_on = [1]\n',
        'devports.toml:3: service "api": "depends_on" must be a list of strings, got an array',
        None,
    ),
    (
        '[services.a]\ncmd = "x"\ndepends_on = ["b"]\n[services.b]\ncmd = "x"\ndepends_on = "a"\n',
        'devports.toml:3: service "a": dependency cycle: a -> b -> a',
        None,
    ),
    (
        '[services.a]\ncmd = "x"\ndepends_on = ["a"]\n',
        'devports.toml:3: service "a": dependency cycle: a -> a',
        None,
    ),
    (
        "[services.top]\n" + CMD + 'depends_on = ["a"]\n'
        '[services.a]\ncmd = "x"\ndepends_on = ["b"]\n'
        '[services.b]\ncmd = "x"\ndepends_on = ["c"]\n'
        '[services.c]\ncmd = "x"\ndepends_on = ["a"]\n',
        'devports.toml:6: service "a": dependency cycle: a -> b -> c -> a',
        None,
    ),
    # readiness and stopping
    (
        '[services.api]\ncmd = "x"\nready_log = "("\n',
        'devports.toml:3: service "api": "ready_log" is not a valid regex: '
        "missing ), unterminated subpattern at position 0",
        None,
    ),
    (
        '[services.api]\ncmd = "x"\nready_timeout = -1\n',
        'devports.toml:3: service "api": "ready_timeout" must be a number of seconds > 0, got -1',
        None,
    ),
    (
        '[services.api]\ncmd = "x"\nready_timeout = 99999999999999999999999999999999999999999\n',
        'devports.toml:3: service "api": "ready_timeout" must be a number of seconds > 0, '
        "got 999999999999999999999999999999999999...",
        None,
    ),
    (
        '[services.api]\ncmd = "x"\nready_timeout = inf\n',
        'devports.toml:3: service "api": "ready_timeout" must be a number of seconds > 0, got inf',
        None,
    ),
    (
        '[services.api]\ncmd = "x"\nstop_signal = "SIGTERN"\n',
        'devports.toml:3: service "api": "stop_signal" must be a signal name like "SIGTERM", '
        'got "SIGTERN"',
        'did you mean "SIGTERM"?',
    ),
    (
        '[services.api]\ncmd = "x"\nstop_signal = 15\n',
        'devports.toml:3: service "api": "stop_signal" must be a signal name like "SIGTERM", '
        "got 15",
        None,
    ),
    (
        '[services.api]\ncmd = "x"\nexpose = "no"\n',
        'devports.toml:3: service "api": "expose" must be true or false, got "no"',
        None,
    ),
]


@pytest.mark.parametrize(("text", "message", "hint"), BAD_MANIFESTS)
def test_bad_manifest_names_the_line(
    tmp_path: Path, text: str, message: str, hint: str | None
) -> None:
    with pytest.raises(ManifestError) as caught:
        load(tmp_path, text)
    assert (str(caught.value), caught.value.hint) == (message, hint)
    assert caught.value.exit_code == 2


def test_missing_cwd(tmp_path: Path) -> None:
    write(tmp_path, "x", "file")
    for cwd, problem in (("nope", "does not exist"), ("file", "is not a folder")):
        with pytest.raises(ManifestError) as caught:
            load(tmp_path, f'[services.api]\ncmd = "x"\ncwd = "{cwd}"\n')
        where = tmp_path.resolve() / cwd
        assert (
            str(caught.value) == f'devports.toml:3: service "api": cwd "{cwd}" {problem} ({where})'
        )


@pytest.mark.parametrize(
    ("procfile", "message", "hint"),
    [
        (
            None,
            'devports.toml:3: service "shop": procfile "Procfile" not found ({procfile})',
            None,
        ),
        (
            "# nothing here\n",
            'devports.toml:3: service "shop": procfile "Procfile" has no processes',
            'a line looks like "web: npm start"',
        ),
        (
            "web: a\nweb: b\n",
            'devports.toml:3: service "shop": procfile "Procfile" names a process twice',
            None,
        ),
    ],
)
def test_bad_procfile(tmp_path: Path, procfile: str | None, message: str, hint: str | None) -> None:
    if procfile is not None:
        write(tmp_path, procfile, "Procfile")
    with pytest.raises(ManifestError) as caught:
        load(tmp_path, '[services.shop]\n\nprocfile = "Procfile"\n')
    expected = message.format(procfile=tmp_path.resolve() / "Procfile")
    assert (str(caught.value), caught.value.hint) == (expected, hint)


def test_procfile_service_cannot_fix_one_port(tmp_path: Path) -> None:
    write(tmp_path, "web: a\nworker: b\n", "Procfile")
    with pytest.raises(ManifestError) as caught:
        load(tmp_path, '[services.shop]\nprocfile = "Procfile"\nport = 3000\n')
    assert str(caught.value) == (
        'devports.toml:3: service "shop": a procfile service cannot have one fixed port'
    )
    assert caught.value.hint == 'use "auto" (each line gets its own port) or false'


def test_procfile_lines_share_the_service_settings(tmp_path: Path) -> None:
    write(tmp_path, "web: npm start -p $PORT\nworker: node worker.js\n", "Procfile")
    manifest = load(
        tmp_path,
        """
        [services.db]
        cmd = "postgres"
        [services.shop]
        procfile = "Procfile"
        port = false
        env = { A = "1" }
        depends_on = ["db"]
        [services.tests]
        cmd = "pytest"
        depends_on = ["shop"]
        [services.one]
        cmd = "x"
        depends_on = ["shop.worker", "shop"]
        """,
    )
    assert list(manifest.services) == ["db", "shop.web", "shop.worker", "tests", "one"]
    assert manifest.services["one"].depends_on == ("shop.worker", "shop.web")
    web, worker = manifest.services["shop.web"], manifest.services["shop.worker"]
    assert (web.cmd, worker.cmd) == ("npm start -p $PORT", "node worker.js")
    for spec in (web, worker):
        assert (spec.needs_port, spec.env, spec.depends_on, spec.line) == (
            False,
            (("A", "1"),),
            ("db",),
            3,
        )
    assert manifest.services["tests"].depends_on == ("shop.web", "shop.worker")


def test_procfile_lines_collide_with_declared_names(tmp_path: Path) -> None:
    write(tmp_path, "web: a\n", "Procfile")
    with pytest.raises(ManifestError) as caught:
        load(tmp_path, '[services.shop]\nprocfile = "Procfile"\n[services.shop_web]\ncmd = "b"\n')
    assert str(caught.value) == (
        'devports.toml:3: services "shop.web" and "shop_web" both map to SHOP_WEB_PORT'
    )


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "devports.toml"
    path.write_bytes(b'[services.api]\ncmd = "caf\xe9"\n')
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert str(caught.value) == (
        "devports.toml:2: file is not valid UTF-8 (byte 0xe9 at offset 25)"
    )


def test_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "devports.toml"
    path.write_bytes(b'\xef\xbb\xbf[services.api]\ncmd = "x"\n')
    assert list(load_manifest(path).services) == ["api"]


def test_too_big(tmp_path: Path) -> None:
    path = tmp_path / "devports.toml"
    path.write_bytes(b"#" * (MAX_MANIFEST_BYTES + 1))
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert str(caught.value) == "devports.toml: file is larger than 1 MiB"


def test_folder_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "devports.toml").mkdir()
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path / "devports.toml")
    assert str(caught.value) == "devports.toml: is a folder, not a file"
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path / "other.toml")
    assert str(caught.value) == "other.toml: no such file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable(tmp_path: Path) -> None:
    path = write(tmp_path, '[services.api]\ncmd = "x"\n')
    path.chmod(0)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert str(caught.value) == "devports.toml: cannot read: Permission denied"


def test_find_manifest_walks_up(tmp_path: Path) -> None:
    path = write(tmp_path, '[services.api]\ncmd = "x"\n')
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_manifest(deep) == path.resolve()
    assert find_manifest(tmp_path) == path.resolve()


def test_find_manifest_none(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        find_manifest(tmp_path)
    assert (str(caught.value), caught.value.hint) == (
        f"no devports.toml in {tmp_path.resolve()} or any parent folder",
        "create one with `devup init`, or pass -f PATH",
    )
    assert caught.value.exit_code == 2


def test_env_key() -> None:
    assert [env_key(n) for n in ("api", "shop.web", "my-app", "é")] == [
        "API",
        "SHOP_WEB",
        "MY_APP",
        "_",
    ]


ORDER_MANIFEST = """
[services.web]
cmd = "x"
depends_on = ["api", "shop"]
[services.api]
cmd = "x"
depends_on = ["db"]
[services.docs]
cmd = "x"
[services.shop]
procfile = "Procfile"
[services.db]
cmd = "x"
"""


@pytest.mark.parametrize(
    ("names", "order"),
    [
        (None, ["db", "api", "shop.web", "shop.worker", "web", "docs"]),
        (["docs"], ["docs"]),
        (["api"], ["db", "api"]),
        (["web", "web"], ["db", "api", "shop.web", "shop.worker", "web"]),
        (["shop"], ["shop.web", "shop.worker"]),
        (["shop.worker", "docs"], ["docs", "shop.worker"]),
    ],
)
def test_start_order(tmp_path: Path, names: list[str] | None, order: list[str]) -> None:
    write(tmp_path, "web: a\nworker: b\n", "Procfile")
    assert start_order(load(tmp_path, ORDER_MANIFEST), names) == order


def test_start_order_unknown_name(tmp_path: Path) -> None:
    write(tmp_path, "web: a\nworker: b\n", "Procfile")
    manifest = load(tmp_path, ORDER_MANIFEST)
    with pytest.raises(UsageError) as caught:
        start_order(manifest, ["api", "shpo"])
    assert (str(caught.value), caught.value.hint) == (
        'unknown service "shpo"',
        'did you mean "shop"?',
    )
    with pytest.raises(UsageError) as caught:
        start_order(manifest, ["zzz"])
    assert caught.value.hint == "services: web, api, docs, shop.web, shop.worker, db"
