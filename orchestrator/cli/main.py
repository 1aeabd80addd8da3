"""The `devup` command line: parses arguments, calls one module per command, prints errors.

The only place that calls sys.exit or turns an expected failure into `devup: error: ...`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from orchestrator import __version__
from orchestrator.base.errors import DevupError, ManifestError, UsageError
from orchestrator.control import client

if TYPE_CHECKING:
    from orchestrator.config.manifest import Manifest

F = TypeVar("F", bound=Callable[..., Any])


class Options:
    """The options every command shares, as given before or after it: the click context's obj."""

    def __init__(self) -> None:
        self.manifest_file: Path | None = None
        self.no_color = False
        self.no_watch = False
        self.debug = False  # the run's trace (run/trace.py), for `up` only

    def manifest(self) -> Manifest:
        # Imported here: `devup status` and friends should not pay for it before they need it.
        from orchestrator.base.locate import find_manifest
        from orchestrator.config.manifest import load_manifest

        path = self.manifest_file or find_manifest(Path.cwd())
        return load_manifest(path)

    def manifest_path(self) -> Path:
        """devports.toml as -f names it or as found upwards, without parsing it: what commands
        that talk to the running devup need (the project folder is its parent)."""
        from orchestrator.base.locate import find_manifest

        return (self.manifest_file or find_manifest(Path.cwd())).absolute()


def _remember(click_ctx: click.Context, param: click.Parameter, value: Path | bool | None) -> None:
    """Keep a shared option in Options, given before the command or after it: a later -f wins, a
    flag once given stays on."""
    options = click_ctx.ensure_object(Options)
    if value:  # None when not given
        setattr(options, str(param.name), value)


_shared_option = partial(click.option, expose_value=False, callback=_remember)


def _common(func: F, short_file: bool = True, color: bool = False, watch: bool = False) -> F:
    """-f/--file on every command that reads the manifest; --no-color on those whose output has
    colour, --no-watch on `up` only (all three are also accepted before the command). None is a
    parameter of the command: the command reads them in ctx.obj (@click.pass_obj)."""
    func = _shared_option(
        *(["-f"] if short_file else []),
        "--file",
        "manifest_file",
        type=click.Path(path_type=Path),
        help="Path to devports.toml (default: search upwards).",
    )(func)
    if color:
        func = _shared_option(
            "--no-color", is_flag=True, default=None, help="No colours (NO_COLOR is respected too)."
        )(func)
    if watch:
        func = _shared_option(
            "--no-watch",
            is_flag=True,
            default=None,
            help="Do not restart services when their files change.",
        )(func)
        func = _shared_option(
            "--debug",
            is_flag=True,
            default=None,
            help="Trace each event and state change on stderr (as DEVUP_DEBUG=1 does).",
        )(func)
    return func


