"""The `devup` command line: parses arguments, calls one module per command, prints errors.

The only place that calls sys.exit or turns an expected failure into `devup: error: ...`.
"""

from __future__ import annotations

import difflib
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

if TYPE_CHECKING:
    from orchestrator.config.manifest import Manifest

F = TypeVar("F", bound=Callable[..., Any])


def _common(func: F, short_file: bool = True, color: bool = False, watch: bool = False) -> F:
    """-f/--file on every command that reads the manifest; --no-color on those whose output has
    colour, --no-watch on `up` only (all three are also accepted before the command)."""
    func = click.option(
        *(["-f"] if short_file else []),
        "--file",
        "manifest_file",
        type=click.Path(path_type=Path),
        help="Path to devports.toml (default: search upwards).",
    )(func)
    if color:
        func = click.option(
            "--no-color", is_flag=True, default=None, help="No colours (NO_COLOR is respected too)."
        )(func)
    if watch:
        func = click.option(
            "--no-watch",
            is_flag=True,
            default=None,
            help="Do not restart services when their files change.",
        )(func)
    return func


class Context:
    def __init__(self) -> None:
        self.manifest_file: Path | None = None
        self.no_color = False
        self.no_watch = False

    def update(
        self, manifest_file: Path | None, no_color: bool | None, no_watch: bool | None
    ) -> None:
        if manifest_file is not None:
            self.manifest_file = manifest_file
        if no_color:
            self.no_color = True
        if no_watch:
            self.no_watch = True

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


