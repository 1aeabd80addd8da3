"""The crash-restart policy, with the schedule the defaults give."""

import pytest

from orchestrator.run.policy import MAX_FAST_FAILURES, backoff_delay, decide


def test_default_backoff_doubles_from_half_a_second_to_thirty() -> None:
    assert [backoff_delay(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]


@pytest.mark.parametrize(
    ("policy", "code", "restart"),
    [("on-failure", 1, True), ("on-failure", 0, False), ("always", 0, True), ("no", 1, False)],
)
def test_policy_decides_whether_to_restart(policy: str, code: int, restart: bool) -> None:
    assert decide(policy, code, uptime_s=1, fast_failures=0).restart is restart  # type: ignore[arg-type]


def test_ten_fast_failures_in_a_row_mark_the_service_crashed() -> None:
    count = 0
    for _ in range(MAX_FAST_FAILURES - 1):
        decision = decide("on-failure", 1, uptime_s=0.05, fast_failures=count)
        assert decision.restart and not decision.crashed
        count = decision.fast_failures
    final = decide("on-failure", 1, uptime_s=0.05, fast_failures=count)
    assert final.crashed and not final.restart


def test_ten_seconds_up_resets_the_backoff() -> None:
    decision = decide("on-failure", 1, uptime_s=10.5, fast_failures=7)
    assert decision.fast_failures == 0 and decision.delay_s == 0.5


def test_default_schedule_allows_at_most_twelve_restarts_in_the_first_minute() -> None:
    """A service crashing 50 ms after each start, on the default schedule."""
    t, restarts, count = 0.0, 0, 0
    while True:
        t += 0.05  # runs 50 ms, then exits 1
        decision = decide("on-failure", 1, uptime_s=0.05, fast_failures=count)
        count = decision.fast_failures
        if not decision.restart:
            break
        t += decision.delay_s
        if t > 60:
            break
        restarts += 1
    assert restarts <= 12
