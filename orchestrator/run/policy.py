"""Crash-restart policy: what to do when a service's process exits on its own. Pure."""

from __future__ import annotations

from typing import NamedTuple

from orchestrator.config.manifest import RestartPolicy

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
FAST_FAILURE_WINDOW_S = 10.0  # an exit sooner than this after start is a fast failure
MAX_FAST_FAILURES = 10  # in a row, then the service is marked crashed


class ExitDecision(NamedTuple):
    restart: bool
    delay_s: float = 0.0
    crashed: bool = False  # gave up: too many fast failures in a row
    fast_failures: int = 0  # the new count of fast failures in a row


def decide(
    policy: RestartPolicy,
    exit_code: int,
    uptime_s: float,
    fast_failures: int,
) -> ExitDecision:
    """Restart or not, after how long, given how the process ended and how it has been going."""
    failed = exit_code != 0
    if policy == "no" or (policy == "on-failure" and not failed):
        return ExitDecision(restart=False, fast_failures=0)
    # Reset after 10 s up: a service that ran a while and then died starts again from 0.5 s.
    count = fast_failures + 1 if uptime_s < FAST_FAILURE_WINDOW_S else 0
    if count >= MAX_FAST_FAILURES:
        return ExitDecision(restart=False, crashed=True, fast_failures=count)
    return ExitDecision(restart=True, delay_s=backoff_delay(count), fast_failures=count)


def backoff_delay(fast_failures: int) -> float:
    """0.5 s, 1 s, 2 s ... doubling to 30 s; the first restart after a long run waits 0.5 s."""
    doublings: int = max(fast_failures - 1, 0)
    return min(BACKOFF_FIRST_S * float(2**doublings), BACKOFF_MAX_S)


def format_delay(seconds: float) -> str:
    return f"{seconds:g}s"
