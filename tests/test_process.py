"""How a service's command line is handed to the shell: one program is exec'd (the group's
leader is the program itself), anything else runs as written."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil
import pytest
from conftest import wait_for

from orchestrator.system import process
from orchestrator.system.process import shell_line

ENV = {"PATH": os.environ.get("PATH", os.defpath)}


@pytest.mark.parametrize(
    ("cmd", "expected"),
    [
        ("sleep 5", "exec sleep 5"),
        ("sleep $DELAY", "exec sleep $DELAY"),
        ("./bin/server --port 1", "exec ./bin/server --port 1"),
        ("A=1 sleep 5", "A=1 sleep 5"),  # an assignment: `exec A=1` would be a program named A=1
        ("cd src && sleep 5", "cd src && sleep 5"),
        ("sleep 5; echo done", "sleep 5; echo done"),
        ("sleep 5 | cat", "sleep 5 | cat"),
        ("sleep 5 &", "sleep 5 &"),
        ("(sleep 5)", "(sleep 5)"),
        ("exec sleep 5", "exec sleep 5"),
        ("export A=1", "export A=1"),  # a builtin: no such program on the PATH
        ('echo "a\\tb"', 'echo "a\\tb"'),  # a builtin that is also /bin/echo, which differs
        ("kill -0 1", "kill -0 1"),
        ("no-such-program-here x", "no-such-program-here x"),
        ('sleep "5', 'sleep "5'),  # unbalanced quote: the shell reports it as written
    ],
)
def test_only_one_program_with_its_arguments_is_execd(cmd: str, expected: str) -> None:
    assert shell_line(cmd, ENV) == expected


@pytest.mark.parametrize(
    ("cmd", "leader", "below"), [("sleep 30", "sleep", []), ("sleep 30; true", "sh", ["sleep"])]
)
def test_the_group_leader_is_the_program_when_it_is_execd(
    cmd: str, leader: str, below: list[str], tmp_path: Path
) -> None:
    child = process.spawn(cmd, tmp_path, dict(os.environ))
    try:
        proc = psutil.Process(child.pid)
        # Once sleep runs (the leader itself, or a child of the shell), the shape is final.
        wait_for(lambda: "sleep" in [p.name() for p in [proc, *proc.children()]], 10, what="sleep")
        assert (proc.name(), [p.name() for p in proc.children()]) == (leader, below)
        assert os.getpgid(child.pid) == child.pid
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.popen.wait(10)
        assert child.popen.stdout is not None
        child.popen.stdout.close()
    # The sleep below the shell got SIGKILL with it but may take a moment to die: wait for it.
    wait_for(lambda: not process.group_members(child.group), 10, what="the group to be gone")


@pytest.mark.parametrize("cmd", ["no-such-program-here x", "./bin/no-such-program x"])
def test_a_missing_program_still_exits_127_as_the_shell_says(cmd: str, tmp_path: Path) -> None:
    """The second is exec'd (it names a path), the first is not (nothing on the PATH)."""
    child = process.spawn(cmd, tmp_path, dict(os.environ))
    assert child.popen.stdout is not None
    output = child.popen.stdout.read()
    child.popen.stdout.close()
    assert child.popen.wait(10) == 127
    assert b"not found" in output


def test_a_group_whose_leader_is_unreaped_is_signalled_without_listing_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stop of a restart goes out at once: while the leader is devup's unreaped child, its
    group id cannot belong to anyone else, so the machine's processes are not listed first."""
    child = process.spawn("sleep 30; true", tmp_path, dict(os.environ))
    proc = psutil.Process(child.pid)
    wait_for(lambda: [p.name() for p in proc.children()] == ["sleep"], 10, what="sleep")
    members = process.group_members(child.group)

    def no_listing() -> list[int]:
        raise AssertionError("listed every process to signal a group it knows is its own")

    with monkeypatch.context() as m:
        m.setattr(psutil, "pids", no_listing)
        assert process.signal_group(child.group, signal.SIGKILL, leader_unreaped=True)
    assert child.popen.wait(10) == -signal.SIGKILL
    assert child.popen.stdout is not None
    child.popen.stdout.close()
    psutil.wait_procs(members, timeout=10)
    assert not process.group_members(child.group)  # the sleep below the shell got it too
    # Reaped, the leader's id may be reused: only the listing can say the group is still ours.
    assert not process.signal_group(child.group, signal.SIGKILL)


def test_a_leader_s_start_time_is_psutil_s_to_the_bit() -> None:
    """process.created_at reads /proc as psutil does (not importing it before the first spawn):
    a group's identity is later compared with psutil's create_time, within 10 ms."""
    child = subprocess.Popen(["sleep", "5"])
    try:
        for pid in (os.getpid(), child.pid, 1):
            assert process.created_at(pid) == psutil.Process(pid).create_time()
    finally:
        child.kill()
        child.wait()
