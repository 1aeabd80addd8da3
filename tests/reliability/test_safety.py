"""Never another's process: what the next run takes for a killed run's leftovers (recorded groups
still its own, processes carrying its run marker), and a daemonizing service's adopted orphan
stopped with it. Real processes; the records are written as a killed devup would leave them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import DevupProcess, Project, wait_for

from orchestrator.base.paths import project_state_dir
from orchestrator.config.manifest import load_manifest
from orchestrator.ports.allocation import is_port_free
from orchestrator.run.recovery import find_leftovers, stop_leftovers
from orchestrator.system import runmark, runstate
from tests.reliability.records import PROC, recorded, same_process

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytest.fixture
def unrelated() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Process groups devup never started (their own sessions); killed at the end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for popen in started:
        with contextlib.suppress(OSError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait(10)


def setsid_job(started: list[subprocess.Popen[bytes]], cmd: str) -> subprocess.Popen[bytes]:
    popen = subprocess.Popen(["/bin/sh", "-c", cmd], start_new_session=True)
    started.append(popen)
    return popen


def record_of(groups: dict[str, tuple[int, float]], **fields: object) -> dict[str, object]:
    """A run record as this boot's devup writes it, with `fields` replaced."""
    return {
        "version": 2,
        "pid": 4100,
        "run_id": runmark.new_run_id(),
        "boot_id": runmark.boot_id(),
        "pid_ns": runmark.pid_namespace(),
        "services": {n: {"pgid": g, "started_at": t} for n, (g, t) in groups.items()},
        **fields,
    }


def test_a_pgid_now_leading_an_unrelated_setsid_job_is_not_killed(
    tmp_path: Path, unrelated: list[subprocess.Popen[bytes]]
) -> None:
    """The recorded leader's pid came back as the leader of someone's `setsid` job: another
    start time, so not ours, though all its processes are younger than the recorded leader."""
    job = setsid_job(unrelated, "exec sleep 60")
    started = psutil.Process(job.pid).create_time()
    write_record(tmp_path, record_of({"api": (job.pid, started - 5.0)}))
    said: list[str] = []
    assert stop_leftovers(tmp_path, manifest_in(tmp_path), said.append) == []
    assert said == []
    assert job.poll() is None
    assert runstate.read_state(tmp_path) is None  # nothing of it is ours: the record goes


def test_a_pgid_whose_new_leader_left_only_unmarked_members_is_not_killed(
    unrelated: list[subprocess.Popen[bytes]],
) -> None:
    """The reused pgid's own leader has exited too: its members are younger than the recorded
    leader (what the old check accepted) but do not carry the killed run's marker."""
    job = setsid_job(unrelated, "sleep 60 & exit 0")
    job.wait(10)
    member = next(p for p in psutil.process_iter() if _pgid(p.pid) == job.pid)
    record = record_of({"api": (job.pid, member.create_time() - 5.0)})
    assert find_leftovers(record) == []
    assert member.is_running()


@pytest.mark.parametrize(
    ("fields", "ours"),
    [
        ({}, True),  # the control: the same record from this boot is acted on
        ({"boot_id": "3f1c0a52-another-boot"}, False),
        ({"pid_ns": "pid:[1]"}, False),
        ({"boot_id": None, "pid_ns": None}, False),  # a record from before they were kept
    ],
)
def test_a_record_from_another_boot_or_pid_namespace_is_not_acted_on(
    unrelated: list[subprocess.Popen[bytes]], fields: dict[str, object], ours: bool
) -> None:
    """Its pgid leads a live group with exactly the recorded start time: only the boot id and
    the pid namespace say the record is not about this group."""
    job = setsid_job(unrelated, "exec sleep 60")
    record = record_of({"api": (job.pid, psutil.Process(job.pid).create_time())}, **fields)
    found = find_leftovers(record)
    assert [(item.name, item.group and item.group.pgid) for item in found] == (
        [("api", job.pid)] if ours else []
    )


