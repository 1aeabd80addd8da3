"""The runtime side of one service: what lasts across its processes (spec, port, environment,
state, restarts, where it answered); what belongs to one process is its current Spawn
(spawn.py). Only the supervisor's thread touches it.
"""

from __future__ import annotations

from orchestrator.config.environ import service_url
from orchestrator.config.manifest import ServiceSpec
from orchestrator.ports.reach import Reach
from orchestrator.run.spawn import Spawn
from orchestrator.run.states import State
from orchestrator.system import process


class ServiceRun:
    """The runtime side of one service; only the supervisor's thread touches it."""

    # A plain class, not a dataclass: `import dataclasses` costs ms before the first spawn.
    __slots__ = (
        "burst_events",
        "env",
        "exit_code",
        "fast_failures",
        "held_by_request",
        "last_exit_code",
        "port",
        "reach",
        "restart_due",
        "restarts",
        "spawn",
        "spawned_after_events",
        "spec",
        "start_when_stopped",
        "state",
    )

    def __init__(
        self,
        spec: ServiceSpec,
        port: int | None,
        env: dict[str, str],
        state: State = State.WAITING,
        spawn: Spawn | None = None,  # its current (or last) process; None: a never-started one
    ) -> None:
        self.spec = spec
        self.port = port
        self.env = env
        self.state = state
        self.spawn = Spawn(0) if spawn is None else spawn
        self.restarts = 0
        self.exit_code: int | None = None
        self.fast_failures = 0
        self.restart_due: float | None = None  # when set, a (re)start is wanted no earlier
        self.burst_events = 0  # file events folded into the pending restart
        self.spawned_after_events = 0  # what the restart that spawned its process had folded in
        self.held_by_request = False  # stopped by `devup stop NAME`: not an exit, not a failure
        # Start it again once its stop is over (a dependency of it restarts too: apply_plan).
        self.start_when_stopped = False
        # Where it answered when last ready: told to the services started after it, by status.
        self.reach: Reach | None = None
        self.last_exit_code: int | None = None  # of its last exit on its own (kept in restarts)

    @property
    def generation(self) -> int:
        return self.spawn.generation

    @property
    def group(self) -> process.GroupId | None:
        """Its current process group, until verified gone (the run record, the audit)."""
        return self.spawn.group

    @property
    def where(self) -> tuple[int | None, str | None]:
        """The port and URL it answers on: its PORT, unless it proved to listen elsewhere."""
        if self.reach is not None and self.reach.moved_from(self.port):
            return self.reach.port, self.reach.url
        return self.port, service_url("127.0.0.1", self.port) if self.port is not None else None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def is_task(self) -> bool:
        return not self.spec.needs_port and self.spec.restart == "no"

    @property
    def satisfies_dependents(self) -> bool:
        if self.is_task:
            return self.state is State.STOPPED and self.exit_code == 0
        return self.state in (State.READY, State.RUNNING)

    @property
    def will_restart_for_changes(self) -> bool:
        """False while it waits to start, or stays stopped by `devup stop`: an edit of its spec
        then needs no restart (apply_plan)."""
        held = self.state is State.STOPPED and self.held_by_request
        return not (held or self.state is State.WAITING)

    @property
    def settled(self) -> bool:
        """Done starting: ready, or given up on, or finished."""
        return self.state not in (State.WAITING, State.STARTING)
