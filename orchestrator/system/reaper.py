"""devup as child subreaper (Linux): orphans of its services (a daemon that forked away from its
parent, even one that left the service's process group with setsid) are re-parented to devup
instead of init, so they stay reachable; at the end of a run devup stops what it adopted.

The supervisor reaps them (Supervisor._reap_others). macOS has no subreaper: there an orphan that
left its service's process group goes to launchd and only its group's stop reaches it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from orchestrator.system import runmark

if TYPE_CHECKING:  # psutil is imported where it is used: not on the path to the first spawn
    import psutil

PR_SET_CHILD_SUBREAPER = 36
POLL_S = 0.02


def become_subreaper() -> bool:
    """Ask the kernel to re-parent orphaned descendants to this process; False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # here: only `devup up` needs it

    try:
        # dlopen(NULL): the symbols already loaded, libc's among them. find_library("c") would
        # run `ldconfig -p` in a child process on every start (~10 ms before the first spawn).
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def adopted(*, fast: bool = False) -> list[psutil.Process]:
    """Live children of devup; once every service group is gone these are all adopted orphans.

    fast: from /proc/self/task/*/children, which the kernel does not promise to be complete
    while children come and go; for a check that is repeated, not for the final sweep.
    """
    import psutil

    pids = _children_pids() if fast else None
    if pids is None:
        try:
            pids = [child.pid for child in psutil.Process().children()]
        except psutil.Error:
            return []
    alive = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            child = psutil.Process(pid)
            if child.status() != psutil.STATUS_ZOMBIE:
                alive.append(child)
    return alive


def _children_pids() -> list[int] | None:
    """devup's children from /proc/self/task/*/children (Linux, CONFIG_PROC_CHILDREN): a few
    small reads, where psutil reads the parent of every process of the machine. None if absent."""
    if not os.path.exists(f"/proc/self/task/{os.getpid()}/children"):
        return None
    pids: list[int] = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children", "rb") as f:
                pids.extend(int(pid) for pid in f.read().split())
        except OSError:
            continue  # a thread that ended meanwhile
    return pids


def adopted_from(marker: str, leaders: set[int]) -> list[psutil.Process]:
    """Adopted orphans that came from one service: they carry its environment marker
    (runmark.py). `leaders` are the current services' leaders, which are not orphans."""
    return [p for p in adopted(fast=True) if p.pid not in leaders and runmark.carries(p, marker)]


def signal_adopted(orphans: list[psutil.Process], sig: int) -> None:
    """Signal orphans (and the groups they lead); safe by pid: unreaped children of ours."""
    for orphan in orphans:
        _signal(orphan.pid, sig)


def stop_adopted(
    timeout_s: float,
    say: Callable[[str], None],
    *,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Stop adopted orphans (their own groups too): SIGTERM, SIGKILL after timeout_s; reap them.

    Signalling them is safe by pid: a child of ours keeps its pid until we reap it. Returns how
    many were stopped. Their own orphans land here in turn and are stopped in the same loop.
    """
    signalled: set[int] = set()
    deadline = clock() + timeout_s
    killing = False
    while True:
        _reap_all()
        children = adopted()
        if not children:
            _reap_all()  # one may have turned zombie since the reap above
            break
        now = clock()
        if not killing and now >= deadline:
            killing = True
            say(f"{len(children)} adopted orphan processes did not stop, sending SIGKILL")
        for child in children:
            if killing or child.pid not in signalled:
                _signal(child.pid, signal.SIGKILL if killing else signal.SIGTERM)
                signalled.add(child.pid)
        if killing and now >= deadline + 2.0:
            break  # unkillable (D state): nothing more to do
        try:
            time.sleep(POLL_S)  # polling the kernel for their exits
        except KeyboardInterrupt:
            deadline = now  # Ctrl-C while waiting: kill at once, as the supervisor does
    if signalled:
        noun = "process" if len(signalled) == 1 else "processes"
        say(f"stopped {len(signalled)} orphaned {noun} that outlived their service")
    return len(signalled)


def _signal(pid: int, sig: int) -> None:
    # A setsid daemon leads its own group: signal the whole of it while we hold its leader.
    with contextlib.suppress(OSError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
            return
    with contextlib.suppress(OSError):
        os.kill(pid, sig)


def reap_exited() -> Iterator[tuple[int, int]]:
    """(pid, wait status) of every child that has exited, reaping each; stops when none is left."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, status


def _reap_all() -> None:
    for _ in reap_exited():
        pass