class DevupGroup(click.Group):
    """Unknown commands get a did-you-mean, and a service name gets pointed at `devup up`."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if args and self.get_command(ctx, name) is None and not name.startswith("-"):
            import difflib

            from orchestrator.base.quoting import printable, quoted

            close = difflib.get_close_matches(name, self.list_commands(ctx), n=1)
            if close:
                hint = f'did you mean "{close[0]}"?'
            else:
                commands = ", ".join(self.list_commands(ctx))
                hint = f"commands: {commands}; to start a service: devup up {printable(name)}"
            raise UsageError(f"no command {quoted(name)}", hint=hint)
        return super().resolve_command(ctx, args)


def complete_services(
    click_ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[click.shell_completion.CompletionItem]:
    """Shell completion of service names (and Procfile service groups) from the manifest."""
    from click.shell_completion import CompletionItem

    try:
        manifest = click_ctx.ensure_object(Options).manifest()
    except DevupError:
        return []
    names = list(manifest.services)
    names += sorted({n.split(".")[0] for n in names if "." in n})
    return [
        CompletionItem(n, help=_service_help(manifest, n))
        for n in names
        if n.startswith(incomplete)
    ]


def _service_help(manifest: Manifest, name: str) -> str | None:
    spec = manifest.services.get(name)
    return spec.cmd if spec is not None else "Procfile services"


@click.group(
    cls=DevupGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@partial(_common, color=True, watch=True)
@click.version_option(__version__, "--version", prog_name="devup")
@click.pass_context
def cli(click_ctx: click.Context) -> int | None:
    """Run all of a monorepo's dev services with one command.

    With no command, `devup` is `devup up`: start every service in devports.toml.
    """
    if click_ctx.invoked_subcommand is None:
        code: int = click_ctx.invoke(up_command)
        return code
    return None


@cli.command("up", short_help="Start the services and stream their logs (the default).")
@click.argument("services", nargs=-1, shell_complete=complete_services)
@click.option(
    "-d", "--detach", is_flag=True, help="Run in the background; return once all are ready."
)
@click.option("--timeout", help="With -d: how long to wait for ready (default 60s).")
@click.option("--json", "as_json", is_flag=True, help="With -d: print the summary as JSON.")
@partial(_common, color=True, watch=True)
@click.pass_obj
def up_command(
    options: Options,
    services: tuple[str, ...] = (),
    detach: bool = False,
    timeout: str | None = None,
    as_json: bool = False,
) -> int:
    """Start the services (the named ones and what they depend on) and stream their logs."""
    if detach or timeout is not None or as_json:
        from orchestrator.cli import detach as detached

        if not detach:
            raise UsageError("--timeout and --json go with --detach (-d)")
        wait_s = detached.DEFAULT_TIMEOUT_S if timeout is None else detached.parse_timeout(timeout)
        return detached.up_detached(
            options.manifest(), services, not options.no_watch, wait_s, as_json, options.debug
        )
    from orchestrator.cli.plain_up import foreground  # which runs the plain forms without click

    return foreground(
        options.manifest_file,
        services,
        no_color=options.no_color,
        no_watch=options.no_watch,
        debug=options.debug,
    )


@cli.command("check", short_help="Validate devports.toml; show the plan, ports and watches.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@_common
@click.pass_obj
def check_command(options: Options, as_json: bool) -> int:
    """Validate devports.toml and print the plan (exit 0, or 2 on an error)."""
    from orchestrator.cli.plan import check_plan, format_check

    plan = check_plan(options.manifest())
    click.echo(json.dumps(plan, indent=2) if as_json else format_check(plan))
    return 0


@cli.command("ports", short_help="The port plan: service, port, URL, who holds a busy port.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--release", is_flag=True, help="Forget this project's leases (of SERVICES, or all).")
@click.option("--all", "show_all", is_flag=True, help="Every project's leases (each worktree).")
@click.option("--prune", is_flag=True, help="Drop the leases of projects whose folder is gone.")
@click.argument("services", nargs=-1, shell_complete=complete_services)
@_common
@click.pass_obj
def ports_command(
    options: Options,
    as_json: bool,
    release: bool,
    show_all: bool,
    prune: bool,
    services: tuple[str, ...],
) -> int:
    """The port plan: service, port, URL, and who holds a busy port."""
    from orchestrator.cli.plan import port_plan, release_ports, running_ports
    from orchestrator.ports.runports import format_ports

    if show_all or prune:
        return _all_ports(as_json, show_all, prune, refused=release or bool(services))
    try:
        manifest = options.manifest()
    except ManifestError:
        # A devports.toml that does not parse: the running devup still says what it uses.
        live = None if release or services else running_ports(options.manifest_path().parent)
        if live is None:
            raise
        click.echo(json.dumps(live, indent=2) if as_json else format_ports(live))
        return 0
    if release:
        click.echo(release_ports(manifest, list(services)))
        return 0
    plan = port_plan(manifest, list(services) or None)
    click.echo(json.dumps(plan, indent=2) if as_json else format_ports(plan))
    return 0


def _all_ports(as_json: bool, show_all: bool, prune: bool, refused: bool) -> int:
    """`ports --all` and `--prune`: the user-wide registry, no manifest needed."""
    from orchestrator.ports import projects

    if refused:
        raise UsageError("--all and --prune are about every project: no services, no --release")
    doc: dict[str, Any] = projects.prune() if prune else {}
    texts = [projects.format_pruned(doc)] if prune else []
    if show_all:
        listing = projects.all_projects()
        doc.update(listing)
        texts.append(projects.format_projects(listing))
    click.echo(json.dumps(doc, indent=2) if as_json else "\n".join(texts))
    return 0


@cli.command(
    "run",
    short_help="Run a one-off command with a service's environment.",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("service", shell_complete=complete_services)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@partial(_common, color=True)
@click.pass_obj
def run_command(options: Options, service: str, command: tuple[str, ...]) -> int:
    """Run a one-off command with SERVICE's environment and folder: devup run api -- CMD..."""
    from orchestrator.cli.oneoff import run_oneoff
    from orchestrator.cli.up import use_color

    argv = list(command[1:] if command[:1] == ("--",) else command)  # click keeps a late "--"
    color = use_color(options.no_color)
    return run_oneoff(options.manifest(), service, argv, color=color, say=_say_to_stderr)


