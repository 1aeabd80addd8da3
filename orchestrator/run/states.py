"""Service states and the transitions allowed between them: the one table the supervisor obeys."""

from __future__ import annotations

from enum import Enum


class State(str, Enum):
    WAITING = "waiting"  # for its dependencies to be ready
    STARTING = "starting"  # spawned, not yet ready
    READY = "ready"  # listening on PORT, or ready_log matched, or a task exited 0
    RUNNING = "running"  # up, but never proved ready (no port, or ready_timeout passed)
    STOPPING = "stopping"  # stop signal sent, waiting for the whole group to be gone
    RESTARTING = "restarting"  # old group gone; waiting for backoff, quiet files or a free port
    STOPPED = "stopped"  # not running, nothing will start it but a file change or a command
    CRASHED = "crashed"  # too many fast failures in a row; waits for a file change or restart

    @property
    def is_up(self) -> bool:
        return self in (State.STARTING, State.READY, State.RUNNING)


S = State
ALLOWED: dict[State, frozenset[State]] = {
    # WAITING -> STARTING: dependencies ready.  WAITING -> STOPPED: a dependency failed, or stop.
    S.WAITING: frozenset({S.STARTING, S.STOPPED}),
    # STARTING -> READY/RUNNING: proved ready / ready_timeout.  -> STOPPING: stop or restart.
    # STARTING -> RESTARTING/STOPPED/CRASHED: its leader exited before it was ready.
    S.STARTING: frozenset({S.READY, S.RUNNING, S.STOPPING, S.RESTARTING, S.STOPPED, S.CRASHED}),
    S.READY: frozenset({S.STOPPING, S.RESTARTING, S.STOPPED, S.CRASHED}),
    S.RUNNING: frozenset({S.READY, S.STOPPING, S.RESTARTING, S.STOPPED, S.CRASHED}),
    # STOPPING -> STOPPED: group gone.  STOPPING -> RESTARTING: group gone, a restart is due.
    S.STOPPING: frozenset({S.STOPPED, S.RESTARTING}),
    # RESTARTING -> STARTING: the delay passed, files are quiet, the port is free.
    S.RESTARTING: frozenset({S.STARTING, S.STOPPING, S.STOPPED}),
    # STOPPED/CRASHED -> STARTING: a file change or `devup start/restart`.
    # STOPPED/CRASHED -> STOPPING: stopping what of its group outlived its leader.
    S.STOPPED: frozenset({S.STARTING, S.WAITING, S.RESTARTING, S.STOPPING}),
    S.CRASHED: frozenset({S.STARTING, S.WAITING, S.RESTARTING, S.STOPPED, S.STOPPING}),
}


class TransitionError(RuntimeError):
    pass


def check_transition(old: State, new: State) -> None:
    if new is not old and new not in ALLOWED[old]:
        raise TransitionError(f"{old.value} -> {new.value} is not a transition")
