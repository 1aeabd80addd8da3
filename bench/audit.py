"""The listen audit's cost per call (group_listeners, run on the supervisor's thread at each
service's ready and 1 s and 5 s later): the kernel's listening sockets over netlink sock_diag
matched to the group's socket fds (devup on Linux), side by side with psutil's per-process
net_connections (the fallback, which reads /proc/net/tcp and tcp6), on the same real group.

    PYTHONPATH=. python bench/audit.py [--calls 200] [--other-listeners 0]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.ports.listening import is_listening, listen_sockets
from orchestrator.run import audit
from orchestrator.system.process import group_members, spawn


def median_ms(fn: Callable[[], object], calls: int) -> float:
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument(
        "--other-listeners", type=int, default=0, help="listening sockets held outside the group"
    )
    args = parser.parse_args()
    others = []
    for _ in range(args.other_listeners):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        others.append(sock)
    port = free_port()
    cmd = f"{sys.executable} -m http.server {port} --bind 127.0.0.1"
    with tempfile.TemporaryDirectory() as tmp:
        child = spawn(cmd, Path(tmp), dict(os.environ))
        try:
            deadline = time.monotonic() + 10
            while not is_listening(port):
                assert time.monotonic() < deadline, "http.server did not listen"
                time.sleep(0.02)
            group = child.group
            by_kernel = audit.group_listeners(group)
            by_psutil = audit._listeners_by_psutil(group_members(group))
            assert by_kernel == by_psutil, (by_kernel, by_psutil)
            listed = listen_sockets()
            assert listed is not None, "netlink sock_diag is refused here: psutil answers"
            with open("/proc/net/tcp") as tcp, open("/proc/net/tcp6") as tcp6:
                entries = len(tcp.readlines()) + len(tcp6.readlines()) - 2
            print(
                f"group_listeners of `python -m http.server` ({by_kernel[0].address}), median of "
                f"{args.calls} calls; {len(listed)} listening sockets on the machine, "
                f"{entries} /proc/net/tcp{{,6}} entries, {len(os.listdir('/proc'))} /proc entries"
            )
            rows = [
                ("devup (netlink + /proc/PID/fd)", lambda: audit.group_listeners(group)),
                (
                    "psutil net_connections",
                    lambda: audit._listeners_by_psutil(group_members(group)),
                ),
                ("  of which group_members", lambda: group_members(group)),
                ("  netlink dump, every listener", listen_sockets),
            ]
            for label, fn in rows:
                print(f"  {label:<34} {median_ms(fn, args.calls):7.2f} ms")
        finally:
            os.killpg(child.pid, signal.SIGKILL)
            child.popen.wait()
            for sock in others:
                sock.close()


if __name__ == "__main__":
    main()
