"""The supervisor: the one thread that owns every service's state, timers and restarts.

Reader threads, the watcher, the control server and signal handlers only post events on a
SimpleQueue; everything they report is acted on here, so no devup state needs a lock.
"""

from __future__ import annotations

import os
import queue
import re
import signal
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from orchestrator.base.errors import DevupError
from orchestrator.config.manifest import Manifest
from orchestrator.config.manifest_diff import PlanDiff
from orchestrator.output.printer import Printer
from orchestrator.ports.reach import Reach
from orchestrator.run import audit, summary
from orchestrator.run.changes import (
    Changes,
    EventHandled,
    FactsChanged,
    ServiceStateChanged,
    Subscriber,
    TurnEnded,
    once_per_turn,
)
from orchestrator.run.debounce import (
    BURST_EVENTS,
    PENDING_HOLD_MAX_S,
    PENDING_RECHECK_S,
    is_burst,
    quiet_for,
)
from orchestrator.run.events import (
    ChildrenChanged,
    ControlRequested,
    Event,
    FilesChanged,
    ManifestChanged,
    OutputClosed,
    OutputRead,
    SignalArrived,
    SignalReceived,
    WatcherSaid,
)
from orchestrator.run.gitlock import HOLD_MAX_S, RECHECK_S, GitHold, GitHolds
from orchestrator.run.host import Host, PosixHost
from orchestrator.run.host import Spawn as SpawnProcess
from orchestrator.run.policy import decide, format_delay
from orchestrator.run.readiness import ListenTable, readiness_for
from orchestrator.run.selftrigger import SelfTriggerGuard, holder_of
from orchestrator.run.service import ServiceRun as ServiceRun  # where control/ and tests find it
from orchestrator.run.signalwake import SignalWakeup
from orchestrator.run.spawn import Spawn
from orchestrator.run.states import State, check_transition
from orchestrator.run.timers import Timers
from orchestrator.system import process, runmark

if TYPE_CHECKING:  # psutil is imported where it is used: not on the path to the first spawn
    import psutil

# A shell's "sh: 1: vite: not found" / "bash: vite: command not found", with exit code 127.
_NOT_FOUND = re.compile(r"(?:^|: )([^\s:]+): (?:command )?not found\s*$")
EXIT_NOT_FOUND = 127
STOP_POLL_S = 0.02
PORT_WAIT_POLL_S = 0.1
PORT_WAIT_WARN_S = 5.0
ANNOUNCE_RECHECK_S = 0.05  # how often a restart still gathering changes checks for a burst
# The kernel stamps mtimes from a coarse clock: a write is at most this much later than its mtime.
MTIME_TICK_S = 0.01
EXIT_GRACE_S = 0.2  # how long an exit waits for the rest of its output before it is reported
IDLE_WAKEUP_S = 1.0
RETRY_AFTER_ERROR_S = 0.1  # a timer whose callback failed with an OSError runs again after this
# The services wait for the watcher (watchlater.py) at most this long where it cannot catch up
# on what changed before its watches (Linux needs no wait: watch/catchup.py).
WATCH_HEAD_START_S = 2.0
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


class Watcher(Protocol):
    def start(self) -> None: ...
    def wait_started(self, timeout_s: float) -> bool: ...
    def busy(self) -> bool: ...
    def stop(self) -> None: ...


class LiveManifest(Protocol):
    """What follows devports.toml for the run (live.py); called on the supervisor's thread."""

    def changed(self) -> None: ...
    def reload(self, quiet_if_unchanged: bool = False) -> tuple[bool, str]: ...
    def state(self) -> dict[str, Any]: ...


