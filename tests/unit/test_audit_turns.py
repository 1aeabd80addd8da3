"""When the listen audit runs (run/audit.py) on the scripted host: the services that came up in
a turn are audited together once the turn is over, in one pass, after the "N services up" line
that turn says; each still gets its warnings and findings, and its rechecks later."""

from __future__ import annotations

from pathlib import Path

from orchestrator.run import audit
from orchestrator.run.changes import once_per_turn

from .fakehost import Run

THREE = """
    [services.a]
    cmd = "a"
    port = 3001
    [services.b]
    cmd = "b"
    port = 3002
    [services.c]
    cmd = "c"
    port = 3003
"""


def test_services_ready_in_one_turn_are_audited_in_one_pass(tmp_path: Path) -> None:
    run = Run(tmp_path, THREE)
    audit.install(run.sup)
    run.start()
    for name, port in (("a", 3001), ("b", 3002), ("c", 3003)):
        run.host.last(name).listen(port, ip="0.0.0.0")
    run.until(lambda: run.states() == dict.fromkeys("abc", "ready"), 1, "all ready")
    assert run.host.audit_passes == 1  # one pass over the processes, not one per service
    for name, port in (("a", 3001), ("b", 3002), ("c", 3003)):
        assert run.status(name)["listening"] == [f"0.0.0.0:{port}"]
        assert run.status(name)["audits"] == 1
        assert run.saw(f"{name} (pid ") and run.saw(f"listens on 0.0.0.0:{port}: reachable")


def test_the_up_line_is_said_before_the_audit_of_its_turn(tmp_path: Path) -> None:
    """The last service's audit does not hold back the "N services up" line; its warning
    follows it."""
    run = Run(tmp_path, THREE)
    audit.install(run.sup)
    run.start()
    for name, port in (("a", 3001), ("b", 3002), ("c", 3003)):
        run.host.last(name).listen(port, ip="0.0.0.0")
    run.until(lambda: run.saw("services up"), 1, "the up line")
    lines = run.lines()
    up = next(i for i, line in enumerate(lines) if "3 services up" in line)
    warned = [i for i, line in enumerate(lines) if "reachable from your network" in line]
    assert len(warned) == 3 and min(warned) > up


def test_the_audit_waits_while_another_service_starts_and_no_longer_than_the_hold(
    tmp_path: Path,
) -> None:
    run = Run(tmp_path, THREE)
    audit.install(run.sup)
    run.start()
    run.host.last("a").listen(3001, ip="0.0.0.0")
    run.until(lambda: run.state("a") == "ready", 1, "a ready")
    run.advance(audit.HOLD_WHILE_STARTING_S / 2)
    assert run.status("a")["audits"] == 0  # b and c are still starting
    run.host.last("b").listen(3002)
    run.until(lambda: run.state("b") == "ready", 1, "b ready")
    assert run.status("a")["audits"] == 0
    run.advance(audit.HOLD_WHILE_STARTING_S / 2)
    assert run.status("a")["audits"] == 1 and run.status("b")["audits"] == 1  # c still starts
    assert run.host.audit_passes == 1
    run.host.last("c").listen(3003)
    run.until(lambda: run.state("c") == "ready", 1, "c ready")
    assert run.status("c")["audits"] == 1  # the last one: audited at the end of its turn


def test_a_service_audited_at_its_turn_is_checked_again_later(tmp_path: Path) -> None:
    run = Run(tmp_path, "[services.a]\ncmd = 'a'\nport = 3001\n")
    audit.install(run.sup)
    run.start()
    run.host.last("a").listen(3001)
    run.until(lambda: run.state("a") == "ready", 1, "a ready")
    assert run.status("a")["audits"] == 1
    run.host.last("a").listen(4000, ip="0.0.0.0")  # a public socket opened after ready
    run.advance(audit.RECHECK_AFTER_S[0])
    assert run.status("a")["audits"] == 2
    assert run.saw("listens on 0.0.0.0:4000: reachable")


def test_services_audited_together_are_checked_again_together(tmp_path: Path) -> None:
    run = Run(tmp_path, THREE)
    audit.install(run.sup)
    run.start()
    for name, port in (("a", 3001), ("b", 3002), ("c", 3003)):
        run.host.last(name).listen(port)
    run.until(lambda: run.states() == dict.fromkeys("abc", "ready"), 1, "all ready")
    assert run.host.audit_passes == 1
    run.advance(audit.RECHECK_AFTER_S[0])
    assert run.host.audit_passes == 2  # one recheck pass for the three
    assert [run.status(name)["audits"] for name in "abc"] == [2, 2, 2]


def test_the_run_record_gets_the_findings_in_the_next_turn_at_once(tmp_path: Path) -> None:
    run = Run(tmp_path, "[services.a]\ncmd = 'a'\nport = 3001\n")
    recorded: list[int] = []
    run.sup.subscribe(once_per_turn(lambda: recorded.append(run.status("a")["audits"])))
    audit.install(run.sup)  # after the record, as up.py does
    run.start()
    run.host.last("a").listen(3001)
    run.until(lambda: run.state("a") == "ready", 1, "a ready")
    assert run.status("a")["audits"] == 1 and recorded[-1] == 0  # audited after the record
    assert run.sup.timers.timeout(10.0) == 0.0  # the loop turns again without waiting
    run.step()
    assert recorded[-1] == 1