EXPORT_FORMATS = ("procfile", "systemd", "supervisord", "runit")  # = export.FORMATS (tested)


@cli.command("export", short_help="Write the services out for honcho, systemd, supervisord, runit.")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(EXPORT_FORMATS))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder to write into (default: .devup/export/FORMAT in the project).",
)
@click.option("--app", help="Name of the app in unit and program names (default: the folder's).")
@click.option("--user", help="User the services run as (systemd, supervisord, runit).")
@click.option("--log-dir", help="Log folder (supervisord, runit; default /var/log/APP).")
@_common
@click.pass_obj
def export_command(
    options: Options,
    fmt: str,
    output: Path | None,
    app: str | None,
    user: str | None,
    log_dir: str | None,
) -> int:
    """Write the services out for honcho/foreman (procfile), systemd, supervisord or runit."""
    from orchestrator.cli.export import ExportOptions, describe, export

    manifest = options.manifest()
    out = output or manifest.root / ".devup" / "export" / fmt
    export_options = ExportOptions(app=app, user=user, log_dir=log_dir)
    written = export(manifest, fmt, out, export_options, say=_say_to_stderr)
    click.echo(describe(written, out))
    return 0


@cli.command("init", short_help="Write a starter devports.toml from the projects found here.")
@click.option("--force", is_flag=True, help="Replace an existing devports.toml.")
@click.option(
    "--gitignore/--no-gitignore",
    default=None,
    help="Add .devup/ to .gitignore (default: ask on a terminal, else only suggest it).",
)
@click.option("--ports", default="3000-3999", show_default=True, help="The port pool to write.")
@_common
@click.pass_obj
def init_command(options: Options, force: bool, gitignore: bool | None, ports: str) -> int:
    """Write a starter devports.toml from the projects found here and below."""
    from orchestrator.cli.init import init

    return init(options.manifest_file, force=force, gitignore=gitignore, ports=ports)


