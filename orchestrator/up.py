"""`devup up`: puts a run together (lock, ports, environments, output, supervisor), tears it down.

The composition root: everything outside the supervisor's loop that a run needs is built here.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

from orchestrator import audit, reaper, recovery, runstate
from orchestrator.control import ControlServer
from orchestrator.environ import build_env
from orchestrator.envview import env_file_warnings
from orchestrator.manifest import Manifest, start_order
from orchestrator.paths import ensure_private_dir, project_state_dir
from orchestrator.printer import DEVUP, Printer
from orchestrator.supervisor import Supervisor
from orchestrator.writer import TerminalWriter

DROP_REPORT_S = 1.0


@dataclass(frozen=True)
class UpOptions:
    names: tuple[str, ...] = ()
    color: bool = False
    watching: bool = True


def use_color(no_color: bool, stream: IO[str] | None = None) -> bool:
    stream = stream or sys.stdout
    return not no_color and "NO_COLOR" not in os.environ and stream is not None and stream.isatty()


def open_log(folder: Path, name: str) -> IO[bytes]:
    """A fresh 0600 log file for this run (the previous run's becomes NAME.log.1)."""
    path = folder / f"{name}.log"
    if path.exists():
        os.replace(path, folder / f"{name}.log.1")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    return os.fdopen(fd, "wb", buffering=256 * 1024)


def up(manifest: Manifest, options: UpOptions) -> int:
    from orchestrator.ports import allocate_ports

    order = start_order(manifest, list(options.names) or None)
    lock = runstate.RunLock(manifest.root)
    lock.acquire()
    writer = TerminalWriter(sys.stdout.fileno())
    printer = Printer(
        order, writer.write, color=options.color, write_urgent=partial(writer.write, urgent=True)
    )
    try:
        logs = ensure_private_dir(project_state_dir(manifest.root) / "logs")
        for name in [DEVUP, *order]:
            printer.add_log_file(name, open_log(logs, name), partial(open_log, logs, name))
        # What a killed devup left behind holds the ports this run is about to hand out.
        recovery.stop_leftovers(manifest.root, manifest, printer.say)
        reaper.become_subreaper()
        # Every service sees every other service's URL, started or not, so all get ports.
        plan = allocate_ports(manifest, list(manifest.services))
        for message in [*plan.messages, *env_file_warnings(manifest, order)]:
            printer.say(message)
        envs: dict[str, dict[str, str]] = {}
        for name in order:
            env, warnings = build_env(manifest, plan.ports, name, color=options.color)
            envs[name] = env
            for warning in warnings:
                printer.say(warning)
        record = _record_run(manifest.root)
        supervisor = Supervisor(
            manifest,
            order,
            dict(plan.ports),
            envs,
            printer,
            watching=options.watching,
            on_change=record,
        )
        audit.install(supervisor, on_audit=lambda: record(supervisor))
        _report_drops(supervisor, writer)
        watcher = None
        if options.watching:
            from orchestrator.watchlater import WatcherLater

            watcher = WatcherLater(manifest, order, supervisor.events.put)
        control = ControlServer(manifest.root, supervisor.events.put)
        control.start()
        try:
            code = supervisor.run(watcher)
        except BaseException:
            # Never orphan the services: kill every group, and keep .devup/run.json so the next
            # run can verify they are gone.
            supervisor.kill_all()
            raise
        finally:
            control.stop()
        reaper.stop_adopted(manifest.settings.stop_timeout_s, printer.say)
        runstate.clear_state(manifest.root)
        return code
    finally:
        printer.close_logs()
        writer.close()
        _report_final_drops(writer)
        lock.release()


def _record_run(root: Path) -> Any:
    def record(sup: Supervisor) -> None:
        services = {
            name: {
                "state": svc.state.value,
                "port": svc.port,
                "pgid": svc.group.pgid if svc.group else None,
                "started_at": svc.group.leader_started_at if svc.group else None,
                **audit.status_fields(sup.findings.get(name), svc.generation),
            }
            for name, svc in sup.services.items()
        }
        runstate.write_state(root, services)

    return record


def _report_drops(supervisor: Supervisor, writer: TerminalWriter) -> None:
    """Say how much output a slow stdout reader made devup drop, at most once a second."""
    dropped = writer.take_dropped()
    if dropped:
        supervisor.printer.say(
            f"dropped {dropped} bytes of output: stdout was not being read fast enough",
            urgent=True,
        )
    if supervisor.exit_code is None:
        supervisor.timers.call_later(DROP_REPORT_S, lambda: _report_drops(supervisor, writer))


def _report_final_drops(writer: TerminalWriter) -> None:
    """At exit, what stdout never took (the last second's drops, a buffer a stuck reader did not
    drain) is said on stderr, without blocking if stderr is that same stuck pipe."""
    lost = writer.take_dropped() + writer.unwritten()
    if not lost:
        return
    line = f"devup: dropped {lost} bytes of output: stdout was not being read fast enough\n"
    with contextlib.suppress(OSError):  # stderr full or closed too: nothing more to do
        fd = sys.stderr.fileno()
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        try:
            os.write(fd, line.encode())
        finally:
            fcntl.fcntl(fd, fcntl.F_SETFL, flags)
