"""How long devup takes to act on a signal that one of its other threads took.

The kernel hands a signal sent to a process to any thread that does not block it; CPython's C
handler then only sets a flag, and the Python handler runs once the main thread next takes the
GIL. Each round starts devup (one server that ignores SIGTERM, --no-watch), waits for "1 service
up" and half a second more, then sends SIGHUP with tgkill to a thread other than the main one and
times the "SIGHUP received" line; a second signal (SIGINT, to another non-main thread) ends the
run. Then the same with SIGHUP and SIGINT sent back to back to the process, as a terminal or a
test does: the time until devup has exited.

    PYTHONPATH=. python bench/signals.py [--rounds N] [--base PATH]

--base PATH: also run the devup checked out at PATH (a `git worktree add /tmp/base main`), the
rounds of the two interleaved, so both see the same machine load.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import queue
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
SERVER = HERE / "tests" / "fixtures" / "server.py"
LIBC = ctypes.CDLL(None, use_errno=True)
SETTLE_S = 0.5


class Devup:
    def __init__(self, checkout: Path, project: Path, home: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(checkout), DEVUP_HOME=str(home))
        env["XDG_RUNTIME_DIR"] = str(home / "runtime")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "--no-watch", "--no-color"],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.SimpleQueue[tuple[float, str]] = queue.SimpleQueue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put((time.monotonic(), line))

    def until(self, text: str, timeout: float = 30) -> float:
        deadline = time.monotonic() + timeout
        while True:
            at, line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.001))
            if text in line:
                return at

    def other_threads(self) -> list[int]:
        pid = self.proc.pid
        return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid)

    def tgkill(self, tid: int, sig: int) -> None:
        if LIBC.tgkill(self.proc.pid, tid, sig) != 0:
            raise OSError(ctypes.get_errno(), "tgkill")


def one_round(checkout: Path, back_to_back: bool) -> float:
    with tempfile.TemporaryDirectory(prefix="devup-bench-signals-") as tmp:
        project, home = Path(tmp, "project"), Path(tmp, "home")
        project.mkdir()
        home.mkdir()
        low = random.randrange(20000, 32000)
        (project / "devports.toml").write_text(
            f'[devup]\nports = "{low}-{low + 199}"\nstop_timeout = 30\n\n'
            f'[services.stubborn]\ncmd = "{sys.executable} {SERVER} --ignore-term"\n'
        )
        devup = Devup(checkout, project, home)
        try:
            devup.until("1 service up")
            # The loop then writes the run record and audits the new server; a moment later it is
            # asleep on its queue (it wakes each second for its timers), as in most of a run.
            time.sleep(SETTLE_S)
            if back_to_back:
                sent = time.monotonic()
                devup.proc.send_signal(signal.SIGHUP)
                devup.proc.send_signal(signal.SIGINT)
                devup.proc.wait(timeout=60)
                return time.monotonic() - sent
            others = devup.other_threads()
            sent = time.monotonic()
            devup.tgkill(others[0], signal.SIGHUP)
            took = devup.until("SIGHUP received") - sent
            devup.tgkill(others[-1], signal.SIGINT)
            devup.proc.wait(timeout=60)
            return took
        finally:
            if devup.proc.poll() is None:
                devup.proc.send_signal(signal.SIGINT)
                devup.proc.send_signal(signal.SIGINT)
                devup.proc.wait(timeout=60)


def show(label: str, times: list[float]) -> None:
    ms = sorted(t * 1000 for t in times)
    print(
        f"  {label:<8} median {statistics.median(ms):7.1f} ms   "
        f"(min {ms[0]:.1f}, max {ms[-1]:.1f}, n={len(ms)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--base", type=Path, default=None)
    args = parser.parse_args()
    checkouts = {"devup": HERE}
    if args.base is not None:
        checkouts = {"before": args.base.resolve(), "after": HERE}
    for back_to_back, title in (
        (False, "SIGHUP to a thread other than devup's main one -> 'SIGHUP received':"),
        (True, "SIGHUP then SIGINT to the process, back to back -> devup has exited:"),
    ):
        times: dict[str, list[float]] = {label: [] for label in checkouts}
        for _ in range(args.rounds):
            for label, checkout in checkouts.items():
                times[label].append(one_round(checkout, back_to_back))
        print(title)
        for label, values in times.items():
            show(label, values)


if __name__ == "__main__":
    main()
