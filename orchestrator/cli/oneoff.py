"""`devup run SERVICE -- CMD...`: a one-off command (a migration, a REPL, a test run) in a
service's folder with exactly the environment `devup up` gives that service; exits with its code.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
from collections.abc import Callable
from types import FrameType

from orchestrator.base.errors import DevupError, UsageError
from orchestrator.base.quoting import quoted
from orchestrator.config.environ import build_env
from orchestrator.config.manifest import Manifest
from orchestrator.system import runstate

# Sent to devup by another process (kill, a process manager, a closed terminal): passed on.
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
# Sent by the terminal to its whole foreground process group, which includes the command.
TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGQUIT)


class CommandNotRunnable(DevupError):
    exit_code = 127  # what a shell answers for a command it cannot run


def service_ports(manifest: Manifest) -> tuple[dict[str, int | None], list[str]]:
    """Every service's port as `devup up` gives it (leases taken, so they are the same ports),
    and messages about moves. While this project's devup runs, the ports it uses (its own services
    hold them, so they are not moved)."""
    from orchestrator.ports.allocation import allocate_ports

    running = runstate.running_pid(manifest.root) is not None
    plan = allocate_ports(manifest, list(manifest.services), mode="running" if running else "plan")
    return dict(plan.ports), list(plan.messages)


def check_service(manifest: Manifest, name: str) -> None:
    """UsageError (exit 2) with a did-you-mean hint unless `name` is one service of the manifest."""
    if name in manifest.services:
        return
    lines = [n for n in manifest.services if n.startswith(name + ".")]
    if lines:
        raise UsageError(
            f"{quoted(name)} is a Procfile with {len(lines)} services; name one",
            hint=f"services: {', '.join(lines)}",
        )
    import difflib  # here: only a mistake needs it

    close = difflib.get_close_matches(name, list(manifest.services), n=1)
    hint = f'did you mean "{close[0]}"?' if close else f"services: {', '.join(manifest.services)}"
    raise UsageError(f"unknown service {quoted(name)}", hint=hint)


def run_oneoff(
    manifest: Manifest,
    name: str,
    argv: list[str],
    *,
    color: bool = False,
    say: Callable[[str], None] = print,
) -> int:
    """Run `argv` in `name`'s cwd with its environment; its exit code, or 128+N after signal N."""
    check_service(manifest, name)
    if not argv:
        raise UsageError("no command given", hint=f"devup run {name} -- CMD [ARG...]")
    ports, messages = service_ports(manifest)
    for message in messages:
        say(message)
    env, warnings = build_env(manifest, ports, name, color=color)
    for warning in warnings:
        say(warning)
    spec = manifest.services[name]
    try:
        child = subprocess.Popen(argv, cwd=spec.cwd, env=env)
    except FileNotFoundError:
        raise CommandNotRunnable(f"{argv[0]}: command not found (in {spec.cwd})") from None
    except PermissionError:
        raise CommandNotRunnable(f"{argv[0]}: permission denied") from None
    except OSError as exc:
        if exc.errno != errno.E2BIG:
            raise
        from orchestrator.system.argsize import too_long

        error = CommandNotRunnable(f"cannot run {argv[0]}: {too_long(argv, env)}")
        error.exit_code = 126  # what a shell answers for a command it found but cannot run
        raise error from None
    with _forwarding(child):
        code = child.wait()
    return 128 - code if code < 0 else code


class _forwarding:
    """Passes signals sent to devup on to the command while it runs; restores handlers after.

    The command stays in devup's process group, so it keeps the terminal (a REPL works) and gets
    Ctrl-C from the terminal itself; devup then only ignores it. A SIGINT that did not come from
    the terminal (devup not in the foreground) is passed on like the others.
    """

    def __init__(self, child: subprocess.Popen[bytes]) -> None:
        self.child = child
        self.saved: dict[signal.Signals, object] = {}

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        if self.child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child.pid, signum)

    def __enter__(self) -> None:
        terminal_sends = _in_terminal_foreground()
        for sig in (*FORWARDED_SIGNALS, *TERMINAL_SIGNALS):
            handler = signal.SIG_IGN if sig in TERMINAL_SIGNALS and terminal_sends else None
            self.saved[sig] = signal.signal(sig, handler or self._forward)

    def __exit__(self, *_exc: object) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


def _in_terminal_foreground() -> bool:
    try:
        return os.tcgetpgrp(0) == os.getpgrp()
    except OSError:  # stdin is not a terminal
        return False
