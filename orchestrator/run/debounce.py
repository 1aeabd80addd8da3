"""How long a file-change restart waits for quiet before it starts the new process.

A single save restarts after `debounce_ms` (20 ms): an editor's save is a few events. A
restart that has folded in BURST_EVENTS events is a burst (a checkout, `npm install`, a code
generator, a formatter run), and a machine busy with a build can stall its writer for hundreds of
milliseconds midway: a burst waits for a longer quiet, and the more files it has written, the
longer (a pause of 320 ms in a burst of 1,000 files is the same burst, not its end). From
GROWING_EVENTS on, the quiet grows by BURST_QUIET_STEP_S per doubling of the events, through
BURST_QUIET_S at BURST_EVENTS, up to BURST_QUIET_MAX_S: what a burst of thousands of files costs in
latency is small next to the burst itself, and a second restart costs a whole start. webpack
(aggregateTimeout) and watchman (settle) use one fixed quiet; nodemon restarts at the first event.
"""

from __future__ import annotations

import math

BURST_EVENTS = 20
BURST_QUIET_S = 0.3  # the quiet that ends a burst of BURST_EVENTS events
# From this many events the quiet grows (0.2 s at 10): an editor's save is 1-4 events (vim's 3,
# an atomic writer's temporary file and move 4), and a burst whose writer was starved for 40-60 ms
# after its first 12 files was taken for a save and restarted twice.
GROWING_EVENTS = 10
BURST_QUIET_STEP_S = 0.1  # more for each doubling of the events: 0.8 s at 640, 1 s from 2,560
BURST_QUIET_MAX_S = 1.0
# Once the quiet is over, a restart still waits while the watcher has changes on their way (unread
# in the kernel's queue or not yet handed over: a busy machine kept its threads off the CPU),
# rechecking this often, for at most PENDING_HOLD_MAX_S past its due time.
PENDING_RECHECK_S = 0.005
PENDING_HOLD_MAX_S = 0.5


def is_burst(events: int) -> bool:
    return events >= BURST_EVENTS


def quiet_for(debounce_s: float, events: int) -> float:
    """The quiet a restart that has folded in `events` file events waits for."""
    if events < GROWING_EVENTS:
        return debounce_s
    grown = BURST_QUIET_S + BURST_QUIET_STEP_S * math.log2(events / BURST_EVENTS)
    return max(debounce_s, min(grown, BURST_QUIET_MAX_S))
