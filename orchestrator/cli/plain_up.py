"""The plain start, `devup` or `devup up [SERVICE...]` with at most --no-watch, --no-color and
--debug (before or after `up`, each once), recognised without click: importing click and building
the CLI's commands is ~40 ms that every start paid before its first service was spawned. Any
other command line (-f, -d, --help, `--`, a flag twice, ...) is the click CLI's (cli/main.py);
both end in foreground() here, so the one grammar stays click's and this takes a subset of it.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing's: this module is on the path of every start
if TYPE_CHECKING:
    from pathlib import Path

FLAGS = ("--no-watch", "--no-color", "--debug")  # up's flags that are a plain start's
COMPLETE_ENV = "_DEVUP_COMPLETE"  # click's shell completion: its job alone


def parse(args: list[str]) -> tuple[tuple[str, ...], set[str]] | None:
    """The service names and the flags of a plain start; None for any other command line."""
    names: list[str] = []
    flags: set[str] = set()
    command = False
    for arg in args:
        if arg in FLAGS and arg not in flags:
            flags.add(arg)
        elif arg.startswith("-"):
            return None
        elif command:
            names.append(arg)
        elif arg == "up":
            command = True
        else:
            return None  # another command, or a service name without `up`: click says which
    return tuple(names), flags


def run(args: list[str]) -> int | None:
    """The exit code of a plain start once it is over; None: the click CLI's command line."""
    parsed = None if COMPLETE_ENV in os.environ else parse(args)
    if parsed is None:
        return None
    from orchestrator.base.errors import DevupError

    names, flags = parsed
    try:
        return foreground(
            None,
            names,
            no_color="--no-color" in flags,
            no_watch="--no-watch" in flags,
            debug="--debug" in flags,
        )
    except DevupError as exc:  # as cli/main.py's main() reports it
        print(exc.report(), file=sys.stderr)
        return exc.exit_code
    except (EOFError, KeyboardInterrupt):  # as click's main() ends them: a newline, then 130
        print(file=sys.stderr)
        return 130


def foreground(
    manifest_file: Path | None,
    names: tuple[str, ...],
    *,
    no_color: bool,
    no_watch: bool,
    debug: bool,
) -> int:
    """`devup up [SERVICE...]` in the foreground, as the click CLI (cli/main.py) and the plain
    start (run) both run it."""
    from pathlib import Path

    from orchestrator.base.locate import find_manifest
    from orchestrator.cli.detach import refuse_if_detached
    from orchestrator.cli.up import UpOptions, up, use_color
    from orchestrator.config.manifest import load_manifest

    manifest = load_manifest(manifest_file or find_manifest(Path.cwd()))
    refuse_if_detached(manifest.root)
    options = UpOptions(names, color=use_color(no_color), watching=not no_watch, debug=debug)
    return up(manifest, options)
