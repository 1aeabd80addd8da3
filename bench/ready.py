"""How soon devup knows a service is ready: from the child's listen() to devup's line, for a server
on its PORT (the summary) and one that ignores PORT (`ignored PORT=... listens on ...`; the issue
asks for under 1 s). Also the readiness probe's cost per call while a service starts (it runs
every 10-50 ms): ReadyProbe.poll (the group's own listeners) beside the old "anything listens on
PORT" check (listening.is_listening), on the same real group.

    PYTHONPATH=. python bench/ready.py [--runs 5] [--calls 300]
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from orchestrator.ports.listening import is_listening
from orchestrator.run.readiness import ReadyProbe
from orchestrator.system.process import signal_group, spawn

REPO = Path(__file__).resolve().parent.parent

# Listens after 0.3 s on $PORT (or on a port given), prints the monotonic clock right after.
CHILD = """
import os, socket, sys, time
time.sleep(0.3)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ["PORT"])))
s.listen()
print("listening at", time.monotonic(), flush=True)
time.sleep(60)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_run(root: Path, other_port: int | None, line: str) -> float:
    """Seconds from the child's listen() to devup printing a line matching `line`."""
    child = root / "child.py"
    child.write_text(CHILD)
    arg = f" {other_port}" if other_port else ""
    (root / "devports.toml").write_text(
        f'[devup]\nports = "41000-41199"\n[services.api]\ncmd = "{sys.executable} {child}{arg}"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "--no-watch"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
        # This checkout's devup, not whichever is installed (the run's cwd is elsewhere).
        env={**os.environ, "DEVUP_HOME": str(root / "home"), "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    listened = said = None
    try:
        # devup's line may come before the child's own (it is read from another pipe).
        for text in proc.stdout:
            seen = time.monotonic()
            found = re.search(r"listening at (\S+)", text)
            if found:
                listened = float(found.group(1))
            if said is None and re.search(line, text):
                said = seen
            if listened is not None and said is not None:
                return said - listened
        raise RuntimeError("devup ended")
    finally:
        proc.send_signal(2)
        proc.wait(20)


def probe_cost(calls: int) -> tuple[float, float]:
    port = free_port()
    child = spawn(f"{sys.executable} -c 'import time; time.sleep(60)'", Path("/"), dict(os.environ))
    try:
        probe = ReadyProbe(child.group, port, time.monotonic)
        results = []
        for fn in (probe.poll, lambda: is_listening(port)):
            samples = []
            for _ in range(calls):
                started = time.perf_counter()
                fn()
                samples.append(time.perf_counter() - started)
            results.append(statistics.median(samples) * 1000)
        return results[0], results[1]
    finally:
        signal_group(child.group, 9, leader_unreaped=True)
        child.popen.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        on_port = [one_run(root, None, r"1 service up") for _ in range(args.runs)]
        elsewhere = [one_run(root, free_port(), r"ignored PORT=") for _ in range(args.runs)]
    for label, samples in (("on PORT", on_port), ("ignores PORT", elsewhere)):
        median = statistics.median(samples) * 1000
        print(
            f"listen() -> devup's line, {label:<13} median {median:5.0f} ms"
            f" (min {min(samples) * 1000:.0f}, max {max(samples) * 1000:.0f}, {len(samples)} runs)"
        )
    poll_ms, old_ms = probe_cost(args.calls)
    print(f"probe per call, nothing listening: ReadyProbe.poll {poll_ms:.3f} ms, ", end="")
    print(f"is_listening(PORT) {old_ms:.3f} ms (median of {args.calls})")


if __name__ == "__main__":
    main()
