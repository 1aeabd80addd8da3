"""Who holds a port: the processes with a listening TCP socket on it, on any IPv4 or IPv6
address, via psutil (lsof where psutil may not look, as on macOS without root).
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from collections.abc import Callable
from typing import NamedTuple, TypeVar

LSOF_TIMEOUT_S = 5.0
UNKNOWN = "unknown"

T = TypeVar("T")


class Holder(NamedTuple):
    pid: int | None  # None: the socket's owner is not visible to us (another user's, on Linux)
    name: str
    cmdline: str
    user: str | None
    cwd: str | None
    address: str  # "127.0.0.1:3000", "[::]:3000", or lsof's "*:3000"


def find_holders(port: int) -> list[Holder]:
    """Every listener on `port`, one per (process, address), in the order the OS lists them."""
    import psutil

    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return _holders_from_lsof(port)
    found: list[Holder] = []
    seen: set[tuple[int | None, str]] = set()
    for conn in conns:
        if conn.status != psutil.CONN_LISTEN or not conn.laddr or conn.laddr.port != port:
            continue
        address = format_address(conn.laddr.ip, port)
        if (conn.pid, address) not in seen:
            seen.add((conn.pid, address))
            found.append(_holder(conn.pid, address))
    return found


def describe(holder: Holder) -> str:
    """`node (pid 4242)`; `an unknown process` when the owner is not visible to us."""
    if holder.pid is None:
        return "an unknown process" if holder.name == UNKNOWN else holder.name
    return f"{holder.name} (pid {holder.pid})"


def describe_all(holders: list[Holder]) -> str:
    """The distinct processes among `holders`, for one message line."""
    names = list(dict.fromkeys(describe(h) for h in holders))
    return ", ".join(names) if names else "an unknown process"


def _holder(pid: int | None, address: str, name: str = UNKNOWN) -> Holder:
    import psutil

    if pid is None:
        return Holder(None, name, "", None, None, address)
    try:
        proc = psutil.Process(pid)
    except psutil.Error:  # gone since the scan
        return Holder(pid, name, "", None, None, address)
    # Each attribute on its own: macOS lets us read another user's name but not its cwd.
    with proc.oneshot():
        return Holder(
            pid=pid,
            name=_try(proc.name, name),
            cmdline=" ".join(_try(proc.cmdline, [])),
            user=_try(proc.username, None),
            cwd=_try(proc.cwd, None),
            address=address,
        )


def _try(read: Callable[[], T], default: T) -> T:
    import psutil

    try:
        return read()
    except psutil.Error:
        return default


def format_address(ip: str, port: int) -> str:
    try:
        is_v6 = ipaddress.ip_address(ip.split("%")[0]).version == 6
    except ValueError:
        is_v6 = False
    return f"[{ip}]:{port}" if is_v6 else f"{ip}:{port}"


def _holders_from_lsof(port: int) -> list[Holder]:
    """lsof's field output (-F pcn): a `p<pid>` line starts a process, `c<command>` names it,
    and each `n<address>` line is one listening socket of it."""
    # macOS keeps lsof in /usr/sbin, which a minimal PATH may lack.
    lsof = shutil.which("lsof") or shutil.which("lsof", path="/usr/sbin:/usr/bin:/sbin")
    if lsof is None:
        return []
    try:
        out = subprocess.run(
            [lsof, "-nP", f"-iTCP:{port}", "-sTCP:LISTEN", "-F", "pcn"],
            capture_output=True,
            text=True,
            timeout=LSOF_TIMEOUT_S,
            check=False,  # exit 1 just means nothing listens
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    found: list[Holder] = []
    pid: int | None = None
    command = UNKNOWN
    for line in out.splitlines():
        tag, value = line[:1], line[1:]
        if tag == "p":
            pid, command = int(value), UNKNOWN
        elif tag == "c":
            command = value
        elif tag == "n" and pid is not None:
            holder = _holder(pid, value, name=command)
            if holder not in found:
                found.append(holder)
    return found