class DevupGroup(click.Group):
    """Unknown commands get a did-you-mean, and a service name gets pointed at `devup up`."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if args and self.get_command(ctx, name) is None and not name.startswith("-"):
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

    path: Path | None = None
    for c in (click_ctx, *_parents(click_ctx)):
        path = path or c.params.get("manifest_file")
    try:
        from orchestrator.base.locate import find_manifest
        from orchestrator.config.manifest import load_manifest

        manifest = load_manifest(path or find_manifest(Path.cwd()))
    except DevupError:
        return []
    names = list(manifest.services)
    names += sorted({n.split(".")[0] for n in names if "." in n})
    return [
        CompletionItem(n, help=_service_help(manifest, n))
        for n in names
        if n.startswith(incomplete)
    ]


def _parents(click_ctx: click.Context) -> list[click.Context]:
    parents = []
    while click_ctx.parent is not None:
        click_ctx = click_ctx.parent
        parents.append(click_ctx)
    return parents


def _service_help(manifest: Manifest, name: str) -> str | None:
    spec = manifest.services.get(name)
    return spec.cmd if spec is not None else "Procfile services"


def _ctx(
    manifest_file: Path | None, no_color: bool | None = None, no_watch: bool | None = None
) -> Context:
    ctx = click.get_current_context().find_object(Context)
    assert ctx is not None
    ctx.update(manifest_file, no_color, no_watch)
    return ctx


@click.group(
    cls=DevupGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@partial(_common, color=True, watch=True)
@click.option(
    "--debug", is_flag=True, help="Trace each event and state change on stderr (DEVUP_DEBUG=1)."
)
@click.version_option(__version__, "--version", prog_name="devup")
@click.pass_context
def cli(
    click_ctx: click.Context,
    manifest_file: Path | None,
    no_color: bool | None,
    no_watch: bool | None,
    debug: bool = False,
) -> int | None:
    """Run all of a monorepo's dev services with one command.

    With no command, `devup` is `devup up`: start every service in devports.toml.
    """
    if debug:
        os.environ["DEVUP_DEBUG"] = "1"  # read where the run is put together (run/trace.py)
    click_ctx.ensure_object(Context).update(manifest_file, no_color, no_watch)
    if click_ctx.invoked_subcommand is None:
        code: int = click_ctx.invoke(up_command)
        return code
    return None


@cli.command("up", short_help="Start the services and stream their logs (the default).")
@click.argument("services", nargs=-1, shell_complete=complete_services)
@partial(_common, color=True, watch=True)
def up_command(
    services: tuple[str, ...] = (),
    manifest_file: Path | None = None,
    no_color: bool | None = None,
    no_watch: bool | None = None,
) -> int:
    """Start the services (the named ones and what they depend on) and stream their logs."""
    from orchestrator.cli.up import UpOptions, up, use_color

    ctx = _ctx(manifest_file, no_color, no_watch)
    options = UpOptions(services, color=use_color(ctx.no_color), watching=not ctx.no_watch)
    return up(ctx.manifest(), options)


@cli.command("check", short_help="Validate devports.toml; show the plan, ports and watches.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@_common
def check_command(
    as_json: bool,
    manifest_file: Path | None,
) -> int:
    """Validate devports.toml and print the plan (exit 0, or 2 on an error)."""
    from orchestrator.cli.plan import check_plan, format_check

    manifest = _ctx(manifest_file).manifest()
    plan = check_plan(manifest)
    click.echo(json.dumps(plan, indent=2) if as_json else format_check(plan))
    return 0


@cli.command("ports", short_help="The port plan: service, port, URL, who holds a busy port.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--release", is_flag=True, help="Forget this project's leases (of SERVICES, or all).")
@click.argument("services", nargs=-1, shell_complete=complete_services)
@_common
def ports_command(
    as_json: bool,
    release: bool,
    services: tuple[str, ...],
    manifest_file: Path | None,
) -> int:
    """The port plan: service, port, URL, and who holds a busy port."""
    from orchestrator.cli.plan import port_plan, release_ports, running_ports
    from orchestrator.ports.runports import format_ports

    ctx = _ctx(manifest_file)
    try:
        manifest = ctx.manifest()
    except ManifestError:
        # A devports.toml that does not parse: the running devup still says what it uses.
        live = None if release or services else running_ports(ctx.manifest_path().parent)
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


@cli.command(
    "run",
    short_help="Run a one-off command with a service's environment.",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("service", shell_complete=complete_services)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@partial(_common, color=True)
def run_command(
    service: str,
    command: tuple[str, ...],
    manifest_file: Path | None,
    no_color: bool | None,
) -> int:
    """Run a one-off command with SERVICE's environment and folder: devup run api -- CMD..."""
    from orchestrator.cli.oneoff import run_oneoff
    from orchestrator.cli.up import use_color

    ctx = _ctx(manifest_file, no_color)
    argv = list(command[1:] if command[:1] == ("--",) else command)  # click keeps a late "--"
    color = use_color(ctx.no_color)
    return run_oneoff(ctx.manifest(), service, argv, color=color, say=_say_to_stderr)


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
def export_command(
    fmt: str,
    output: Path | None,
    app: str | None,
    user: str | None,
    log_dir: str | None,
    manifest_file: Path | None,
) -> int:
    """Write the services out for honcho/foreman (procfile), systemd, supervisord or runit."""
    from orchestrator.cli.export import ExportOptions, describe, export

    manifest = _ctx(manifest_file).manifest()
    out = output or manifest.root / ".devup" / "export" / fmt
    options = ExportOptions(app=app, user=user, log_dir=log_dir)
    written = export(manifest, fmt, out, options, say=_say_to_stderr)
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
def init_command(
    force: bool,
    gitignore: bool | None,
    ports: str,
    manifest_file: Path | None,
) -> int:
    """Write a starter devports.toml from the projects found here and below."""
    from orchestrator.base.errors import UsageError
    from orchestrator.base.locate import MANIFEST_NAME
    from orchestrator.cli import init

    ctx = _ctx(manifest_file)
    path = (ctx.manifest_file or Path(MANIFEST_NAME)).absolute()
    root = path.parent
    init.check_port_pool(ports)
    if not force:
        init.refuse_nested(root)
    found = init.scan(root)
    if not found:
        raise UsageError(
            f"found no project in {root}: no Procfile, package.json dev script, Django, Flask, "
            "FastAPI or Rails app",
            hint='write devports.toml by hand: [services.web] with cmd = "..."',
        )
    init.write_manifest(path, init.render(found, root, ports), force=force)
    click.echo(f"wrote {path} with {len(found)} services:")
    for name, project in zip(init.service_names(found, root), found, strict=True):
        click.echo(f"  {name:<16} {project.kind:<17} {project.folder.as_posix()}")
    click.echo("next: check each cmd, then `devup check` and `devup`")
    if not init.gitignore_has_devup(root):
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
        if gitignore is None and interactive:
            question = "add .devup/ (devup's run state and logs) to .gitignore?"
            gitignore = click.confirm(question, default=True)
        if gitignore:
            init.add_to_gitignore(root)
            click.echo(f"added {init.GITIGNORE_ENTRY} to {root / '.gitignore'}")
        elif gitignore is None:
            click.echo(
                "hint: add .devup/ (devup's run state and logs) to .gitignore, "
                "or run `devup init --gitignore`"
            )
    return 0


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
def who_command(
    port: int,
    as_json: bool,
    manifest_file: Path | None,
) -> int:
    """Which processes listen on PORT, and whether devup started them (exit 1: none)."""
    from orchestrator.ports.who import format_who, who

    ctx = _ctx(manifest_file)
    try:
        root: Path | None = ctx.manifest().root
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
def env_command(
    service: str,
    reveal: bool,
    as_json: bool,
    manifest_file: Path | None,
) -> int:
    """The variables devup sets for SERVICE; env-file and env values masked unless --reveal."""
    from orchestrator.cli.envview import env_listing, format_env

    manifest = _ctx(manifest_file).manifest()
    listing = env_listing(manifest, service, reveal=reveal)
    click.echo(json.dumps(listing, indent=2) if as_json else format_env(listing))
    return 0