def test_a_process_spawned_before_its_group_was_recorded_is_stopped_and_its_lease_kept(
    project: Project, records: Path, running: list[DevupProcess]
) -> None:
    """devup was SIGKILLed between a spawn and the run.json write: the record names the run
    (its id) but not the group. The next run finds the server by its marker, stops it, and
    gives api its leased port (not a temporary one because "someone" holds it)."""
    project.write(f'[services.api]\ncmd = "{PROC} server"\n')
    leased = json.loads(project.devup("ports", "--json").stdout)["services"]["api"]["port"]
    run_id = runmark.new_run_id()
    write_record(project.root, record_of({}, run_id=run_id))
    orphan = subprocess.Popen(
        ["/bin/sh", "-c", f"exec {PROC} server"],
        env={
            **os.environ,
            "PORT": str(leased),
            runmark.RUN_ENV: runmark.marker(run_id, "api"),
        },
        start_new_session=True,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: not is_port_free(leased), 20, what="the orphan to listen")
        run = project.start("--no-watch")
        running.append(run)
        run.expect_line(
            r"stopped 1 process left by a killed devup \(pid 4100\): "
            rf"api \(pid {orphan.pid}\)"
        )
        run.expect_line(rf"api started \(pid \d+, PORT={leased}\)")
        run.expect_line(r"1 service up")
        assert orphan.wait(10) == -signal.SIGTERM
        assert run.stop() == 130
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()


def test_a_daemonizing_service_is_restarted_and_stopped_with_its_daemon(
    project: Project, records: Path, running: list[DevupProcess]
) -> None:
    """`redis-server --daemonize yes`: the command forks a setsid daemon holding the port and
    exits 0. `devup restart` stops that daemon (devup adopted it) before starting the new one,
    instead of waiting for ever for the port; `devup stop` stops it too."""
    project.write(f'[services.api]\ncmd = "{PROC} daemonize-server"\n', devup="stop_timeout = 2\n")
    run = project.start()  # watching: the run stays up after its only command exited 0
    running.append(run)
    port = int(run.expect_line(r"api started \(pid \d+, PORT=(\d+)\)").group(1))
    run.expect_line(r"api exited with code 0")
    first = wait_for(lambda: answering_pid(port), 20, what="the daemon to answer")

    assert project.devup("restart", "api", "--no-wait").returncode == 0
    run.expect_line(rf"api: stopping what its last process left running \(pid {first}\)")
    second = wait_for(
        lambda: (pid := answering_pid(port)) not in (None, first) and pid, 20, what="a new daemon"
    )
    assert not psutil.pid_exists(first) or psutil.Process(first).status() == "zombie"

    assert project.devup("stop", "api").returncode == 0
    wait_for(lambda: is_port_free(port), 10, what="the second daemon to be stopped")
    daemons = [e for e in recorded(records) if e["role"] == "daemonize-server-daemon"]
    assert {e["pid"] for e in daemons} == {first, second}
    assert all(same_process(e) is None for e in daemons)
    assert run.stop() == 130


def test_the_run_record_is_written_once_per_turn_and_only_when_it_changed(
    tmp_path: Path,
) -> None:
    """Five workers start in one turn of the loop (ten state changes): one write. The same
    record again: no write."""
    from orchestrator.cli.up import _record_run
    from orchestrator.output.printer import Printer
    from orchestrator.run.supervisor import Supervisor

    names = [f"w{i}" for i in range(5)]
    (tmp_path / "devports.toml").write_text(
        "[devup]\nstop_timeout = 1\n"
        + "".join(f'[services.{n}]\ncmd = "sleep 30"\nport = false\n' for n in names)
    )
    manifest = load_manifest(tmp_path / "devports.toml")
    writes: list[int] = []
    record = _record_run(tmp_path, runmark.new_run_id())

    def on_change(sup: Supervisor) -> None:
        before = _inode(tmp_path)
        record(sup)
        if _inode(tmp_path) != before:
            writes.append(sum(1 for s in sup.services.values() if s.group is not None))

    sup = Supervisor(
        manifest,
        names,
        dict.fromkeys(names),
        {n: dict(os.environ) for n in names},
        Printer(names, lambda _b: None, color=False),
        watching=False,
        on_change=on_change,
        run_id=runmark.new_run_id(),
    )
    at_first_turn: list[int] = []

    def first_turn() -> None:
        at_first_turn.append(len(writes))
        record(sup)  # nothing changed since the last write
        at_first_turn.append(len(writes))
        sup.shutdown(0)

    sup.timers.call_later(0, first_turn)
    assert sup.run() == 0
    assert at_first_turn == [1, 1]
    assert writes[0] == 5  # that one write names all five groups


def answering_pid(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as reply:
            return int(reply.read())
    except OSError:
        return None


def write_record(root: Path, record: dict[str, object]) -> None:
    folder = project_state_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / runstate.STATE_NAME).write_text(json.dumps(record))


def manifest_in(folder: Path):  # type: ignore[no-untyped-def]
    (folder / "devports.toml").write_text('[services.api]\ncmd = "true"\nport = false\n')
    return load_manifest(folder / "devports.toml")


def _inode(root: Path) -> int | None:
    try:
        return (project_state_dir(root) / runstate.STATE_NAME).stat().st_ino
    except FileNotFoundError:
        return None


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None
