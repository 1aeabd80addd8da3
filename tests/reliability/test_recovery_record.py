"""Which groups a run record names: only well-formed entries, never pgid 0 or 1."""

import os
from pathlib import Path

import pytest

from orchestrator.config.manifest import load_manifest
from orchestrator.run.recovery import find_leftovers, stop_leftovers
from orchestrator.system import process, runmark, runstate
from orchestrator.system.runstate import recorded_groups
from tests.reliability.records import PROC


def test_only_well_formed_groups_are_taken_from_a_record() -> None:
    record = {
        "pid": 4100,
        "boot_id": runmark.boot_id(),
        "pid_ns": runmark.pid_namespace(),
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
    import psutil

    me = psutil.Process()
    # This test's own process group, recorded with a start time after every member's: a reused
    # pgid (its processes started before the recorded leader) must never be stopped.
    record = {
        "boot_id": runmark.boot_id(),
        "pid_ns": runmark.pid_namespace(),
        "services": {"api": {"pgid": os.getpgid(0), "started_at": me.create_time() + 1e6}},
    }
    assert find_leftovers(record) == []


def test_a_recorded_group_whose_leader_died_is_still_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The leader (sh) exits at once; its group lives on in two processes; the next run's
    recovery finds them by pgid and the run's environment marker and stops them."""
    records = tmp_path / "records"
    records.mkdir()
    monkeypatch.setenv("RELIABILITY_DIR", str(records))
    (tmp_path / "devports.toml").write_text(
        '[devup]\nstop_timeout = 0.5\n[services.x]\ncmd = "true"\nport = false\n'
    )
    manifest = load_manifest(tmp_path / "devports.toml")
    run_id = runmark.new_run_id()
    env = {**os.environ, runmark.RUN_ENV: runmark.marker(run_id, "x")}
    child = process.spawn(f"{PROC} outlive & exit 0", tmp_path, env)
    assert child.popen.stdout is not None
    child.popen.stdout.readline()  # "leader up": the member is forked and ignores SIGTERM
    assert child.popen.wait(10) == 0
    members = process.group_members(child.group)
    assert len(members) == 2
    runstate.write_state(
        tmp_path,
        run_id,
        {"x": {"pgid": child.group.pgid, "started_at": child.group.leader_started_at}},
    )
    said: list[str] = []
    stopped = stop_leftovers(tmp_path, manifest, said.append)
    child.popen.stdout.close()
    assert [(s.name, s.processes) for s in stopped] == [("x", 2)]
    assert process.group_members(child.group) == []
    assert said[-1].startswith(f"stopped 2 processes left by a killed devup (pid {os.getpid()}): x")
    assert "sending SIGKILL" in said[0]  # the member ignores SIGTERM
    assert runstate.read_state(tmp_path) is None
