"""The one stream of state changes (run/changes.py) on the scripted host: every change reaches
every subscriber in order with the spawn it is about, each turn ends once, control requests are
answered through it, the listen audit hears readiness through it, and the debug trace prints it."""

from __future__ import annotations

import io
from pathlib import Path

from orchestrator.run import audit
from orchestrator.run.changes import (
    Changes,
    EventHandled,
    Notice,
    ServiceStateChanged,
    TurnEnded,
    once_per_turn,
)
from orchestrator.run.events import FilesChanged, SignalReceived
from orchestrator.run.states import State
from orchestrator.run.trace import DebugTrace

from .fakehost import Run

API = """
    [services.api]
    cmd = "python api.py"
    port = 3001
    [services.web]
    cmd = "python web.py"
    port = 3002
    depends_on = ["api"]
"""


def changes_of(notices: list[Notice]) -> list[str]:
    return [
        f"{n.name} {n.old.value}->{n.new.value} {n.generation}"
        for n in notices
        if isinstance(n, ServiceStateChanged)
    ]


def test_every_state_change_is_published_in_order_with_its_generation(tmp_path: Path) -> None:
    run = Run(tmp_path, API)
    heard: list[Notice] = []
    run.sup.subscribe(heard.append)
    run.start()
    run.host.last("api").listen(3001)
    run.until(lambda: run.state("web") == "starting", 1, "web started")
    run.host.last("web").listen(3002)
    run.until(lambda: run.state("web") == "ready", 1, "web ready")
    run.control("restart", "api", wait=False)
    run.until(lambda: run.state("api") == "starting", 5, "api started again")
    assert changes_of(heard) == [
        "api waiting->starting 1",
        "api starting->ready 1",
        "web waiting->starting 1",
        "web starting->ready 1",
        "api ready->stopping 1",
        "api stopping->restarting 1",
        "api restarting->starting 2",
    ]


def test_a_turn_ends_once_after_its_changes_and_a_quiet_turn_ends_too(tmp_path: Path) -> None:
    run = Run(tmp_path, API)
    heard: list[Notice] = []
    run.sup.subscribe(heard.append)
    run.start()
    assert isinstance(heard[-1], TurnEnded)
    ends = sum(isinstance(n, TurnEnded) for n in heard)
    run.sup.step(0)  # nothing queued, nothing due
    assert sum(isinstance(n, TurnEnded) for n in heard) == ends + 1
    assert changes_of(heard) == ["api waiting->starting 1"]


def test_the_run_record_subscriber_is_told_once_per_turn_that_changed_something(
    tmp_path: Path,
) -> None:
    run = Run(tmp_path, API)
    writes: list[dict[str, str]] = []
    run.sup.subscribe(once_per_turn(lambda: writes.append(run.states())))
    run.start()
    assert writes == [{"api": "starting", "web": "waiting"}]
    run.sup.step(0)
    assert len(writes) == 1  # a turn in which nothing changed writes nothing
    run.host.last("api").listen(3001)
    run.until(lambda: run.state("web") == "starting", 1, "web started")
    assert writes[-1] == {"api": "ready", "web": "starting"}  # both changes of that turn, once


def test_handled_events_are_published_before_what_they_change(tmp_path: Path) -> None:
    run = Run(tmp_path, API)
    heard: list[Notice] = []
    run.start()
    run.sup.subscribe(heard.append)
    run.events.put(SignalReceived(2))
    run.step()
    first = heard[0]
    assert isinstance(first, EventHandled) and first.event == SignalReceived(2)
    assert changes_of(heard[1:3]) == ["web waiting->stopped 0", "api starting->stopping 1"]


def test_a_change_published_while_subscribers_are_told_reaches_all_in_order() -> None:
    changes = Changes()
    first: list[str] = []
    second: list[str] = []

    def chain(notice: Notice) -> None:
        if isinstance(notice, ServiceStateChanged):
            first.append(notice.new.value)
            if notice.new is State.STOPPING:  # a follow-up change, told after this one
                changes.publish(ServiceStateChanged("api", State.STOPPING, State.STOPPED, 1))

    changes.subscribe(chain)
    changes.subscribe(
        lambda n: second.append(n.new.value) if isinstance(n, ServiceStateChanged) else None
    )
    changes.publish(ServiceStateChanged("api", State.READY, State.STOPPING, 1))
    assert first == second == ["stopping", "stopped"]


def test_unsubscribing_stops_the_notices() -> None:
    changes = Changes()
    heard: list[Notice] = []
    stop = changes.subscribe(heard.append)
    changes.publish(TurnEnded())
    stop()
    changes.publish(TurnEnded())
    assert len(heard) == 1


