"""`devup up`: puts a run together (lock, ports, environments, output, supervisor), tears it down.

The composition root: everything outside the supervisor's loop that a run needs is built here.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import IO, Any, NamedTuple

from orchestrator.base.errors import DevupError
from orchestrator.base.paths import ensure_private_dir, project_state_dir
from orchestrator.base.safefs import open_file
from orchestrator.cli.envview import env_file_warnings
from orchestrator.config.environ import build_env
from orchestrator.config.manifest import Manifest, start_order
from orchestrator.config.manifest_diff import Plan
from orchestrator.control.server import ControlServer
from orchestrator.control.server import handle as handle_request
from orchestrator.output.logfiles import LogFile, start_fresh
from orchestrator.output.printer import DEVUP, Printer
from orchestrator.output.writer import TerminalWriter
from orchestrator.ports.reach import Reach
from orchestrator.run import audit, recovery, trace
from orchestrator.run.changes import once_per_turn
from orchestrator.run.live import Live, SwappableWatcher, own_files, without_own_files
from orchestrator.run.supervisor import Supervisor
from orchestrator.system import reaper, runmark, runstate

DROP_REPORT_S = 1.0


class UpOptions(NamedTuple):
    names: tuple[str, ...] = ()
    color: bool = False
    watching: bool = True
    debug: bool = False  # `--debug`: the trace, as DEVUP_DEBUG=1 asks for it
    # Called once the run lock is held (`up -d` writes its pid file then: a run that loses the
    # race for the lock must not touch the winner's).
    on_locked: Callable[[], None] | None = None


def _keep_out_of_git(state: Path) -> None:
    """`.devup/.gitignore` holding `*`, as pytest and ruff do for their caches: a `git add -A`
    must not commit a run's record and logs, which a second worktree would then check out."""
    with contextlib.suppress(FileExistsError):
        fd = open_file(state / ".gitignore", os.O_WRONLY | os.O_CREAT | os.O_EXCL)  # 0600
        try:
            os.write(fd, b"# made by devup: its run state and logs are no source\n*\n")
        finally:
            os.close(fd)


def use_color(no_color: bool, stream: IO[str] | None = None) -> bool:
    stream = stream or sys.stdout
    return not no_color and "NO_COLOR" not in os.environ and stream is not None and stream.isatty()


def up(manifest: Manifest, options: UpOptions) -> int:
    from orchestrator.ports.allocation import allocate_ports

    order = start_order(manifest, list(options.names) or None)
    lock = runstate.RunLock(manifest.root)
    lock.acquire()
    if options.on_locked is not None:
        options.on_locked()
    writer = TerminalWriter(sys.stdout.fileno())
    printer = Printer(order, writer.write, color=options.color, terminal=writer)
    try:
        logs = ensure_private_dir(project_state_dir(manifest.root) / "logs")
        _keep_out_of_git(project_state_dir(manifest.root))
        for name in [DEVUP, *order]:
            printer.add_log(name, _open_log(logs, name, printer))
        # What a killed devup left behind holds the ports this run is about to hand out.
        recovery.stop_leftovers(manifest.root, manifest, printer.say)
        reaper.become_subreaper()
        # Every service sees every other service's URL, started or not, so all get ports.
        plan = allocate_ports(manifest, list(manifest.services))
        for message in [*plan.messages, *env_file_warnings(manifest, order)]:
            printer.say(message)
        if options.watching:
            _say_self_reloaders(manifest, order, printer.say)
        envs: dict[str, dict[str, str]] = {}
        for name in order:
            env, warnings = build_env(manifest, plan.ports, name, color=options.color)
            envs[name] = env
            for warning in warnings:
                printer.say(warning)
        # Recorded before any spawn: a killed devup's children are then found by their marker
        # (runmark.py) even if it dies before their groups are recorded.
        run_id = runmark.new_run_id()
        record = _tolerant(_record_run(manifest.root, run_id), printer)
        try:
            runstate.write_state(manifest.root, run_id, {})
        except OSError as exc:  # a full disk: the run goes on; its children still carry the marker
            printer.say(f"cannot write the run record: {exc.strerror or exc}; retrying")
        supervisor = Supervisor(
            manifest,
            order,
            {name: plan.ports[name] for name in start_order(manifest)},
            envs,
            printer,
            watching=options.watching,
            env_for=partial(_env_with_reach, color=options.color),
            run_id=run_id,
            on_control=handle_request,
        )
        # Written at the end of each turn in which a state or an audit's findings changed.
        supervisor.subscribe(once_per_turn(partial(record, supervisor)))
        audit.install(supervisor)
        # --debug or DEVUP_DEBUG=1: events and state changes on stderr (not put in os.environ,
        # where every service and every devup they run would inherit it)
        trace.install(supervisor.subscribe, forced=options.debug)
        _report_drops(supervisor, writer)

        def new_watcher(current: Manifest, names: list[str]) -> Any:
            if not options.watching:
                return None
            from orchestrator.watch.watchlater import WatcherLater

            # Built and started on its own thread (watchlater.py), so a big tree costs the
            # services' start nothing.
            current = without_own_files(current, own_files(current, names))
            return WatcherLater(current, names, supervisor.events.put)

        watcher = SwappableWatcher(new_watcher(manifest, order))
        live = Live(
            supervisor,
            Plan(manifest, tuple(order), dict(plan.ports), envs),
            names=options.names,
            color=options.color,
            add_output=partial(_add_output, printer, logs),
            make_watcher=new_watcher,
            watcher=watcher,
            observe=options.watching,
        )
        supervisor.live = live
        live.start()
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
            live.stop()
        reaper.stop_adopted(manifest.settings.stop_timeout_s, printer.say)
        runstate.clear_state(manifest.root)
        return code
    finally:
        printer.close_logs()
        writer.close()
        _report_final_drops(writer)
        lock.release()


