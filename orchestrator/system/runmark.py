"""What ties a process to the devup run that started it: an environment marker on every child
(`DEVUP_RUN_ID=<run id>:<service>`, inherited by its children and daemons), and the boot and pid
namespace a run record was written in (a pid means nothing outside them).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # psutil is imported where it is used: not on the path to the first spawn
    import psutil


RUN_ENV = "DEVUP_RUN_ID"


def new_run_id() -> str:
    return os.urandom(16).hex()  # as random as uuid4().hex, without importing uuid (and platform)


def marker(run_id: str, service: str) -> str:
    return f"{run_id}:{service}"


@functools.cache
def boot_id() -> str:
    """This boot's identity: the kernel's random boot id (Linux), else the boot time."""
    with contextlib.suppress(OSError), open("/proc/sys/kernel/random/boot_id") as f:
        return f.read().strip()
    import psutil

    return f"boot-time:{psutil.boot_time():.0f}"  # macOS: kern.boottime


@functools.cache
def pid_namespace() -> str | None:
    """The pid namespace devup runs in (Linux: `pid:[4026531836]`); None where there are none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def carries(proc: psutil.Process, value: str) -> bool:
    """Whether the process's environment holds this marker exactly; False if it cannot be read
    (another user's process, gone, or a process that scrubbed or overwrote its environment)."""
    import psutil

    try:
        return proc.environ().get(RUN_ENV) == value
    except (psutil.Error, OSError):
        return False


def marked_processes(
    run_id: str, pids: Iterable[int] | None = None
) -> dict[str, list[psutil.Process]]:
    """Live processes of this user that carry a marker of `run_id`, by service name.

    Reads the environment of each of the user's processes (only theirs: another user's is
    unreadable anyway); a run id is a random UUID, so nothing else carries it.
    """
    import psutil

    prefix = run_id + ":"
    uid = os.getuid()
    found: dict[str, list[psutil.Process]] = {}
    me = os.getpid()
    for pid in psutil.pids() if pids is None else pids:
        if pid == me:
            continue
        try:
            proc = psutil.Process(pid)
            if proc.uids().real != uid or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            value = proc.environ().get(RUN_ENV, "")
        except (psutil.Error, OSError):
            continue
        if value.startswith(prefix):
            found.setdefault(value[len(prefix) :], []).append(proc)
    return found