def test_a_restart_request_waiting_for_the_service_is_answered_once_it_is_ready(
    tmp_path: Path,
) -> None:
    run = Run(tmp_path, API)
    run.start()
    run.host.last("api").listen(3001)
    run.until(lambda: run.state("api") == "ready", 1, "api ready")
    run.control("restart", "api", wait=True)
    assert run.answers == []  # stopping, then restarting: not settled
    run.until(lambda: run.state("api") == "starting", 5, "api started again")
    assert run.answers == []
    run.host.last("api").listen(3001)
    run.until(lambda: bool(run.answers), 1, "the answer")
    assert run.answers == [{"ok": True, "services": {"api": "ready"}, "failed": []}]


def test_a_start_request_for_a_service_already_up_is_answered_in_the_same_turn(
    tmp_path: Path,
) -> None:
    run = Run(tmp_path, API)
    run.start()
    run.host.last("api").listen(3001)
    run.until(lambda: run.state("api") == "ready", 1, "api ready")
    run.control("start", "api", wait=True)
    assert run.answers == [{"ok": True, "services": {"api": "ready"}, "failed": []}]


def test_a_service_failing_while_starting_answers_the_request_as_failed(tmp_path: Path) -> None:
    run = Run(tmp_path, API)
    run.start()
    run.control("restart", "api", wait=True)
    run.until(lambda: run.state("api") == "starting", 5, "api started again")
    run.host.last("api").exit(1)
    run.step()
    assert run.answers == [{"ok": True, "services": {"api": "restarting"}, "failed": ["api"]}]


def test_the_listen_audit_hears_readiness_through_its_subscription(tmp_path: Path) -> None:
    run = Run(tmp_path, API)
    audit.install(run.sup)
    run.start()
    run.host.last("api").listen(3001, ip="0.0.0.0")
    run.until(lambda: run.state("api") == "ready", 1, "api ready")
    assert run.status("api")["listening"] == ["0.0.0.0:3001"]
    assert run.saw("api (pid ") and run.saw("listens on 0.0.0.0:3001: reachable from your network")
    assert run.status("web")["listening"] is None  # not ready yet: not audited


def test_a_crashed_service_lists_no_listener_of_the_process_that_crashed(tmp_path: Path) -> None:
    run = Run(tmp_path, API)
    audit.install(run.sup)
    run.start()
    run.host.last("api").listen(3001)
    run.until(lambda: run.state("api") == "ready", 1, "api ready")
    assert run.status("api")["listening_pids"] == [run.host.last("api").pid]
    run.host.last("api").exit(1)
    run.until(lambda: run.state("api") == "restarting", 1, "api restarting after its crash")
    assert (run.status("api")["listening"], run.status("api")["listening_pids"]) == (None, None)


def test_the_debug_trace_prints_events_and_changes_with_times_since_the_start(
    tmp_path: Path,
) -> None:
    run = Run(tmp_path, API)
    out = io.StringIO()
    run.sup.subscribe(DebugTrace(run.clock, out))
    run.start()
    run.clock.now += 0.1234
    run.events.put(FilesChanged("api", "src/app.py", seen_at=run.clock.now))
    run.step()
    lines = out.getvalue().splitlines()
    assert lines[0] == "devup[debug] +0.000s api waiting -> starting (gen 1)"
    assert "devup[debug] +0.123s event FilesChanged api src/app.py" in lines


def test_a_control_request_whose_handling_fails_is_answered_and_the_run_goes_on(
    tmp_path: Path,
) -> None:
    """A full disk while `devup reload` plans ports: the asker gets an error, not a wait until its
    own timeout; the services keep running."""
    import errno

    run = Run(tmp_path, API).start()

    def failing(sup: object, request: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    run.sup._on_control_request = failing  # what a failing live.reload() does to the handler
    run.control("reload")
    assert run.answers == [{"ok": False, "error": "devup failed: No space left on device"}]
    assert run.sup.exit_code is None and run.state("api") in ("starting", "ready", "running")


def test_a_stop_request_that_stopped_the_service_lists_no_failure(tmp_path: Path) -> None:
    run = Run(tmp_path, API)
    run.start()
    run.host.last("api").listen(3001)
    run.until(lambda: run.state("api") == "ready", 1, "api ready")
    run.control("stop", "api", wait=True)
    run.until(lambda: bool(run.answers), 1, "the answer")
    assert run.answers == [{"ok": True, "services": {"api": "stopped"}, "failed": []}]
