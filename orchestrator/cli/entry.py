"""The `devup` entry point. `devup --version`, `devup ports [--json]` and `devup logs -n N
[SERVICE...]` while a run is up, and the control verbs (`devup status [--json]`, `devup
restart|start|stop SERVICE... [--no-wait]`, `devup stop`, `devup reload`: control/client.py's fast
path, on the verb table), which editors, scripts and agents run often, are answered here without
loading click or the manifest parser (their imports are most of the time these take, and a running
devup must stay reachable while devports.toml does not parse). The plain start, `devup [up]
[SERVICE...]` with --no-watch/--no-color/--debug, runs without click too (plain_up.py): click is
~40 ms of every start. Any other command line goes to the click CLI in cli/main.py.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        try:
            _main()
        finally:
            sys.stdout.flush()  # here, where a reader gone is caught, not at the interpreter's exit
    except KeyboardInterrupt:  # Ctrl-C while the CLI loads, before it handles one itself
        sys.exit(130)
    except BrokenPipeError:  # `devup status --json | head -1`: the reader has what it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)


def _main() -> None:
    _reopen_closed_std_fds()
    args = sys.argv[1:]
    if args == ["--version"]:  # what editors and scripts run to find devup: click's own wording
        from orchestrator import __version__

        print(f"devup, version {__version__}")
        sys.exit(0)
    if args in (["ports"], ["ports", "--json"]) and _ports(as_json=len(args) == 2):
        sys.exit(0)
    if args[:1] == ["logs"] and _logs(args[1:]):
        sys.exit(0)
    if args[:1] in (["url"], ["port"]) and len(args) == 2 and not args[1].startswith("-"):
        from orchestrator.cli.one_value import quick

        code = quick(args[0], args[1])  # None: no run, or a name the run does not know
        if code is not None:
            sys.exit(code)
    if not args or args[0] == "up" or args[0].startswith("-"):  # never a control verb
        from orchestrator.cli.plain_up import run

        code = run(args)
        if code is not None:
            sys.exit(code)
    else:
        from orchestrator.control.client import fast_path

        try:
            code = fast_path(args)
        except KeyboardInterrupt:
            code = 130  # as the CLI does
        if code is not None:
            sys.exit(code)
    from orchestrator.cli.main import main as cli_main

    cli_main()


def _reopen_closed_std_fds() -> None:
    """`devup >&-`: a closed stdin, stdout or stderr becomes /dev/null. Left closed, Python has no
    sys.stdout, and the next file devup opens (its run lock, a log) would take the number 1 and
    be written to as the terminal, or be handed to every service as its output."""
    import os

    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free number: `fd` itself
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            if getattr(sys, name) is None:
                setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115 (kept open)


def _ports(as_json: bool) -> bool:
    """`devup ports` while the project's devup runs, from its answer; False to use the CLI (no
    run, or a devports.toml changed since the run read it: the CLI reads the file as it is)."""
    import json
    import os
    from pathlib import Path

    from orchestrator.base.errors import DevupError
    from orchestrator.base.locate import find_manifest
    from orchestrator.base.paths import project_key
    from orchestrator.control import client
    from orchestrator.ports.registry import Registry
    from orchestrator.ports.runports import format_ports, live_ports

    try:
        manifest = find_manifest(Path.cwd())
        answer = client.check_answer(client.request(manifest.parent, "status"))
        run = answer["run"]
        if "ports" not in run or (run["manifest"], run["manifest_mtime_ns"]) != (
            str(manifest),
            os.stat(manifest).st_mtime_ns,
        ):
            return False
        leases = Registry().read().get(project_key(manifest.parent), {})
    except (DevupError, OSError, KeyError, TypeError):
        return False
    doc = live_ports(answer, leases)
    print(json.dumps(doc, indent=2) if as_json else format_ports(doc))
    return True


def _logs(args: list[str]) -> bool:
    """`logs -n N [SERVICE...]` when every named service has a log file; False to use the CLI."""
    count: int | None = None
    names: list[str] = []
    rest = iter(args)
    for arg in rest:
        if arg in ("-n", "--lines") and count is None:
            value = next(rest, "")
            # ASCII digits (isdigit() takes "²", which int() refuses), few enough for int().
            if not (value.isascii() and value.isdigit()) or len(value) > 18:
                return False
            count = int(value)
        elif arg.startswith("-"):
            return False  # -f, --since, -h, ...: the CLI's job
        else:
            names.append(arg)
    if count is None:
        return False
    from pathlib import Path

    from orchestrator.base.errors import DevupError
    from orchestrator.base.locate import find_manifest
    from orchestrator.base.paths import project_state_dir
    from orchestrator.output.logs import show

    try:
        folder = project_state_dir(find_manifest(Path.cwd()).parent) / "logs"
    except DevupError:
        return False
    if not all((folder / f"{name}.log").is_file() for name in names):
        return False  # an unknown name or a Procfile group: the CLI checks it and says so
    import os

    from orchestrator.base.ansi import strip_ansi

    # As `devup logs` decides (up.use_color): escapes only to a terminal with colour on.
    keep_escapes = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    out = sys.stdout.buffer

    def write(data: bytes) -> None:
        out.write(data if keep_escapes else strip_ansi(data))

    try:
        show(folder, names, write, count=count)
        out.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return True
