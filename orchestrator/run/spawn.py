"""One spawn of a service: its process, group, output and readiness. `_spawn_now` makes a new one
for every start, so nothing of the last process lingers into the next; its generation is its
identity (every event a reader thread posts names it). What lasts across spawns (spec, port,
state, restarts, where it answered) stays on the service (service.ServiceRun).
"""

from __future__ import annotations

import threading

from orchestrator.output.lines import LineSplitter
from orchestrator.run.readiness import Readiness
from orchestrator.system import process

CHUNKS_IN_FLIGHT = 32  # per child: bounds memory when devup lags; the child's pipe then blocks


class Spawn:
    # A plain class, not a dataclass: `import dataclasses` costs ms before the first spawn.
    __slots__ = (
        "child",
        "exit_status",
        "generation",
        "group",
        "kill_deadline",
        "missing_program",
        "output_open",
        "port_wait_since",
        "readiness",
        "ready_after_s",
        "slots",
        "splitter",
        "started_at",
    )

    def __init__(
        self,
        generation: int,  # 0: never started
        started_at: float = 0.0,  # on the supervisor's clock, taken before the fork
        child: process.Child | None = None,  # the leader, until its exit is reported
        group: process.GroupId | None = None,  # set until the whole group is verified gone
        readiness: Readiness | None = None,  # None: a fresh one
        output_open: bool = False,
    ) -> None:
        self.generation = generation
        self.started_at = started_at
        self.child = child
        self.group = group
        self.readiness = Readiness() if readiness is None else readiness
        self.splitter = LineSplitter()
        # Chunks of output its reader may post before the supervisor has taken them.
        self.slots = threading.Semaphore(CHUNKS_IN_FLIGHT)
        self.output_open = output_open
        self.exit_status: int | None = None  # reaped, not yet reported (its last output due)
        self.ready_after_s: float | None = None
        self.missing_program: str | None = None  # "vite", from a shell's "not found" in output
        # Its stop (or the stop of what it left behind) turns into SIGKILL at this time.
        self.kill_deadline: float | None = None
        # The restart after it waits for its port since then (said every PORT_WAIT_WARN_S).
        self.port_wait_since: float | None = None