def _add_output(printer: Printer, logs: Path, name: str) -> None:
    """A service added while running gets its colour and log file (one removed and added back
    keeps the file it had in this run)."""
    printer.add_name(name)
    if printer.has_log(name):
        return
    try:
        printer.add_log(name, _open_log(logs, name, printer))
    except DevupError as exc:  # a full disk, a folder in the way: the run goes on without it
        printer.say(f"{exc.message}; {name}'s lines are shown but not kept")


def _say_self_reloaders(manifest: Manifest, order: list[str], say: Callable[[str], None]) -> None:
    """Once a run: which dev servers devup leaves to reload themselves."""
    from orchestrator.config.selfreload import describe

    for name in order:
        spec = manifest.services[name]
        if spec.reloads_itself is not None and spec.default_watch:
            say(f"{name}: {describe(spec.reloads_itself, spec.reloads_in or spec.cwd)}")


def _env_with_reach(
    manifest: Manifest,
    ports: dict[str, int | None],
    name: str,
    moved: dict[str, Reach],
    *,
    color: bool,
) -> dict[str, str]:
    """A service's environment telling where the `moved` services really answer (their own
    PORT stays the planned one)."""
    others = {other: where for other, where in moved.items() if other != name}
    ports = {**ports, **{other: where.port for other, where in others.items()}}
    urls = {other: where.url for other, where in others.items()}
    return build_env(manifest, ports, name, color=color, urls=urls)[0]


def _open_log(folder: Path, name: str, printer: Printer) -> LogFile:
    try:
        return LogFile(start_fresh(folder, name), on_problem=partial(_say_urgent, printer))
    except OSError as exc:
        raise DevupError(
            f"cannot create the log file {folder / (name + '.log')}: {exc.strerror or exc}",
            hint="check .devup/logs (a file or link where devup writes, a full disk)",
        ) from None


def _say_urgent(printer: Printer, text: str) -> None:
    printer.say(text, urgent=True)


def _tolerant(record: Any, printer: Printer) -> Any:
    """The run record's write on every state change must not end the run when .devup's disk is
    full or devup is out of descriptors: said once, and written again at the next change."""
    failing = False

    def tolerant(sup: Supervisor) -> None:
        nonlocal failing
        try:
            record(sup)
        except OSError as exc:
            if not failing:
                printer.say(f"cannot write the run record: {exc.strerror or exc}; retrying")
            failing = True
        else:
            if failing:
                printer.say("the run record is written again")
            failing = False

    return tolerant


def _record_run(root: Path, run_id: str) -> Any:
    """The run record's writer: rewrites run.json only when what it records has changed (the
    supervisor calls it at most once per turn of its loop)."""
    written: list[dict[str, dict[str, Any]]] = []

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
        if written and written[0] == services:
            return
        runstate.write_state(root, run_id, services)
        written[:] = [services]

    return record


def _report_drops(supervisor: Supervisor, writer: TerminalWriter) -> None:
    """Say how much output devup had to drop, at most once a second: a slow stdout is fed from
    the log files, so this is only output that a failing log write kept out of them."""
    dropped = writer.take_dropped()
    if dropped:
        supervisor.printer.say(
            f"dropped {dropped} bytes of output: stdout fell behind while the log files could "
            "not be written",
            urgent=True,
        )
    if supervisor.exit_code is None:
        supervisor.call_later(DROP_REPORT_S, lambda: _report_drops(supervisor, writer))


def _report_final_drops(writer: TerminalWriter) -> None:
    """At exit, what stdout never took (the last second's drops, a buffer a stuck reader did not
    drain) is said on stderr, without blocking if stderr is that same stuck pipe."""
    lost = writer.take_dropped() + writer.unwritten()
    if not lost:
        return
    line = (
        f"devup: {lost} bytes of output were not shown: stdout stopped taking them "
        "(`devup logs` shows what the log files kept)\n"
    )
    with contextlib.suppress(OSError):  # stderr full or closed too: nothing more to do
        fd = sys.stderr.fileno()
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        try:
            os.write(fd, line.encode())
        finally:
            fcntl.fcntl(fd, fcntl.F_SETFL, flags)
