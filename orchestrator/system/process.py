"""One child process group: spawning it in its own session, signalling the group safely, and
telling when the whole group is gone. Knows nothing of services or policy.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shlex
import shutil
import signal
import subprocess
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from orchestrator.system.runmark import RUN_ENV, carries

if TYPE_CHECKING:  # psutil is imported where it is used: not on the path to the first spawn
    import psutil

START_SLACK_S = 0.01  # create_time is derived from clock ticks; the same process reads the same


class GroupId(NamedTuple):
    """A process group as devup started it: the leader's pid (= pgid), its start time, and the
    environment marker its processes carry (runmark.py; None for a group started without one).

    These make signalling safe: a pgid can be reused once its group is gone. While the leader
    lives, its start time says whether it is still ours; once it is gone, only members that
    carry the marker are (the kernel frees a pgid only when its last member is gone, but after
    that a reused one holds only processes younger than our leader, so start times cannot tell).
    """

    pgid: int
    leader_started_at: float  # psutil create_time of the leader
    marker: str | None = None


class Child(NamedTuple):
    group: GroupId
    popen: subprocess.Popen[bytes]  # its stdout is the pipe carrying stdout and stderr

    @property
    def pid(self) -> int:
        return self.group.pgid


# Shell syntax after which `exec` would change what a command does (lists, pipes, subshells,
# groups, substitutions); quoting, variables and redirections are fine.
NOT_ONE_PROGRAM = re.compile(r"[;&|\n()`{}]")
# Shell builtins and keywords: several also exist as programs (/bin/echo, /usr/bin/test, ...) that
# behave differently (dash's echo expands \t, /bin/echo does not), so they are never exec'd.
# fmt: off
SHELL_WORDS = frozenset({
    "!", ".", ":", "[", "[[", "alias", "bg", "break", "cd", "command", "continue", "echo", "eval",
    "exec", "exit", "export", "false", "fc", "fg", "getopts", "hash", "jobs", "kill", "local",
    "printf", "pwd", "read", "readonly", "return", "set", "shift", "test", "time", "times", "trap",
    "true", "type", "ulimit", "umask", "unalias", "unset", "wait",
})
# fmt: on


def spawn(cmd: str, cwd: Path, env: dict[str, str]) -> Child:
    """Start `/bin/sh -c cmd` as the leader of a new session (and so of a new process group)."""
    popen = subprocess.Popen(
        ["/bin/sh", "-c", shell_line(cmd, env)],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        close_fds=True,
        bufsize=0,
    )
    assert popen.stdout is not None
    return Child(GroupId(popen.pid, created_at(popen.pid), env.get(RUN_ENV)), popen)


def created_at(pid: int) -> float:
    """psutil.Process(pid).create_time(), which the group's identity is compared with later.
    On Linux read as psutil 7 reads it (the stat file's start ticks over CLK_TCK, plus the boot
    time), without importing psutil (~15 ms): spawning the other services of the first turn
    does not wait for that import, which comes later, while they start."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            ticks = f.read().rpartition(b")")[2].split()[19]  # field 22, after `pid (comm)`
        return float(ticks) / _CLOCK_TICKS + _boot_time()
    except (OSError, IndexError, ValueError):
        pass
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return 0.0  # already gone and reaped is impossible (we have not waited): treat as 0


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@functools.cache
def _boot_time() -> float:
    with open("/proc/stat", "rb") as f:
        for line in f:
            if line.startswith(b"btime"):
                return float(line.split()[1])
    raise ValueError("no btime in /proc/stat")


def shell_line(cmd: str, env: Mapping[str, str]) -> str:
    """`exec cmd` when cmd is one program and its arguments, else cmd as written.

    The shell then becomes the program instead of forking it: the service starts a fork sooner,
    its pid is the program's, and there is no idle shell per service. Assignments (`A=1 cmd`),
    shell builtins and anything the PATH does not hold run as written.
    """
    if NOT_ONE_PROGRAM.search(cmd):
        return cmd
    try:
        words = shlex.split(cmd)
    except ValueError:
        return cmd  # unbalanced quotes: the shell's own error says it best
    if not words or "=" in words[0] or words[0] in SHELL_WORDS:
        return cmd
    program = words[0]
    if "/" not in program and shutil.which(program, path=env.get("PATH", os.defpath)) is None:
        return cmd
    return f"exec {cmd}"


