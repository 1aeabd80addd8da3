"""One spawn of a service: its process, group, output and readiness. `_spawn_now` makes a new one
for every start, so nothing of the last process lingers into the next; its generation is its
identity (every event a reader thread posts names it). What lasts across spawns (spec, port,
state, restarts, where it answered) stays on the service (service.ServiceRun).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from orchestrator.output.lines import LineSplitter
from orchestrator.run.readiness import Readiness
from orchestrator.system import process

CHUNKS_IN_FLIGHT = 32  # per child: bounds memory when devup lags; the child's pipe then blocks


@dataclass
class Spawn:
    generation: int  # 0: never started
    started_at: float = 0.0  # on the supervisor's clock, taken before the fork
    child: process.Child | None = None  # the leader, until its exit is reported
    group: process.GroupId | None = None  # set until the whole group is verified gone
    readiness: Readiness = field(default_factory=Readiness)
    splitter: LineSplitter = field(default_factory=LineSplitter)
    # Chunks of output its reader may post before the supervisor has taken them.
    slots: threading.Semaphore = field(
        default_factory=lambda: threading.Semaphore(CHUNKS_IN_FLIGHT)
    )
    output_open: bool = False
    exit_status: int | None = None  # reaped, not yet reported (waiting for its last output)
    ready_after_s: float | None = None
    missing_program: str | None = None  # "vite", from a shell's "not found" in its output
    # Its stop (or the stop of what it left behind) turns into SIGKILL at this time.
    kill_deadline: float | None = None
    # The restart after it waits for its port since then (said every PORT_WAIT_WARN_S).
    port_wait_since: float | None = None