@cli.command("status", short_help="Each service's state, pid, port, restarts and uptime.")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@_common
def status_command(
    as_json: bool,
    manifest_file: Path | None,
) -> int:
    """Ask the running devup for each service's state, pid, port, restarts and uptime."""
    from orchestrator.control.remote import status

    click.echo(status(_ctx(manifest_file).manifest_path().parent, as_json))
    return 0


def _control_command(verb: str, help_text: str, short: str, names_required: bool) -> None:
    @cli.command(verb, help=help_text, short_help=short)
    @click.option("--no-wait", is_flag=True, help="Return at once, not when the services settle.")
    @click.argument("services", nargs=-1, required=names_required, shell_complete=complete_services)
    @_common
    def command(
        no_wait: bool,
        services: tuple[str, ...],
        manifest_file: Path | None,
    ) -> int:
        from orchestrator.control.remote import control

        path = _ctx(manifest_file).manifest_path()
        code, text = control(path.parent, verb, list(services), not no_wait, manifest_path=path)
        if text:
            click.echo(text)
        return code


_control_command(
    "restart",
    "Restart services of the running devup; returns once they are ready.",
    "Restart services of the running devup (waits until ready).",
    True,
)
_control_command(
    "start",
    "Start stopped services (and what they need); returns once ready.",
    "Start stopped services of the running devup (waits).",
    True,
)
_control_command(
    "stop",
    "Stop services of the running devup; with no names, stop the run.",
    "Stop services of the running devup, or the whole run.",
    False,
)


@cli.command("reload", short_help="Apply devports.toml to the running devup.")
@_common
def reload_command(manifest_file: Path | None) -> int:
    """Apply devports.toml and its env files to the running devup now (it also follows them)."""
    from orchestrator.control.remote import control

    path = _ctx(manifest_file).manifest_path()
    code, text = control(path.parent, "reload", [], True)
    if text:
        click.echo(text)
    return code


@cli.command("logs", short_help="The combined logs of the current or last run, in time order.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option("-n", "--lines", "count", type=click.IntRange(min=0), help="Only the last N lines.")
@click.option("--since", help="Only lines of the last DURATION (30s, 10m, 2h).")
@click.option(
    "--color", "force_color", is_flag=True, help="Keep the services' colours even when piped."
)
@click.argument("services", nargs=-1, shell_complete=complete_services)
@partial(_common, short_file=False, color=True)  # -f is --follow here, as in `tail -f`
def logs_command(
    follow: bool,
    count: int | None,
    since: str | None,
    force_color: bool,
    services: tuple[str, ...],
    manifest_file: Path | None,
    no_color: bool | None,
) -> int:
    """The combined logs of the current or last run, in time order."""
    from orchestrator.base.paths import project_state_dir
    from orchestrator.config.manifest import service_names
    from orchestrator.output.logs import DEVUP_LOG, parse_duration, show

    ctx = _ctx(manifest_file, no_color)
    if follow:
        _refuse_a_path_after_follow(services, given=ctx.manifest_file is not None)
    root = ctx.manifest_path().parent
    since_s = parse_duration(since) if since is not None else None
    own = [n for n in services if n != DEVUP_LOG]
    try:
        names = service_names(ctx.manifest(), own)
    except ManifestError:  # a broken devports.toml: the logs are still there to read
        names = _logged_names(project_state_dir(root) / "logs", own)
    names += [DEVUP_LOG] if DEVUP_LOG in services else []
    from orchestrator.base.ansi import strip_ansi

    # As up.use_color decides (not imported: it loads the whole run machinery).
    colour_on = not ctx.no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()
    keep_escapes = force_color or colour_on
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
        )
    except BrokenPipeError:
        # The reader (`| head`) is gone: not an error; keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _logged_names(folder: Path, names: list[str]) -> list[str]:
    """The services named that have a log file (a Procfile group names its lines' logs)."""
    from orchestrator.control.remote import expand_running

    logged = sorted(p.name[: -len(".log")] for p in folder.glob("*.log"))
    found, unknown = expand_running(logged, names)
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