def group_members(group: GroupId) -> list[psutil.Process]:
    """Live (non-zombie) processes of the group while it is still the group devup started:
    its leader is there with the recorded start time, or, once the leader is gone, the members
    that carry the group's marker (for a group without one: that started no earlier than it)."""
    import psutil

    try:
        os.killpg(group.pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        return []  # the pgid now belongs to another user: certainly not ours
    leader_here = _leader_here(group)
    if leader_here is False:
        return []  # the pid was reused: the group with that id is someone else's
    members = []
    # getpgid first: one cheap syscall per process; /proc is read only for the group's members
    # (a stop polls this every 20 ms, on machines with thousands of processes).
    for pid in psutil.pids():
        proc = _member(pid, group, leader_here)
        if proc is not None:
            members.append(proc)
    return members


def groups_members(groups: Collection[GroupId]) -> dict[GroupId, list[psutil.Process]]:
    """`group_members` of many groups in one pass over the processes (the listen audit of every
    service that became ready in a turn): O(processes + members), not O(groups x processes)."""
    import psutil

    found: dict[GroupId, list[psutil.Process]] = {group: [] for group in groups}
    live: dict[int, tuple[GroupId, bool | None]] = {}
    for group in groups:
        try:
            os.killpg(group.pgid, 0)
        except (ProcessLookupError, PermissionError):
            continue
        leader_here = _leader_here(group)
        if leader_here is not False:
            live[group.pgid] = (group, leader_here)
    if not live:
        return found
    for pid in psutil.pids():
        try:
            pgid = os.getpgid(pid)
        except OSError:
            continue
        if pgid in live:
            group, leader_here = live[pgid]
            proc = _member(pid, group, leader_here)
            if proc is not None:
                found[group].append(proc)
    return found


def _member(pid: int, group: GroupId, leader_here: bool | None) -> psutil.Process | None:
    """The process `pid` if it is a live member of the group devup started, else None."""
    import psutil

    try:
        if os.getpgid(pid) != group.pgid:
            return None
        proc = psutil.Process(pid)
        with proc.oneshot():
            status, created = proc.status(), proc.create_time()
    except (OSError, psutil.Error):
        return None
    if status == psutil.STATUS_ZOMBIE:
        return None
    if leader_here is None:
        # 10 ms slack: create_time is rounded differently on some platforms.
        if created + START_SLACK_S < group.leader_started_at:
            return None
        if group.marker is not None and not carries(proc, group.marker):
            return None
    return proc


def _leader_here(group: GroupId) -> bool | None:
    """True: the leader (zombie or not) is ours; False: its pid belongs to another process now;
    None: no process has that pid."""
    import psutil

    try:
        created = psutil.Process(group.pgid).create_time()
    except psutil.NoSuchProcess:
        return None
    except (psutil.Error, OSError):
        return False  # there but unreadable: not a process devup started
    return abs(created - group.leader_started_at) <= START_SLACK_S


def signal_group(group: GroupId, sig: int, *, leader_unreaped: bool = False) -> bool:
    """Send `sig` to the group if it is still the group devup started; False if it is gone.

    With `leader_unreaped` (its leader is our child, not yet waited for) no other group can have
    its id, so the signal goes out without listing every process of the machine first (and True
    may then mean a group of only the zombie leader).
    """
    import psutil

    if leader_unreaped:
        try:
            os.killpg(group.pgid, sig)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # none we may signal (macOS: only the zombie leader is left): the listing says
    members = group_members(group)
    if not members:
        return False
    try:
        os.killpg(group.pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        # A member we may not signal (setuid); signal the ones we can.
        for proc in members:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)
    return True


def describe_exit(status: int) -> tuple[str, int]:
    """`with code 1` / `from SIGKILL`, and the code a shell would report (128+N for signals)."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"from {name}", 128 + sig
    code = os.WEXITSTATUS(status)
    return f"with code {code}", code
