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
from typing import Any, TypeVar

import click

from orchestrator import __version__
from orchestrator.errors import DevupError
from orchestrator.manifest import Manifest, find_manifest, load_manifest

F = TypeVar("F", bound=Callable[..., Any])


def _common(func: F, short_file: bool = True) -> F:
    """-f/--file, --no-color, --no-watch on the group and on every command."""
    func = click.option(
        *(["-f"] if short_file else []),
        "--file",
        "manifest_file",
        type=click.Path(path_type=Path),
        help="Path to devports.toml (default: search upwards).",
    )(func)
    func = click.option(
        "--no-color", is_flag=True, default=None, help="No colours (NO_COLOR is respected too)."
    )(func)
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
        path = self.manifest_file or find_manifest(Path.cwd())
        return load_manifest(path)


def _ctx(manifest_file: Path | None, no_color: bool | None, no_watch: bool | None) -> Context:
    ctx = click.get_current_context().find_object(Context)
    assert ctx is not None
    ctx.update(manifest_file, no_color, no_watch)
    return ctx


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@_common
@click.version_option(__version__, "--version", prog_name="devup")
@click.pass_context
def cli(
    click_ctx: click.Context,
    manifest_file: Path | None,
    no_color: bool | None,
    no_watch: bool | None,
) -> int | None:
    """Run all of a monorepo's dev services with one command.

    With no command, `devup` is `devup up`: start every service in devports.toml.
    """
    click_ctx.ensure_object(Context).update(manifest_file, no_color, no_watch)
    if click_ctx.invoked_subcommand is None:
        code: int = click_ctx.invoke(up_command)
        return code
    return None


@cli.command("up")
@click.argument("services", nargs=-1)
@_common
def up_command(
    services: tuple[str, ...] = (),
    manifest_file: Path | None = None,
    no_color: bool | None = None,
    no_watch: bool | None = None,
) -> int:
    """Start the services (the named ones and what they depend on) and stream their logs."""
    from orchestrator.up import UpOptions, up, use_color

    ctx = _ctx(manifest_file, no_color, no_watch)
    options = UpOptions(services, color=use_color(ctx.no_color), watching=not ctx.no_watch)
    return up(ctx.manifest(), options)


@cli.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@_common
def check_command(
    as_json: bool,
    manifest_file: Path | None,
    no_color: bool | None,
    no_watch: bool | None,
) -> int:
    """Validate devports.toml and print the plan (exit 0, or 2 on an error)."""
    from orchestrator.plan import check_plan, format_check

    manifest = _ctx(manifest_file, no_color, no_watch).manifest()
    plan = check_plan(manifest)
    click.echo(json.dumps(plan, indent=2) if as_json else format_check(plan))
    return 0


@cli.command("ports")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--release", is_flag=True, help="Forget this project's leases (of SERVICES, or all).")
@click.argument("services", nargs=-1)
@_common
def ports_command(
    as_json: bool,
    release: bool,
    services: tuple[str, ...],
    manifest_file: Path | None,
    no_color: bool | None,
    no_watch: bool | None,
) -> int:
    """The port plan: service, port, URL, and who holds a busy port."""
    from orchestrator.plan import format_ports, port_plan, release_ports

    manifest = _ctx(manifest_file, no_color, no_watch).manifest()
    if release:
        click.echo(release_ports(manifest, list(services)))
        return 0
    plan = port_plan(manifest, list(services) or None)
    click.echo(json.dumps(plan, indent=2) if as_json else format_ports(plan))
    return 0


@cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@_common
def status_command(
    as_json: bool,
    manifest_file: Path | None,
    no_color: bool | None,
    no_watch: bool | None,
) -> int:
    """Ask the running devup for each service's state, pid, port, restarts and uptime."""
    from orchestrator.remote import status

    click.echo(status(_ctx(manifest_file, no_color, no_watch).manifest(), as_json))
    return 0


def _control_command(verb: str, help_text: str, names_required: bool) -> None:
    @cli.command(verb, help=help_text)
    @click.option("--no-wait", is_flag=True, help="Return at once, not when the services settle.")
    @click.argument("services", nargs=-1, required=names_required)
    @_common
    def command(
        no_wait: bool,
        services: tuple[str, ...],
        manifest_file: Path | None,
        no_color: bool | None,
        no_watch: bool | None,
    ) -> int:
        from orchestrator.remote import command as run

        manifest = _ctx(manifest_file, no_color, no_watch).manifest()
        code, text = run(manifest, verb, list(services), wait=not no_wait)
        if text:
            click.echo(text)
        return code


_control_command(
    "restart", "Restart services of the running devup; returns once they are ready.", True
)
_control_command("start", "Start stopped services (and what they need); returns once ready.", True)
_control_command("stop", "Stop services of the running devup; with no names, stop the run.", False)


@cli.command("logs")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option("-n", "--lines", "count", type=click.IntRange(min=0), help="Only the last N lines.")
@click.option("--since", help="Only lines of the last DURATION (30s, 10m, 2h).")
@click.argument("services", nargs=-1)
@partial(_common, short_file=False)  # -f is --follow here, as in `tail -f`
def logs_command(
    follow: bool,
    count: int | None,
    since: str | None,
    services: tuple[str, ...],
    manifest_file: Path | None,
    no_color: bool | None,
    no_watch: bool | None,
) -> int:
    """The combined logs of the current or last run, in time order."""
    from orchestrator.logs import DEVUP_LOG, parse_duration, show
    from orchestrator.manifest import service_names
    from orchestrator.paths import project_state_dir

    manifest = _ctx(manifest_file, no_color, no_watch).manifest()
    since_s = parse_duration(since) if since is not None else None
    own = [n for n in services if n != DEVUP_LOG]
    names = service_names(manifest, own) + ([DEVUP_LOG] if DEVUP_LOG in services else [])
    out = sys.stdout.buffer

    def write(data: bytes) -> None:
        out.write(data)
        out.flush()

    try:
        show(
            project_state_dir(manifest.root) / "logs",
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


def print_error(error: DevupError) -> None:
    click.echo(f"devup: error: {error.message}", err=True)
    if error.hint:
        click.echo(f"hint: {error.hint}", err=True)


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
