"""Stopping on the scripted host: each test scripts how a fake child's group answers signals
(obeys, ignores SIGTERM, leaves members behind, leaves adopted orphans) and checks which signals
the host was asked to send, when on the fake clock, the states, and devup's lines: stop_timeout
and SIGKILL, leftovers after the leader exits, a restart that waits for its port, Ctrl-C during a
start, a second Ctrl-C, and `devup stop NAME` holding a service."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from orchestrator.ports.holders import Holder

from .fakehost import FakeMember, Run

API = """
    [devup]
    stop_timeout = 3
    [services.api]
    cmd = "python api.py"
    port = 3001
"""
TERM, KILL, INT = int(signal.SIGTERM), int(signal.SIGKILL), int(signal.SIGINT)


def ready(run: Run, name: str = "api", port: int = 3001) -> None:
    run.host.last(name).listen(port)
    run.until(lambda: run.state(name) == "ready", 1, f"{name} ready")


def test_a_stop_that_is_obeyed_sends_sigterm_only(tmp_path: Path) -> None:
    run = Run(tmp_path, API).start()
    ready(run)
    run.control("stop", "api")
    assert run.state("api") == "stopped"
    assert run.host.signals_to("api") == [TERM]
    assert run.lines()[-1] == "api: stop requested"


def test_a_group_that_ignores_sigterm_is_killed_after_stop_timeout(tmp_path: Path) -> None:
    run = Run(tmp_path, API).start()
    ready(run)
    run.host.last("api").ignores_term = True
    run.control("stop", "api")
    assert run.state("api") == "stopping"
    took = run.until(lambda: run.state("api") == "stopped", 10, "stopped")
    assert took == pytest.approx(3.0, abs=0.03)  # stop_timeout, polled every 20 ms
    assert run.host.signals_to("api") == [TERM, KILL]
    assert "api did not stop within 3s, sending SIGKILL" in run.lines()


def test_the_stop_signal_of_the_service_is_sent(tmp_path: Path) -> None:
    run = Run(tmp_path, API + 'stop_signal = "SIGINT"\n').start()
    run.control("stop", "api")
    assert run.host.signals_to("api") == [INT]


def test_members_of_the_group_that_outlive_the_leader_are_stopped(tmp_path: Path) -> None:
    run = Run(tmp_path, API + 'restart = "no"\n').start()
    ready(run)
    child = run.host.last("api")
    child.leave_behind(2)
    child.exit(0)
    run.step()
    assert "api: processes of its group outlived it, stopping them" in run.lines()
    assert run.host.signals_to("api") == [TERM]
    assert child.members == []


def test_leftovers_that_ignore_sigterm_are_killed_after_stop_timeout(tmp_path: Path) -> None:
    run = Run(tmp_path, API + 'restart = "no"\n').start()
    child = run.host.last("api")
    child.leave_behind(1, ignores_term=True)
    child.exit(0)
    took = run.until(lambda: not child.members, 10, "leftovers gone")
    assert took == pytest.approx(3.0, abs=0.03)
    assert run.host.signals_to("api") == [TERM, KILL]
    assert "api: its leftovers did not stop within 3s, sending SIGKILL" in run.lines()


def test_a_crash_restart_waits_for_the_leftovers_to_be_gone(tmp_path: Path) -> None:
    run = Run(tmp_path, API).start()
    child = run.host.last("api")
    child.leave_behind(1, ignores_term=True)
    child.exit(1)
    run.advance(2.0)  # past the 0.5 s backoff: the leftover still holds on
    assert run.state("api") == "restarting"
    assert len(run.host.spawned("api")) == 1
    run.until(lambda: len(run.host.spawned("api")) == 2, 10, "started again")
    assert run.host.signals_to("api") == [TERM, KILL]
    assert run.clock.now - 1000.0 == pytest.approx(3.0, abs=0.05)


def test_a_restart_waits_for_its_port_to_be_free(tmp_path: Path) -> None:
    run = Run(tmp_path, API).start()
    ready(run)
    run.host.busy_ports.add(3001)  # a stray server took the port meanwhile
    run.host.last("api").exit(1)
    run.advance(0.5 + 5.5)
    assert run.state("api") == "restarting"
    assert len(run.host.spawned("api")) == 1
    assert "api: port 3001 is still in use, waiting for it to be free" in run.lines()
    run.host.busy_ports.clear()
    run.advance(0.1)  # polled every 0.1 s
    assert len(run.host.spawned("api")) == 2
    assert run.state("api") == "starting"


def test_a_file_change_restart_waits_for_the_old_group_to_stop(tmp_path: Path) -> None:
    run = Run(tmp_path, API).start()
    ready(run)
    old = run.host.last("api")
    old.ignores_term = True
    run.change("api", "api.py")
    run.advance(1.0)
    assert run.state("api") == "stopping"
    assert len(run.host.spawned("api")) == 1  # never two at once
    run.until(lambda: len(run.host.spawned("api")) == 2, 5, "started again")
    assert not old.alive
    assert run.host.signals_to("api") == [TERM, KILL]


def test_ctrl_c_during_a_start_stops_it_and_its_waiting_dependents(tmp_path: Path) -> None:
    run = Run(tmp_path, API + '[services.web]\ncmd = "web"\nport = 3002\ndepends_on = ["api"]\n')
    run.start()
    assert run.states() == {"api": "starting", "web": "waiting"}
    run.signal(signal.SIGINT)
    assert run.exit_code == 130
    assert run.states() == {"api": "stopped", "web": "stopped"}
    assert run.host.signals_to("api") == [TERM]
    assert run.host.spawned("web") == []
    assert run.lines()[-2:] == [
        "SIGINT received, stopping all services",
        "all services stopped in 0.00s",
    ]


def test_ctrl_c_during_a_crash_backoff_starts_nothing_again(tmp_path: Path) -> None:
    run = Run(tmp_path, API).start()
    run.host.last("api").exit(1)
    run.step()
    assert run.state("api") == "restarting"
    run.signal(signal.SIGINT)
    run.advance(5)
    assert run.exit_code == 130
    assert len(run.host.spawned("api")) == 1


def test_a_second_ctrl_c_kills_everything_at_once(tmp_path: Path) -> None:
    run = Run(tmp_path, API).start()
    run.host.last("api").ignores_term = True
    run.signal(signal.SIGINT)
    assert run.exit_code is None
    run.signal(signal.SIGINT)
    assert run.host.signals_to("api") == [TERM, KILL]
    assert "second Ctrl-C: killing everything now" in run.lines()
    run.step()
    assert run.exit_code == 130


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_ends_the_run_with_its_exit_code(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    run = Run(tmp_path, API).start()
    run.signal(sig)
    assert run.exit_code == code
    assert f"{sig.name} received, stopping all services" in run.lines()


def test_shutdown_stops_dependents_before_what_they_depend_on(tmp_path: Path) -> None:
    run = Run(
        tmp_path, API + '[services.web]\ncmd = "web"\nport = 3002\ndepends_on = ["api"]\n'
    ).start()
    ready(run)
    ready(run, "web", 3002)
    run.signal(signal.SIGINT)
    assert [name for name, _gen, _sig in run.host.signals] == ["web", "api"]


def test_devup_stop_name_holds_the_service_and_the_run_goes_on(tmp_path: Path) -> None:
    toml = API + '[services.job]\ncmd = "job"\nport = false\nrestart = "no"\n'
    run = Run(tmp_path, toml, watching=False).start()
    run.control("stop", "api")
    run.host.last("job").exit(0)
    run.advance(60)
    assert run.states() == {"api": "stopped", "job": "stopped"}
    assert run.exit_code is None  # held by `devup stop api`: waits for `devup start api`
    assert len(run.host.spawned("api")) == 1
    run.control("start", "api")
    assert run.state("api") == "starting"
    assert len(run.host.spawned("api")) == 2


def test_a_held_service_is_not_restarted_by_a_crash_backoff(tmp_path: Path) -> None:
    run = Run(tmp_path, API).start()
    run.host.last("api").exit(1)
    run.step()
    run.control("stop", "api")
    run.advance(60)
    assert run.state("api") == "stopped"
    assert len(run.host.spawned("api")) == 1


def test_adopted_orphans_of_the_last_process_are_stopped_before_the_restart(
    tmp_path: Path,
) -> None:
    run = Run(tmp_path, API, run_id="r1").start()
    child = run.host.last("api")
    marker = child.env["DEVUP_RUN_ID"]
    daemon = FakeMember(run.host.new_pid(), marker=marker)
    run.host.adopted.append(daemon)
    child.exit(1)
    run.advance(0.5)
    assert run.host.orphan_signals == [(daemon.pid, TERM)]
    assert f"api: stopping what its last process left running (pid {daemon.pid})" in run.lines()
    run.advance(0.1)
    assert len(run.host.spawned("api")) == 2


def test_ready_timeout_names_another_program_holding_the_port(tmp_path: Path) -> None:
    run = Run(tmp_path, API + "ready_timeout = 2\n").start()
    run.host.holders[3001] = [Holder(77, "nginx", "nginx", "root", "/", "127.0.0.1:3001")]
    run.advance(2.0)
    assert run.state("api") == "running"
    assert (
        "api not ready after 2s (port 3001 is held by nginx (pid 77), not by api); starting its "
        "dependents anyway"
    ) in run.lines()


CHAIN = """
    [services.db]
    cmd = "db"
    port = 3001
    [services.api]
    cmd = "api"
    port = 3002
    restart = "no"
    depends_on = ["db"]