class Supervisor:
    def __init__(
        self,
        manifest: Manifest,
        order: list[str],
        ports: dict[str, int | None],
        envs: dict[str, dict[str, str]],
        printer: Printer,
        *,
        events: queue.SimpleQueue[Event] | None = None,
        watching: bool = True,
        host: Host | None = None,
        clock: Callable[[], float] | None = None,
        spawn: SpawnProcess | None = None,
        on_change: Callable[[Supervisor], None] | None = None,
        env_for: Callable[[Manifest, dict[str, int | None], str, dict[str, Reach]], dict[str, str]]
        | None = None,
        run_id: str | None = None,
        on_control: Callable[[Supervisor, ControlRequested], None] | None = None,
    ) -> None:
        self.manifest = manifest
        self.order = order
        self.events: queue.SimpleQueue[Event] = events or queue.SimpleQueue()
        self.printer = printer
        self.watching = watching
        # Every OS call goes through the host; `clock` and `spawn` swap only those of the real one.
        if host is not None and (clock is not None or spawn is not None):
            # One way to inject: a host beside them would silently run on its own clock.
            raise TypeError("Supervisor: pass clock and spawn to the host, not beside it")
        self.host: Host = host if host is not None else PosixHost(clock, spawn)
        self._clock = self.host.now
        # Every state change, handled event and end of a turn, told to whoever subscribes.
        self._changes = Changes()
        if on_change is not None:  # the run record: once per turn in which something changed
            self.subscribe(once_per_turn(partial(on_change, self)))
        # Rebuilds a service's environment with where other services really answer (up.py).
        self._env_for = env_for
        # What a control-channel request does (control/server.py): injected, so run/ does not
        # import the control channel above it.
        self._on_control_request = on_control
        self._errors_said: set[tuple[str, int | None]] = set()
        # Every child carries DEVUP_RUN_ID=<run_id>:<service> (runmark.py): a killed devup's
        # processes are found by it, and so are a service's adopted orphans.
        self.run_id = run_id
        self.timers = Timers(self._clock)
        # The kernel's listening sockets, one read shared by the readiness polls of a turn.
        self._listen_table = ListenTable(self.host)
        self.services = {
            name: ServiceRun(manifest.services[name], ports.get(name), envs[name]) for name in order
        }
        self.ports = dict(ports)  # every service's, started or not: what `devup ports` shows
        self.shutting_down = False
        self.exit_code: int | None = None
        self._final_code = 0
        self._shutdown_started = 0.0
        self._started_at = self._clock()
        self._summary_shown = False  # the table of every service, once all have settled
        self.self_triggers = SelfTriggerGuard()
        self.git_holds = GitHolds()
        self.watcher: Watcher | None = None  # asked whether changes are still on their way
        # The listen audit's findings per service (audit.py, through note_findings), shown by
        # status.
        self.findings: dict[str, audit.Findings] = {}
        self._bind_failures_said: set[tuple[str, int]] = set()
        self.live: LiveManifest | None = None
        self.retiring: set[str] = set()  # removed from devports.toml, stopping (apply_plan)
        self._dropped_generations: dict[str, int] = {}  # of services removed and forgotten

    # -- the loop ------------------------------------------------------------------------------

    def run(self, watcher: Watcher | None = None) -> int:
        """Start everything, supervise until the run ends, return devup's exit code."""
        previous = self._install_signal_handlers()
        wakeup = SignalWakeup(self.events.put)  # a signal taken by another thread wakes the loop
        wakeup.install()
        try:
            self.watcher = watcher
            if watcher is not None:
                watcher.start()  # on its own thread
                # Nothing written or saved as the services start is missed: on Linux the
                # watcher catches up once its walk is done; elsewhere they wait for it.
                watcher.wait_started(WATCH_HEAD_START_S)
            self.start()
            while self.exit_code is None:
                self.step(self.timers.timeout(IDLE_WAKEUP_S))
            return self.exit_code
        finally:
            if watcher is not None:
                watcher.stop()
            wakeup.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def start(self) -> None:
        """Start every service whose dependencies allow it: the first thing run() does."""
        self._end_turn()

    def step(self, timeout_s: float = 0.0) -> None:
        """One turn of the loop: handle what is queued (waiting up to timeout_s for the first
        event), run the timers now due. run() turns it until the end; scripted tests by hand."""
        self._step(timeout_s)

    def _step(self, timeout_s: float) -> None:
        try:
            try:
                # get_nowait first: on an empty queue it leaves the queue's lock held, and
                # CPython 3.11's SimpleQueue.get(timeout) entered with that lock free can miss its
                # deadline and wait for the next put (seen ~3 in 9,000 calls under load; 3.13
                # rewrote it), which would hold back every timer of the run.
                first = self.events.get_nowait()
            except queue.Empty:
                if timeout_s <= 0:
                    raise
                first = self.events.get(timeout=timeout_s)
        except queue.Empty:
            self._survive(self._reap, "a child's exit")  # a lost SIGCHLD's safety net
        else:
            self._survive(partial(self._handle, first), _WHAT.get(type(first), "an event"))
            # Drain what else is queued before flushing, so output goes out in batches.
            for _ in range(1000):
                try:
                    event = self.events.get_nowait()
                except queue.Empty:
                    break
                self._survive(partial(self._handle, event), _WHAT.get(type(event), "an event"))
        self.timers.run_due(self._survive)
        self._end_turn()

    def _end_turn(self) -> None:
        """One reconcile after whatever this turn changed, then the subscribers are told the turn
        is over (the run record is written once per turn)."""
        self._survive(self._reconcile, "a state change")
        self.printer.flush_logs()
        self._changes.publish(TurnEnded())

    def _reconcile(self) -> None:
        """What follows from the states as they now are: services whose stop was a step of a
        restart start again, waiting services whose dependencies are up start, the summary is
        shown once all have settled, and the run ends once nothing is left to run."""
        for svc in self.services.values():
            stopped = svc.state in (State.STOPPED, State.CRASHED)
            if svc.start_when_stopped and stopped and not self.shutting_down:
                svc.start_when_stopped = False
                self.start_service(svc)
        self._start_ready_services()
        if not (self._summary_shown or self.shutting_down) and summary.due(self.services):
            self._summary_shown = True
            self.say(summary.table(self.services, self._clock() - self._started_at))
        self._maybe_exit()

    def _survive(self, action: Callable[[], None], what: str = "a timer") -> None:
        """Run one step of the loop. An OSError there (out of descriptors, a full disk, a /proc
        that cannot be read) is said once per kind and the run goes on: a supervisor keeps its
        children running whatever fails around it, as supervisord and systemd do. A timer is
        tried again shortly: the polls that stop, start and watch services re-arm themselves
        only when they finish, so a lost one would leave a service stopping for ever."""
        try:
            action()
        except OSError as exc:
            key = (what, exc.errno)
            if key not in self._errors_said:
                self._errors_said.add(key)
                self.say(
                    f"handling {what} failed: {exc.strerror or exc}; the services keep running"
                )
            if what == "a timer":
                self.timers.call_later(RETRY_AFTER_ERROR_S, action)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Hear every state change, handled event and end of a turn (changes.py), on this
        thread; returns the call that stops it."""
        return self._changes.subscribe(subscriber)

    def mark_changed(self, name: str | None = None) -> None:
        """Something the run record shows changed outside a state change."""
        self._changes.publish(FactsChanged(name))

    def note_findings(self, name: str, findings: audit.Findings | None) -> None:
        """The listen audit's findings about the current process of `name` (None: it has none)."""
        if findings is None:
            self.findings.pop(name, None)
        else:
            self.findings[name] = findings
        self.mark_changed(name)

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> None:
        self.timers.call_later(delay_s, callback)

    def _install_signal_handlers(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}
        post = self.events.put

        def on_signal(signum: int, _frame: object) -> None:
            post(SignalReceived(signum))

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, on_signal)
        previous[signal.SIGCHLD] = signal.signal(
            signal.SIGCHLD, lambda _s, _f: post(ChildrenChanged())
        )
        return previous

    def _handle(self, event: Event) -> None:
        if isinstance(event, SignalArrived):
            return  # waking the loop was its job: this thread runs the signal's Python handler
        self._changes.publish(EventHandled(event))
        if isinstance(event, OutputRead):
            self._on_output(event)
        elif isinstance(event, OutputClosed):
            self._on_output_closed(event)
        elif isinstance(event, ChildrenChanged):
            self._reap()
        elif isinstance(event, SignalReceived):
            self._on_signal(event.signum)
        elif isinstance(event, FilesChanged):
            self._on_files_changed(event)
        elif isinstance(event, ControlRequested):
            self._on_control(event)
        elif isinstance(event, ManifestChanged) and self.live is not None:
            self.live.changed()
        elif isinstance(event, WatcherSaid):
            self.say(event.text)

    # -- state ---------------------------------------------------------------------------------

    def _set_state(self, svc: ServiceRun, new: State) -> None:
        """The one place a state changes; what follows from it is done by subscribers and by
        the reconcile at the end of this turn."""
        old = svc.state
        check_transition(old, new)
        svc.state = new
        if new is not old:
            self._changes.publish(ServiceStateChanged(svc.name, old, new, svc.generation))

    def say(self, text: str) -> None:
        self.printer.say(text)

    # -- starting ------------------------------------------------------------------------------

    def _start_ready_services(self) -> None:
        """Start every waiting service whose dependencies are all satisfied."""
        for svc in self.services.values():
            if svc.state is not State.WAITING or self.shutting_down:
                continue
            deps = [self.services[d] for d in svc.spec.depends_on if d in self.services]
            failed = [d for d in deps if d.is_task and d.state is State.STOPPED and d.exit_code]
            if failed:
                dep = failed[0]
                self.say(f"{svc.name} not started: {dep.name} failed with code {dep.exit_code}")
                self._set_state(svc, State.STOPPED)
                continue
            # Not started for a failed task of its own (a chain migrate -> api -> web): waiting
            # for it would keep a --no-watch run up for ever. One `devup stop` holds is waited for.
            blocked = [d for d in deps if d.state is State.STOPPED and d.generation == 0]
            blocked = [d for d in blocked if not d.held_by_request]
            if blocked:
                self.say(f"{svc.name} not started: {blocked[0].name} was not started")
                self._set_state(svc, State.STOPPED)
                continue
            # Leftovers of its last process still being stopped (_poll_leftovers): not a second
            # group beside them; the turn in which they are gone starts it.
            if all(d.satisfies_dependents for d in deps) and svc.spawn.group is None:
                self._spawn_now(svc)

    def _spawn_now(self, svc: ServiceRun) -> None:
        previous = svc.spawn
        # What waited for this start is over; everything of one process lives on its Spawn.
        svc.exit_code = None
        svc.restart_due = None
        svc.spawned_after_events, svc.burst_events = svc.burst_events, 0
        svc.held_by_request = False
        svc.start_when_stopped = False
        self._tell_where_others_are(svc)
        spawned_at = self._clock()  # before the fork: a change seen earlier is in what it reads
        env = svc.env
        if self.run_id is not None:
            env = {**env, runmark.RUN_ENV: runmark.marker(self.run_id, svc.name)}
        generation = previous.generation + 1
        try:
            child = self.host.spawn(svc.spec, env)
        except OSError as exc:
            svc.spawn = Spawn(generation, previous.started_at, group=previous.group)
            self.say(
                f"{svc.name} could not start: {exc.strerror or exc}; not retrying until "
                + self._what_restarts(svc)
            )
            svc.exit_code = EXIT_NOT_FOUND
            # Nothing may ever start it again (--no-watch): the reconcile ends the run, code 1.
            self._set_state(svc, State.STOPPED)
            return
        readiness = readiness_for(
            svc.spec, svc.port, svc.is_task, child.group, self.host, self._listen_table
        )
        spawn = svc.spawn = Spawn(
            generation, spawned_at, child, child.group, readiness, output_open=True
        )
        port_note = f", PORT={svc.port}" if svc.port is not None else ""
        self.say(f"{svc.name} started (pid {child.pid}{port_note})")
        self._set_state(svc, State.STARTING)
        try:
            self.host.read_output(child, svc.name, generation, self.events.put, spawn.slots)
        except RuntimeError as exc:  # "can't start new thread": a thread or process limit
            self._unread(svc, exc)
            return
        if readiness.first_poll_s is not None:
            self.timers.call_later(
                readiness.first_poll_s, lambda: self._poll_ready(svc, generation)
            )
        if readiness.up_at_once:
            self._set_state(svc, State.RUNNING)
        elif readiness.times_out:
            self.timers.call_later(
                svc.spec.ready_timeout_s, lambda: self._ready_timed_out(svc, generation)
            )

    def _unread(self, svc: ServiceRun, exc: RuntimeError) -> None:
        """No thread could be had to read its output: unread, its pipe would fill and hang it,
        so it is stopped as a failed start, and the other services run on."""
        pipe = svc.spawn.child.popen.stdout if svc.spawn.child is not None else None
        if pipe is not None:
            pipe.close()  # the reader's to close, and there is none
        svc.spawn.output_open = False
        self.say(
            f"{svc.name} could not start: no thread to read its output ({exc}; a limit on "
            f"threads or processes, ulimit -u); stopping it, not retrying until "
            + self._what_restarts(svc)
        )
        self._stop(svc)

    def _tell_where_others_are(self, svc: ServiceRun) -> None:
        """A service started after another proved to listen elsewhere than its PORT (or on ::1
        only) gets that port and URL in its environment."""
        moved = {
            name: other.reach
            for name, other in self.services.items()
            if other.reach is not None and other.reach.moved_from(other.port)
        }
        if not moved or self._env_for is None:
            return
        try:
            # The manifest and ports as now (a live reload may have changed them).
            svc.env = self._env_for(self.manifest, self.ports, svc.name, moved)
        except DevupError as exc:  # an env file broken since devup started: keep the last env
            self.say(f"{svc.name}: {exc}; starting it with the environment it had")

    def _poll_ready(self, svc: ServiceRun, generation: int) -> None:
        """A readiness check that polls (a port): ready now, or asked again later."""
        if svc.generation != generation:
            return
        late = svc.state is State.RUNNING  # past ready_timeout, and still not ready
        if svc.state is not State.STARTING and not late:
            return
        readiness = svc.spawn.readiness
        where = readiness.poll()
        if where is not None:
            self._became_ready(svc, where)
            return
        delay_s = readiness.next_poll_s(self._clock() - svc.spawn.started_at, late)
        self.timers.call_later(delay_s, lambda: self._poll_ready(svc, generation))

    def _became_ready(self, svc: ServiceRun, where: Reach | None = None) -> None:
        if where is None:
            where = svc.spawn.readiness.where()  # proved by its log: where does it listen?
        late = svc.state is State.RUNNING
        svc.reach = where
        svc.spawn.ready_after_s = self._clock() - svc.spawn.started_at
        if self._summary_shown or late:  # said before what its subscribers say (the audit)
            url = svc.where[1]
            on = f" on {url}" if url else ""
            self.say(f"{svc.name} ready{on} in {svc.spawn.ready_after_s:.2f}s")
        self._set_state(svc, State.READY)

    def _ready_timed_out(self, svc: ServiceRun, generation: int) -> None:
        if svc.generation != generation or svc.state is not State.STARTING:
            return
        readiness = svc.spawn.readiness
        self.say(
            f"{svc.name} not ready after {svc.spec.ready_timeout_s:g}s"
            f" ({readiness.not_ready(svc.name)}); starting its dependents anyway"
        )
        self._set_state(svc, State.RUNNING)
        if readiness.polls_late:
            delay_s = readiness.next_poll_s(self._clock() - svc.spawn.started_at, late=True)
            self.timers.call_later(delay_s, lambda: self._poll_ready(svc, generation))

    # -- output --------------------------------------------------------------------------------

    def _on_output(self, event: OutputRead) -> None:
        svc = self.services.get(event.name)
        try:
            # None: removed from devports.toml and forgotten, and a leftover still wrote.
            if svc is not None and event.generation == svc.generation:
                block = svc.spawn.splitter.feed_block(event.data)
                if block is None:
                    pass
                elif self._inspects_output(svc, block):
                    self._print_lines(svc, block.decode("utf-8", "replace").split("\n"))
                else:
                    self.printer.block(svc.name, block)  # the fast path: no line objects
        finally:  # whatever failed above, the reader must not stall
            slot = event.slot or (svc.spawn.slots if svc is not None else None)
            if slot is not None:
                slot.release()

    def _on_output_closed(self, event: OutputClosed) -> None:
        svc = self.services.get(event.name)
        if svc is None or event.generation != svc.generation:
            return
        self._print_lines(svc, svc.spawn.splitter.flush())
        svc.spawn.output_open = False
        if svc.spawn.exit_status is not None:
            self._on_exit(svc)

    def _inspects_output(self, svc: ServiceRun, block: bytes) -> bool:
        """Whether these lines must be looked at: for ready_log, or for a failed bind early on
        (a C-level search of the bytes first, so a flood of output stays on the fast path)."""
        if svc.spawn.readiness.reads_output and svc.state is State.STARTING:
            return True
        return (b"already in use" in block or b"EADDRINUSE" in block or b"not found" in block) and (
            svc.state is State.STARTING
            or self._clock() - svc.spawn.started_at < audit.BIND_WINDOW_S
        )

    def _print_lines(self, svc: ServiceRun, lines: list[str]) -> None:
        if not lines:
            return
        self.printer.lines(svc.name, lines)
        # Only a starting process's output is searched for a failed bind; it is cheap anyway.
        if (
            svc.state is State.STARTING
            or self._clock() - svc.spawn.started_at < audit.BIND_WINDOW_S
        ):
            self._name_port_holder(svc, lines)
            for line in lines:
                missing = _NOT_FOUND.search(line)
                if missing is not None:
                    svc.spawn.missing_program = missing.group(1)
        if svc.state is State.STARTING and svc.spawn.readiness.matches(lines):
            self._became_ready(svc)

    def _name_port_holder(self, svc: ServiceRun, lines: list[str]) -> None:
        key = (svc.name, svc.generation)
        if key not in self._bind_failures_said:
            note = audit.bind_failure(svc.name, svc.port, lines, self.host.port_holders)
            if note is not None:
                self._bind_failures_said.add(key)
                self.say(note)

    # -- exits ---------------------------------------------------------------------------------

    def _reap(self) -> None:
        for svc in self.services.values():
            child = svc.spawn.child
            if child is None or svc.spawn.exit_status is not None:
                continue
            status = self.host.wait_child(child.pid)
            if status is None:
                continue
            self._leader_exited(svc, status)
        self._reap_others()

    def _reap_others(self) -> None:
        """Reap children that are not current leaders: orphans adopted as child subreaper
        (reaper.py). This thread is the only waiter, so a leader reaped here is dispatched."""
        for pid, status in self.host.reap_exited():
            # Looked up afresh: handling one exit may have spawned another service.
            for svc in self.services.values():
                leader = svc.spawn.child
                if leader is not None and leader.pid == pid and svc.spawn.exit_status is None:
                    self._leader_exited(svc, status)
                    break

    def _leader_exited(self, svc: ServiceRun, status: int) -> None:
        assert svc.spawn.child is not None
        svc.spawn.child.popen.returncode = status  # so Popen never waits for it again
        svc.spawn.exit_status = status
        if svc.spawn.output_open:
            generation = svc.generation
            self.timers.call_later(EXIT_GRACE_S, partial(self._exit_grace, svc, generation))
        else:
            self._on_exit(svc)

    def _exit_grace(self, svc: ServiceRun, generation: int) -> None:
        spawn = svc.spawn
        reaped = spawn.exit_status is not None and spawn.child is not None
        if spawn.generation == generation and reaped:
            self._on_exit(svc)

    def _on_exit(self, svc: ServiceRun) -> None:
        """The leader of the current generation exited and its output is in (or late)."""
        assert svc.spawn.exit_status is not None and svc.spawn.child is not None
        how, code = process.describe_exit(svc.spawn.exit_status)
        svc.exit_code = code
        svc.last_exit_code = code
        svc.spawn.exit_status = None
        svc.spawn.child = None
        uptime = self._clock() - svc.spawn.started_at
        if svc.state is State.STOPPING:
            self._check_group_gone(svc)
            return
        if self.shutting_down:
            self._set_state(svc, State.STOPPING)
            self._check_group_gone(svc)
            return
        if svc.is_task:
            if code == 0:
                self.say(f"{svc.name} finished (exit code 0) in {uptime:.2f}s")
            else:
                self.say(f"{svc.name} failed: exited {how}")
            self._set_state(svc, State.STOPPED)
            self._stop_leftovers(svc)
            return
        decision = decide(svc.spec.restart, code, uptime, svc.fast_failures)
        svc.fast_failures = decision.fast_failures
        if decision.restart and code == EXIT_NOT_FOUND and svc.spawn.missing_program is not None:
            # Retrying on a timer cannot help: the program appears only when someone acts.
            self.say(
                f"{svc.name} exited {how}: {svc.spawn.missing_program} not found; not retrying"
                f" until {self._what_restarts(svc)}"
            )
            self._set_state(svc, State.CRASHED)
        elif decision.crashed:
            self.say(
                f"{svc.name} exited {how}; it failed {decision.fast_failures} times in a row within"
                f" 10s of starting: crashed until a file change or `devup restart {svc.name}`"
            )
            self._set_state(svc, State.CRASHED)
        elif decision.restart:
            self.say(f"{svc.name} exited {how}, restarting in {format_delay(decision.delay_s)}")
            svc.restart_due = self._clock() + decision.delay_s
            svc.restarts += 1
            self._set_state(svc, State.RESTARTING)
            self.timers.call_later(decision.delay_s, lambda: self._try_start(svc))
        else:
            self.say(f"{svc.name} exited {how}")
            self._set_state(svc, State.STOPPED)
        self._stop_leftovers(svc)

    def _what_restarts(self, svc: ServiceRun) -> str:
        if self.watching and svc.spec.watch is not None:
            return f"a change to its files or `devup restart {svc.name}`"
        return f"`devup restart {svc.name}`"

    def _stop_leftovers(self, svc: ServiceRun) -> None:
        """The leader is gone; members of its group that outlived it are stopped too."""
        if svc.spawn.group is None:
            return
        if not self.host.group_alive(svc.spawn.group):
            svc.spawn.group = None
            return
        self.say(f"{svc.name}: processes of its group outlived it, stopping them")
        self._signal_group(svc, svc.spec.stop_signal)
        svc.spawn.kill_deadline = self._clock() + self.manifest.settings.stop_timeout_s
        generation = svc.generation
        self.timers.call_later(STOP_POLL_S, lambda: self._poll_leftovers(svc, generation))

    def _poll_leftovers(self, svc: ServiceRun, generation: int) -> None:
        if svc.generation != generation or svc.spawn.group is None or svc.spawn.child is not None:
            return
        if not self.host.group_alive(svc.spawn.group):
            svc.spawn.group = None
            if svc.state is State.RESTARTING:
                self._try_start(svc)  # the restart waited for the old group to be gone
            return
        self._kill_when_overdue(
            svc, f"{svc.name}: its leftovers", partial(self._signal_group, svc, signal.SIGKILL)
        )
        self.timers.call_later(STOP_POLL_S, lambda: self._poll_leftovers(svc, generation))

    def _kill_when_overdue(self, svc: ServiceRun, what: str, kill: Callable[[], None]) -> None:
        """Past the stop deadline: say so and SIGKILL (once) what is still there."""
        if svc.spawn.kill_deadline is not None and self._clock() >= svc.spawn.kill_deadline:
            timeout = self.manifest.settings.stop_timeout_s
            self.say(f"{what} did not stop within {timeout:g}s, sending SIGKILL")
            kill()
            svc.spawn.kill_deadline = None

    # -- stopping ------------------------------------------------------------------------------

    def _stop(self, svc: ServiceRun, restart_after: bool = False) -> None:
        """Begin stopping the service's whole group; finished once the group is empty."""
        if restart_after:
            svc.restart_due = svc.restart_due or self._clock()
        else:
            svc.restart_due = None
        if svc.state is State.STOPPING:
            return
        idle = (State.WAITING, State.RESTARTING, State.STOPPED, State.CRASHED)
        if svc.state in idle and svc.spawn.group is None and not self._orphans(svc):
            if svc.state is not State.STOPPED and not restart_after:
                self._set_state(svc, State.STOPPED)
            return
        if svc.state is State.WAITING:  # to start once its last process's leftovers are gone
            self._set_state(svc, State.STOPPED)
        # The signal first: a restart waits on the old group's exit, not on devup's bookkeeping.
        self._signal_group(svc, svc.spec.stop_signal)
        self._set_state(svc, State.STOPPING)
        svc.spawn.kill_deadline = self._clock() + self.manifest.settings.stop_timeout_s
        generation = svc.generation
        self.timers.call_later(STOP_POLL_S, lambda: self._poll_stopped(svc, generation))

    def _signal_group(self, svc: ServiceRun, sig: int) -> None:
        if svc.spawn.group is not None:
            unreaped = svc.spawn.child is not None and svc.spawn.exit_status is None
            self.host.signal_group(svc.spawn.group, sig, leader_unreaped=unreaped)
        self.host.signal_orphans(self._orphans(svc), sig)

    def _orphans(self, svc: ServiceRun) -> list[psutil.Process]:
        """Processes that left the service's group and were adopted by devup (a daemonizing
        command: fork, setsid, parent exits): they carry its marker and are stopped with it."""
        if self.run_id is None:
            return []
        leaders = {s.spawn.child.pid for s in self.services.values() if s.spawn.child is not None}
        return self.host.orphans(runmark.marker(self.run_id, svc.name), leaders)

    def _poll_stopped(self, svc: ServiceRun, generation: int) -> None:
        if svc.generation != generation or svc.state is not State.STOPPING:
            return
        if svc.spawn.child is not None and svc.spawn.exit_status is None:
            self._reap()
        if not self._check_group_gone(svc):
            self._kill_when_overdue(svc, svc.name, partial(self._signal_group, svc, signal.SIGKILL))
            self.timers.call_later(STOP_POLL_S, lambda: self._poll_stopped(svc, generation))

    def _check_group_gone(self, svc: ServiceRun) -> bool:
        """If the stopping service's leader is reaped and its group empty, finish the stop."""
        if svc.state is not State.STOPPING:
            return True
        if svc.spawn.child is not None:
            if svc.spawn.exit_status is None:
                return False
            self._on_exit(svc)  # reaped but unreported: report now, it re-enters here
            return svc.state is not State.STOPPING
        if svc.spawn.group is not None and self.host.group_alive(svc.spawn.group):
            return False
        svc.spawn.group = None
        if self._orphans(svc):
            return False  # signalled with the group (_signal_group); polled until gone
        svc.spawn.kill_deadline = None
        if svc.restart_due is not None and not self.shutting_down:
            self._set_state(svc, State.RESTARTING)
            self._try_start(svc)
        else:
            self._set_state(svc, State.STOPPED)
        return True

    def kill_all(self) -> None:
        for svc in self.services.values():
            if svc.spawn.group is not None:
                self._signal_group(svc, signal.SIGKILL)

    # -- restarting ----------------------------------------------------------------------------

    def _try_start(self, svc: ServiceRun) -> None:
        """Start a restarting service once its delay passed, its group is gone, its port free."""
        if svc.state is not State.RESTARTING or self.shutting_down or svc.restart_due is None:
            return
        now = self._clock()
        if now < svc.restart_due:
            self.timers.call_later(svc.restart_due - now, lambda: self._try_start(svc))
            return
        if svc.burst_events and (self._files_still_coming(svc, now) or self._held_by_git(svc, now)):
            return
        if svc.spawn.group is not None:
            return  # its leftovers are being stopped; _poll_leftovers calls again once gone
        orphans = self._orphans(svc)
        if orphans:
            # Its daemon from before (or one that left the group) would hold the port for ever.
            pids = ", ".join(str(p.pid) for p in orphans)
            self.say(f"{svc.name}: stopping what its last process left running (pid {pids})")
            self.host.signal_orphans(orphans, svc.spec.stop_signal)
            svc.spawn.kill_deadline = self._clock() + self.manifest.settings.stop_timeout_s
            generation = svc.generation
            self.timers.call_later(STOP_POLL_S, lambda: self._poll_orphans(svc, generation))
            return
        if svc.port is not None and not self.host.is_port_free(svc.port):
            if svc.spawn.port_wait_since is None:
                svc.spawn.port_wait_since = now
            elif now - svc.spawn.port_wait_since >= PORT_WAIT_WARN_S:
                self.say(f"{svc.name}: port {svc.port} is still in use, waiting for it to be free")
                svc.spawn.port_wait_since = now
            self.timers.call_later(PORT_WAIT_POLL_S, lambda: self._try_start(svc))
            return
        self._announce_change(svc)
        self._spawn_now(svc)

    def _poll_orphans(self, svc: ServiceRun, generation: int) -> None:
        if svc.generation != generation or svc.state is not State.RESTARTING:
            return
        orphans = self._orphans(svc)
        if not orphans:
            self._try_start(svc)
            return
        self._kill_when_overdue(
            svc,
            f"{svc.name}: its orphans",
            partial(self.host.signal_orphans, orphans, signal.SIGKILL),
        )
        self.timers.call_later(STOP_POLL_S, lambda: self._poll_orphans(svc, generation))

    def _files_still_coming(self, svc: ServiceRun, now: float) -> bool:
        """The watcher has changes still on their way (a burst whose watcher a busy machine kept
        off the CPU: 19 files read, then none for 45 ms while 17 more were written): its quiet is
        not over. Waited for at most PENDING_HOLD_MAX_S past its due time (other files, ignored
        ones, may be written without end)."""
        due = svc.restart_due if svc.restart_due is not None else now
        if self.watcher is None or now - due > PENDING_HOLD_MAX_S or not self.watcher.busy():
            return False
        self.timers.call_later(PENDING_RECHECK_S, lambda: self._try_start(svc))
        return True

    def _held_by_git(self, svc: ServiceRun, now: float) -> bool:
        """A file-change restart while git rewrites the work tree (checkout, rebase, merge)
        waits for git to finish: one restart for the whole operation (gitlock.py)."""
        hold = self.git_holds.check(str(svc.spec.cwd), now)
        if hold is GitHold.STALE:
            self.say(
                f"{svc.name}: git's index.lock has been there for {HOLD_MAX_S:.0f}s (left by a"
                " git that was killed?); restarting without waiting for it"
            )
        if hold is not GitHold.WAIT:
            return False
        self.timers.call_later(RECHECK_S, lambda: self._try_start(svc))
        return True

    def request_restart(self, svc: ServiceRun, delay_s: float = 0.0, asked: bool = False) -> None:
        """Restart now (or after delay_s of quiet); folds into a restart already under way.
        `asked` (`devup restart`): a file-change restart it folds into is no longer held for
        git's index.lock or changes on their way: the user wants it now."""
        due = self._clock() + delay_s
        if svc.state is State.WAITING or self.shutting_down:
            return
        if asked:
            svc.burst_events = 0
        svc.fast_failures = 0 if svc.state is State.CRASHED else svc.fast_failures
        if svc.state in (State.STOPPING, State.RESTARTING):
            svc.restart_due = max(svc.restart_due or due, due)
            if svc.state is State.RESTARTING:
                self.timers.call_later(max(due - self._clock(), 0), lambda: self._try_start(svc))
            return
        svc.restarts += 1
        if svc.state.is_up:
            svc.restart_due = due
            self._stop(svc, restart_after=True)
            return
        # STOPPED or CRASHED
        svc.restart_due = due
        self._set_state(svc, State.RESTARTING)
        self.timers.call_later(delay_s, lambda: self._try_start(svc))

    def stop_service(self, svc: ServiceRun) -> None:
        """Stop one service and keep it stopped (until a file change or `devup start`)."""
        svc.held_by_request = True
        if svc.spawn.child is None and svc.spawn.group is None and not self._orphans(svc):
            svc.restart_due = None
            if svc.state is not State.STOPPED:
                self._set_state(svc, State.STOPPED)
            return
        self._stop(svc)

    def start_service(self, svc: ServiceRun) -> None:
        """Start a stopped service and whatever it depends on that is not up."""
        if svc.state.is_up:
            return
        if svc.state in (State.STOPPING, State.RESTARTING):
            svc.restart_due = svc.restart_due or self._clock()
            return
        for name in [*svc.spec.depends_on, svc.name]:
            dep = self.services.get(name)
            if dep is None or (dep is not svc and dep.satisfies_dependents):
                continue
            if dep is not svc:
                self.start_service(dep)  # its own dependencies first; it ends WAITING or up
            elif dep.state in (State.STOPPED, State.CRASHED):
                dep.fast_failures = 0
                self._set_state(dep, State.WAITING)
        # At once, not at the end of the turn: `devup start --no-wait` answers "starting".
        self._start_ready_services()

    def _on_files_changed(self, event: FilesChanged) -> None:
        svc = self.services.get(event.name)
        if svc is None or not self.watching or self.shutting_down or svc.name in self.retiring:
            return  # a removed service that is stopping is not brought back by a late change
        debounce_s = self.manifest.settings.debounce_ms / 1000
        now = self._clock()
        # Quiet counts from when the watcher saw the change (never more than debounce_s back).
        seen_at = now if event.seen_at is None else event.seen_at
        changed_at = max(min(seen_at, now), now - debounce_s)
        if svc.state in (State.STOPPING, State.RESTARTING) and svc.restart_due is not None:
            # A burst: fold into the restart under way, just push its start past the quiet time.
            svc.burst_events += 1
            self.self_triggers.folded(svc.name, event.path, event.moved_here)
            due = changed_at + quiet_for(debounce_s, svc.burst_events)
            if svc.state is State.RESTARTING and due < svc.restart_due:
                # Waiting out a crash backoff: a change starts it sooner, as after a crash.
                self.say(f"{svc.name}: {event.path} changed, restarting")
                self.timers.call_later(debounce_s, lambda: self._try_start(svc))
            svc.restart_due = due
            return
        if svc.state is State.WAITING:
            return
        if event.seen_at is not None and event.seen_at < svc.spawn.started_at:
            # Seen before this process was spawned (the watcher's thread was slow to post it, a
            # busy machine): the process reads the files as they are after the change already.
            return
        if event.written_at is not None and event.written_at + MTIME_TICK_S < svc.spawn.started_at:
            # Written before the spawn, however late the watcher read it: the 90th file of a
            # 5,000-file burst read after the new process started gave a second restart.
            return
        if svc.name in self.self_triggers.suspended:
            return  # it restarted itself by its own writes; `devup restart` lifts this
        up_for_s = max(0.0, seen_at - svc.spawn.started_at) if svc.state.is_up else None
        if svc.state.is_up and svc.spawn.group is not None:
            path = os.path.join(svc.spec.cwd, event.path)
            holder = holder_of(path, self.host.group_members(svc.spawn.group))
            if holder is not None:
                self.say(self.self_triggers.suspend_for_holder(svc.name, event.path, holder))
                return
        pid = svc.spawn.child.pid if svc.spawn.child is not None else None
        self.self_triggers.began(svc.name, svc.generation, pid, event.path, up_for_s)
        svc.burst_events = 1
        # A change within a burst's quiet of the spawn is most likely the rest of the burst that
        # restarted it (a checkout the machine starved for CPU while the restart ran): gather the
        # rest of it as that burst, not a restart per trickle of files.
        tail = max(BURST_EVENTS, svc.spawned_after_events)
        if up_for_s is not None and up_for_s < quiet_for(debounce_s, tail):
            svc.burst_events = tail
        delay_s = changed_at + quiet_for(debounce_s, svc.burst_events) - now
        self.request_restart(svc, delay_s)
        self.timers.call_later(max(delay_s, 0.0), lambda: self._announce_change(svc))

    def _announce_change(self, svc: ServiceRun) -> None:
        """Name the file of a file-change restart once its changes are gathered (its quiet time
        is over, or its new process starts): a file saved by a move into place (sed -i, vim,
        atomic writers) is named by where it went, not by its temporary name."""
        if self.shutting_down:
            return
        now = self._clock()
        due = svc.restart_due
        gathering = svc.state in (State.STOPPING, State.RESTARTING)
        if gathering and due is not None and due > now and not is_burst(svc.burst_events):
            # A burst is said at once (no move into place to wait for); a save once it is over.
            wait_s = min(due - now, ANNOUNCE_RECHECK_S)
            self.timers.call_later(wait_s, lambda: self._announce_change(svc))
            return
        cwd = svc.spec.cwd
        told = self.self_triggers.announce(
            svc.name, lambda rel: os.path.lexists(os.path.join(cwd, rel))
        )
        if told is not None:
            label, suspension = told
            self.say(f"{svc.name}: {label} changed, restarting")
            if suspension:
                self.say(suspension)

    # -- a changed manifest ----------------------------------------------------------------------

    def apply_plan(
        self,
        manifest: Manifest,
        order: list[str],
        ports: dict[str, int | None],
        envs: dict[str, dict[str, str]],
        diff: PlanDiff,
    ) -> None:
        """Follow an edited devports.toml (live.py worked out `diff`): removed services stop and
        leave, added ones start once their dependencies are up, changed ones restart, in
        dependency order, or only take their new settings; the rest are not touched."""
        self.manifest = manifest
        for name in diff.removed:
            if name in self.services:
                self._retire(self.services[name])
        # A removed service's port stays shown while its process may still hold it.
        self.ports = {**{n: p for n, p in self.ports.items() if n in self.retiring}, **ports}
        restarting = {c.name for c in diff.changed if c.restart}
        for name in order:
            spec, port, env = manifest.services[name], ports.get(name), envs[name]
            svc = self.services.get(name)
            if svc is None:  # WAITING: started below; a name back again counts on from before
                generation = self._dropped_generations.pop(name, 0)
                self.services[name] = ServiceRun(spec, port, env, spawn=Spawn(generation))
                continue
            if name in self.retiring:  # removed, and back before it was gone: a restart
                self.retiring.discard(name)
                svc.held_by_request = False
                svc.spec, svc.port, svc.env = spec, port, env
                self.start_service(svc)
                continue
            if name in restarting:
                after_deps = any(d in restarting for d in _needs(manifest, name))
                self._restart_changed(svc, after_deps)  # signals with the old spec's stop_signal
            if port != svc.port:
                svc.reach = None  # where it answered was on the old port
            svc.spec, svc.port, svc.env = spec, port, env
        self.order = [*order, *(n for n in self.order if n in self.retiring and n not in order)]
        self.services = {n: self.services[n] for n in self.order}
        for svc in self.services.values():
            # A program that was not found may have been fixed by this edit (a PATH, a cmd).
            if svc.spawn.missing_program is not None and svc.state is State.CRASHED:
                self.request_restart(svc)
        self.mark_changed()

    def _restart_changed(self, svc: ServiceRun, after_deps: bool) -> None:
        if not svc.will_restart_for_changes:
            return  # starts, or stays stopped, with the new spec
        if svc.state in (State.STOPPED, State.CRASHED) and svc.spawn.group is None:
            svc.restarts += 1
            self.start_service(svc)  # through WAITING: a failed task it needs still holds it
            return
        if not after_deps or svc.state is State.RESTARTING:
            self.request_restart(svc)
            return
        # A dependency restarts too: stop now, start once it is ready again (WAITING).
        svc.restarts += 1
        svc.start_when_stopped = True
        self._stop(svc)

    def _retire(self, svc: ServiceRun) -> None:
        self.retiring.add(svc.name)
        self.stop_service(svc)
        self._drop_retired(svc.name)

    def _drop_retired(self, name: str) -> None:
        """Forget a removed service once its group is gone and its output read to the end."""
        svc = self.services.get(name)
        if svc is None or name not in self.retiring:
            return
        gone = svc.spawn.child is None and svc.spawn.group is None and not svc.spawn.output_open
        if not (gone and svc.state in (State.STOPPED, State.CRASHED)):
            self.timers.call_later(STOP_POLL_S, lambda: self._drop_retired(name))
            return
        self.retiring.discard(name)
        # Should it come back, its generations go on: a late event of this process must never
        # pass for one of the next (events name only the service and the generation).
        self._dropped_generations[name] = svc.generation
        del self.services[name]
        self.order.remove(name)
        self.mark_changed(name)

    # -- the end -------------------------------------------------------------------------------

    def _on_signal(self, signum: int) -> None:
        if self.shutting_down:
            if signum == signal.SIGINT:
                self.say("second Ctrl-C: killing everything now")
                self.kill_all()
            return
        name = signal.Signals(signum).name
        self.say(f"{name} received, stopping all services")
        self.shutdown(EXIT_CODES.get(signal.Signals(signum), 128 + signum))

    def shutdown(self, exit_code: int) -> None:
        """Stop every group, dependents first; the loop ends once all are gone."""
        self.shutting_down = True
        self._final_code = exit_code
        self._shutdown_started = self._clock()
        for name in reversed(self.order):
            svc = self.services[name]
            svc.restart_due = None
            if svc.state is State.STOPPING:
                continue
            if svc.spawn.child is not None or svc.spawn.group is not None:
                self._stop(svc)
            elif svc.state is not State.STOPPED:
                self._set_state(svc, State.STOPPED)

    def _maybe_exit(self) -> None:
        if self.exit_code is not None:
            return
        alive = any(
            s.spawn.child is not None or s.group is not None for s in self.services.values()
        )
        if self.shutting_down:
            if not alive:
                took = self._clock() - self._shutdown_started
                self.say(f"all services stopped in {took:.2f}s")
                self.exit_code = self._final_code
            return
        # A service stopped by `devup stop NAME` waits for `devup start`: the run stays up.
        held = any(s.held_by_request for s in self.services.values())
        if alive or self.watching or held:
            return
        pending = any(s.state not in (State.STOPPED, State.CRASHED) for s in self.services.values())
        if not pending:
            failed = [
                s.name for s in self.services.values() if s.exit_code or s.state is State.CRASHED
            ]
            self.say(
                "every service has exited" + (f" ({', '.join(failed)} failed)" if failed else "")
            )
            self.exit_code = 1 if failed else 0

    # -- control -------------------------------------------------------------------------------

    def _on_control(self, request: ControlRequested) -> None:
        if self._on_control_request is None:
            request.reply({"ok": False, "error": "this devup takes no control requests"})
            return
        try:
            self._on_control_request(self, request)
        except OSError as exc:  # _survive says it once; the asker must not wait for ever
            request.reply({"ok": False, "error": f"devup failed: {exc.strerror or exc}"})
            raise

    def watch_again(self, svc: ServiceRun) -> bool:
        """Lifts the self-trigger suspension of `svc` (`devup restart NAME`); True if it was on."""
        if svc.name not in self.self_triggers.suspended:
            return False
        self.self_triggers.suspended.discard(svc.name)
        return True

    def status(self) -> dict[str, Any]:
        now = self._clock()
        services: dict[str, Any] = {}
        for name, svc in self.services.items():
            up = svc.spawn.child is not None and svc.state.is_up
            port, url = svc.where
            services[name] = {
                "state": svc.state.value,
                "pid": svc.spawn.child.pid if svc.spawn.child else None,
                "port": port,
                "url": url,
                "restarts": svc.restarts,
                "uptime_s": round(now - svc.spawn.started_at, 3) if up else None,
                "exit_code": svc.exit_code,
                # What the summary counts as not coming up, and the code it shows for it: how
                # `devup up --detach` tells a crash loop from a first hiccup (cli/detach.py).
                "failing": summary.failing(svc),
                "held": svc.held_by_request,  # stopped by `devup stop NAME`
                "last_exit_code": svc.last_exit_code,
                **audit.status_fields(self.findings.get(name), svc.generation),
            }
        return {"pid": os.getpid(), "services": services}


def _needs(manifest: Manifest, name: str) -> set[str]:
    """Everything `name` depends on, directly or not."""
    found: set[str] = set()
    pending = list(manifest.services[name].depends_on)
    while pending:
        dep = pending.pop()
        if dep not in found and dep in manifest.services:
            found.add(dep)
            pending.extend(manifest.services[dep].depends_on)
    return found


# What each event is, for the line said when handling one fails.
_WHAT: dict[type, str] = {
    OutputRead: "a service's output",
    OutputClosed: "the end of a service's output",
    ChildrenChanged: "a child's exit",
    SignalReceived: "a signal",
    FilesChanged: "a file change",
    ControlRequested: "a control request",
    ManifestChanged: "a change of devports.toml",
    WatcherSaid: "a watcher's message",
}