@cli.command("completion", short_help="Print the shell completion script (bash, zsh, fish).")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion_command(shell: str) -> int:
    """Print the shell completion script: eval "$(devup completion bash)" in ~/.bashrc."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(cls(cli, {}, "devup", "_DEVUP_COMPLETE").source())
    return 0


def _say_to_stderr(message: str) -> None:
    click.echo(f"devup: {message}", err=True)


@cli.command("who", short_help="Which process listens on PORT, and whether devup started it.")
@click.argument("port", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the listeners as JSON.")
@_common
@click.pass_obj
def who_command(options: Options, port: int, as_json: bool) -> int:
    """Which processes listen on PORT, and whether devup started them (exit 1: none)."""
    from orchestrator.ports.who import format_who, who

    try:
        root: Path | None = options.manifest().root
    except DevupError:
        root = None  # outside a project (or a broken manifest): still answer
    report = who(port, root)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    elif report["listeners"]:
        click.echo(format_who(report))
    else:
        click.echo(f"nothing listens on port {port}", err=True)
    return 0 if report["listeners"] else 1


@cli.command("env", short_help="The variables devup sets for a service (values masked).")
@click.argument("service", shell_complete=complete_services)
@click.option("--reveal", is_flag=True, help="Show the values from env files and env tables.")
@click.option("--json", "as_json", is_flag=True, help="Print the variables as JSON.")
@_common
@click.pass_obj
def env_command(options: Options, service: str, reveal: bool, as_json: bool) -> int:
    """The variables devup sets for SERVICE; env-file and env values masked unless --reveal."""
    from orchestrator.cli.envview import env_listing, format_env

    listing = env_listing(options.manifest(), service, reveal=reveal)
    click.echo(json.dumps(listing, indent=2) if as_json else format_env(listing))
    return 0


def _one_value_command(what: str, help_text: str) -> None:
    short = f"Just the {what.upper() if what == 'url' else what} of a service, for scripts."

    @cli.command(what, help=help_text, short_help=short)
    @click.argument("service", shell_complete=complete_services)
    @_common
    @click.pass_obj
    def command(options: Options, service: str) -> int:
        from orchestrator.cli.one_value import one_value

        click.echo(one_value(what, options.manifest_path(), options.manifest)(service))
        return 0


_one_value_command(
    "url", 'The URL of SERVICE alone, where it answers while devup runs: curl "$(devup url api)/"'
)
_one_value_command("port", "The port of SERVICE alone, where it answers while devup runs.")


def _verb_command(verb: client.Verb) -> None:
    """`devup VERB` for a verb of the control channel, from its row in client.VERBS: the row the
    fast path (entry.py) checks a command line against, so both take the same forms."""
    flags = [click.Option([flag], is_flag=True, help=text) for flag, text in verb.flags.items()]
    params: list[click.Parameter] = [*flags]
    if verb.services != "none":
        required = verb.services == "required"
        params.append(
            click.Argument(
                ["services"], nargs=-1, required=required, shell_complete=complete_services
            )
        )

    @cli.command(verb.name, help=verb.help_text, short_help=verb.short_help, params=params)
    @_common
    @click.pass_obj
    def verb_command(options: Options, /, services: tuple[str, ...] = (), **given: bool) -> int:
        chosen = {flag.opts[0] for flag in flags if given[str(flag.name)]}
        path = options.manifest_path()
        code, text = client.command(verb.name, path, list(services), chosen)
        if text:
            click.echo(text)
        return code


for _verb in client.VERBS.values():
    _verb_command(_verb)


@cli.command("mcp", short_help="Serve devup's commands to coding agents (MCP, on stdio).")
@_common
@click.pass_obj
def mcp_command(options: Options) -> int:
    """A Model Context Protocol server on stdin/stdout, for coding agents (docs/agents.md)."""
    try:
        from orchestrator.cli.mcp_server import serve
    except ImportError as exc:  # the SDK is an optional extra (or an old 1.x)
        if not (exc.name or "").startswith(("mcp", "pydantic")):
            raise
        raise DevupError("devup mcp needs the MCP SDK", hint="pip install 'devup[mcp]'") from None
    manifest = options.manifest_file
    return serve(Path.cwd(), manifest.absolute() if manifest is not None else None)


@cli.command("logs", short_help="The combined logs of the current or last run, in time order.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option("-n", "--lines", "count", type=click.IntRange(min=0), help="Only the last N lines.")
@click.option("--since", help="Only lines of the last DURATION (30s, 10m, 2h).")
@click.option(
    "--color", "force_color", is_flag=True, help="Keep the services' colours even when piped."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line (docs/json.md).")
@click.option("--grep", metavar="REGEX", help="Only lines whose text matches REGEX (Python re).")
@click.argument("services", nargs=-1, shell_complete=complete_services)
@partial(_common, short_file=False, color=True)  # -f is --follow here, as in `tail -f`
@click.pass_obj
def logs_command(
    options: Options,
    follow: bool,
    count: int | None,
    since: str | None,
    force_color: bool,
    as_json: bool,
    grep: str | None,
    services: tuple[str, ...],
) -> int:
    """The combined logs of the current or last run, in time order."""
    from orchestrator.base.paths import project_state_dir
    from orchestrator.config.manifest import service_names
    from orchestrator.output import logselect
    from orchestrator.output.logs import DEVUP_LOG, parse_duration, show

    keep = logselect.grep_filter(logselect.compile_grep(grep)) if grep is not None else None
    if follow:
        _refuse_a_path_after_follow(services, given=options.manifest_file is not None)
    root = options.manifest_path().parent
    since_s = parse_duration(since) if since is not None else None
    own = [n for n in services if n != DEVUP_LOG]
    try:
        names = service_names(options.manifest(), own)
    except ManifestError:  # a broken devports.toml: the logs are still there to read
        names = _logged_names(project_state_dir(root) / "logs", own)
    names += [DEVUP_LOG] if DEVUP_LOG in services else []
    from orchestrator.base.ansi import strip_ansi

    # As up.use_color decides (not imported: it loads the whole run machinery).
    colour_on = not options.no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()
    keep_escapes = (force_color or colour_on) and not as_json  # JSON text never has them
    out = sys.stdout.buffer

    def write(data: bytes) -> None:
        # The log files hold the services' bytes as written; colour off drops their escapes.
        out.write(data if keep_escapes else strip_ansi(data))
        out.flush()

    try:
        show(
            project_state_dir(root) / "logs",
            names,
            write,
            count=count,
            since_s=since_s,
            follow=follow,
            keep=keep,
            render=logselect.to_json if as_json else None,
        )
    except BrokenPipeError:
        # The reader (`| head`) is gone: not an error; keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _logged_names(folder: Path, names: list[str]) -> list[str]:
    """The services named that have a log file (a Procfile group names its lines' logs)."""
    logged = sorted(p.name[: -len(".log")] for p in folder.glob("*.log"))
    found, unknown = client.expand_running(logged, names)
    if unknown:
        raise UsageError(f'no logs of "{unknown[0]}"', hint=f"logs: {', '.join(logged)}")
    return found


def _refuse_a_path_after_follow(services: tuple[str, ...], given: bool) -> None:
    """`devup logs -f path/devports.toml`: -f there is --follow (as in `tail -f`), so the path
    would be read as a service name; say which -f is which rather than "no such service"."""
    for name in services:
        if "/" in name or name.endswith(".toml") or Path(name).is_file():
            where = (
                "the manifest is already named by the -f before `logs`"
                if given
                else f"to name the manifest, put -f before the command: devup -f {name} logs -f"
            )
            raise UsageError(
                f'"{name}" looks like a path, not a service: after `logs`, -f is --follow',
                hint=where,
            )


def print_error(error: DevupError) -> None:
    click.echo(error.report(), err=True)


def main(argv: list[str] | None = None) -> None:
    try:
        code = cli.main(args=argv, prog_name="devup", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.UsageError as exc:
        click.echo(f"devup: error: {exc.format_message()}", err=True)
        click.echo("hint: run `devup --help` for usage", err=True)
        code = 2
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except click.Abort:
        code = 130
    except DevupError as exc:
        print_error(exc)
        code = exc.exit_code
    except KeyboardInterrupt:
        code = 130
    sys.exit(code if isinstance(code, int) else 0)
