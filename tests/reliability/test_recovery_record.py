"""Which groups a run record names: only well-formed entries, never pgid 0 or 1."""

from orchestrator import process
from orchestrator.recovery import find_leftovers, recorded_groups


def test_only_well_formed_groups_are_taken_from_a_record() -> None:
    record = {
        "pid": 4100,
        "services": {
            "api": {"pgid": 4242, "started_at": 1700000000.5},
            "web": {"pgid": None, "started_at": None},
            "init": {"pgid": 1, "started_at": 0.0},
            "odd": {"pgid": "4243", "started_at": 1.0},
            "bad": "x",
        },
    }
    assert recorded_groups(record) == [("api", process.GroupId(4242, 1700000000.5))]
    assert recorded_groups({"services": []}) == []


def test_a_group_whose_pgid_was_reused_by_a_later_start_is_not_a_leftover() -> None:
    import os

    import psutil

    me = psutil.Process()
    # This test's own process group, recorded with a start time after every member's: a reused
    # pgid (its processes started before the recorded leader) must never be stopped.
    record = {"services": {"api": {"pgid": os.getpgid(0), "started_at": me.create_time() + 1e6}}}
    assert find_leftovers(record) == []