"""


def api_exited_leaving_a_stubborn_member(tmp_path: Path) -> tuple[Run, object]:
    """api's leader exited; a member of its group ignores SIGTERM, so it is being stopped."""
    run = Run(tmp_path, CHAIN).start()
    ready(run, "db", 3001)
    ready(run, "api", 3002)
    api = run.host.last("api")
    api.leave_behind(1, ignores_term=True)
    api.exit(1)
    run.step()
    assert run.state("api") == "stopped"
    run.control("restart", "db")
    run.control("start", "api")  # while its leftovers are still being stopped
    return run, api


def test_a_start_while_the_leftovers_are_stopped_waits_for_them(tmp_path: Path) -> None:
    run, old = api_exited_leaving_a_stubborn_member(tmp_path)
    run.host.last("db").listen(3001)
    run.until(lambda: len(run.host.spawned("api")) == 2, 10, "api started again")
    assert not old.group_alive  # the old group was killed before the new one started
    assert "api: its leftovers did not stop within 5s, sending SIGKILL" in run.lines()


def test_ctrl_c_while_a_start_waits_for_the_leftovers_stops_them(tmp_path: Path) -> None:
    run, old = api_exited_leaving_a_stubborn_member(tmp_path)
    run.signal(signal.SIGINT)  # was: TransitionError waiting -> stopping, a traceback
    run.until(lambda: run.sup.exit_code is not None, 10, "the run to end")
    assert run.sup.exit_code == 130
    assert not old.group_alive and len(run.host.spawned("api")) == 1
