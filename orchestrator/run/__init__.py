"""A run: the supervisor's state machine, its OS seam, events, timers, readiness, crash policy
and the listen audit. Never imports watch/, control/ or cli/."""
