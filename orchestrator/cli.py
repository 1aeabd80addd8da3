"""The `devup` command line: parses arguments, calls one module per command, prints errors.

The only place that calls sys.exit or turns an expected failure into `devup: error: ...`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from orchestrator import __version__
from orchestrator.errors import DevupError
from orchestrator.manifest import Manifest, find_manifest, load_manifest

F = TypeVar("F", bound=Callable[..., Any])


def _common(func: F) -> F:
    """-f/--file, --no-color, --no-watch on the group and on every command."""
    func = click.option(
        "-f",
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


@cli.command("who")
@click.argument("port", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the listeners as JSON.")
@_common
def who_command(
    port: int,
    as_json: bool,
    manifest_file: Path | None,
    no_color: bool | None,
    no_watch: bool | None,
) -> int:
    """Which processes listen on PORT, and whether devup started them (exit 1: none)."""
    from orchestrator.who import format_who, who

    ctx = _ctx(manifest_file, no_color, no_watch)
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


@cli.command("env")
@click.argument("service")
@click.option("--reveal", is_flag=True, help="Show the values from env files and env tables.")
@click.option("--json", "as_json", is_flag=True, help="Print the variables as JSON.")
@_common
def env_command(
    service: str,
    reveal: bool,
    as_json: bool,
    manifest_file: Path | None,
    no_color: bool | None,
    no_watch: bool | None,
) -> int:
    """The variables devup sets for SERVICE; env-file and env values masked unless --reveal."""
    from orchestrator.envview import env_listing, format_env

    manifest = _ctx(manifest_file, no_color, no_watch).manifest()
    listing = env_listing(manifest, service, reveal=reveal)
    click.echo(json.dumps(listing, indent=2) if as_json else format_env(listing))
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
