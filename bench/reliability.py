"""Reliability figures for devup, with honcho side by side where it does the same job.

Run from the repository root:  PYTHONPATH=. python bench/reliability.py [--cycles N]
Prints: stop at stop_timeout, second Ctrl-C, recovery after SIGKILL, crash-loop restarts, memory
under an output flood, and processes left after a stop (devup vs honcho), fds/RSS over N cycles,
processes leaked over --kills SIGKILLs of devup in spawn/restart/stop (`--only kills`: just that).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from orchestrator.run.policy import decide  # noqa: E402
from tests.reliability.records import (  # noqa: E402
    CYCLE_SERVICES,
    PROC,
    recorded,
    same_process,
    still_there,
)

DEVUP = [sys.executable, "-m", "orchestrator"]
HONCHO = [sys.executable, "-m", "honcho"]


STARTED: list[subprocess.Popen[str]] = []  # killed at exit if a figure failed half-way


class Run:
    """A background command whose output lines are collected by a thread."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # so a hung runner is killed with its helper processes
        )
        STARTED.append(self.proc)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.001))
            self.seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match


class Project:
    def __init__(self, services: str, devup: str = "") -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="devup-bench-"))
        self.root = self.tmp / "project"
        self.root.mkdir()
        self.records = self.tmp / "records"
        self.records.mkdir()
        low = 20000 + (os.getpid() % 190) * 200
        (self.root / "devports.toml").write_text(
            f'[devup]\nports = "{low}-{low + 199}"\n{devup}\n{services}'
        )
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "DEVUP_HOME": str(self.tmp / "home"),
            "RELIABILITY_DIR": str(self.records),
        }

    def start(self, *args: str) -> Run:
        return Run([*DEVUP, *args], self.root, self.env)

    def wait_gone(self, entries: list[dict[str, object]], timeout: float = 30) -> float:
        deadline = time.monotonic() + timeout
        while any(same_process(e) for e in entries):
            if time.monotonic() > deadline:
                raise SystemExit("processes did not go away")
            time.sleep(0.002)  # polling /proc: the measurement's resolution
        return time.monotonic()

    def cleanup(self) -> None:
        for entry in recorded(self.records):
            proc = same_process(entry)
            if proc is not None:
                proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


WRAPPER = f"""
[services.wrapper]
cmd = "{PROC} ignore-term; echo never"
port = false
ready_log = "ignoring SIGTERM"
"""
OUTLIVE = f"""
[services.outlive]
cmd = "{PROC} outlive"
port = false
ready_log = "leader up"
"""


def stop_timeout_figure(runs: int) -> list[float]:
    took = []
    for _ in range(runs):
        p = Project(WRAPPER, "stop_timeout = 1")
        run = p.start("--no-watch")
        run.expect("1 service up")
        entries = recorded(p.records)
        sent = time.monotonic()
        run.proc.send_signal(signal.SIGINT)
        took.append(p.wait_gone(entries) - sent)
        run.proc.wait()
        p.cleanup()
    return took


def second_ctrl_c_figure(runs: int) -> list[float]:
    took = []
    for _ in range(runs):
        p = Project(WRAPPER + OUTLIVE, "stop_timeout = 30")
        run = p.start("--no-watch")
        run.expect("2 services up")
        entries = recorded(p.records)
        run.proc.send_signal(signal.SIGINT)
        run.expect("SIGINT received")
        sent = time.monotonic()
        run.proc.send_signal(signal.SIGINT)
        took.append(p.wait_gone(entries) - sent)
        run.proc.wait()
        p.cleanup()
    return took


def recovery_figure() -> dict[str, object]:
    services = CYCLE_SERVICES.split("[services.setsid]")[0]
    p = Project(services, "stop_timeout = 1")
    decoy_dir = p.tmp / "decoys"
    decoy_dir.mkdir()
    decoy = subprocess.Popen(
        ["/bin/sh", "-c", f"{PROC} ignore-term; echo never"],
        env={**p.env, "RELIABILITY_DIR": str(decoy_dir)},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
    )
    first = p.start("--no-watch")
    first.expect("6 services up")
    ports = sorted(re.findall(r"PORT=(\d+)", "\n".join(first.seen)))
    first.proc.kill()
    first.proc.wait()
    old = [e for e in recorded(p.records) if same_process(e)]
    began = time.monotonic()
    second = p.start("--no-watch")
    stopped = second.expect(r"stopped (\d+) processes left by a killed devup")
    second.expect("6 services up")
    ready_s = time.monotonic() - began
    left = [e for e in old if same_process(e)]
    zombies = [e for e in left if same_process(e).status() == "zombie"]  # type: ignore[union-attr]
    ports2 = sorted(re.findall(r"PORT=(\d+)", "\n".join(second.seen)))
    decoys_gone = [e for e in recorded(decoy_dir) if not same_process(e)]
    second.proc.send_signal(signal.SIGINT)
    second.proc.wait()
    os.killpg(decoy.pid, signal.SIGKILL)
    decoy.wait()
    p.cleanup()
    return {
        "old processes alive after the kill (zombies included)": len(old),
        "stopped by the next run": int(stopped.group(1)),
        "old processes left once ready": len(left) - len(zombies),
        "old zombies not yet reaped by init": len(zombies),
        "decoys touched": len(decoys_gone),
        "same ports": ports == ports2,
        "next run ready in s": round(ready_s, 2),
    }


def crash_figures() -> dict[str, object]:
    t, restarts, count = 0.0, 0, 0
    while True:
        t += 0.05
        decision = decide("on-failure", 1, uptime_s=0.05, fast_failures=count)
        count = decision.fast_failures
        if not decision.restart or t + decision.delay_s > 60:
            break
        t += decision.delay_s
        restarts += 1
    # The real thing up to its 4th crash (the schedule's 0.5 + 1 + 2 s of backoff and four
    # 50 ms runs); the rest of the schedule and the give-up: tests/unit, on a fake clock.
    p = Project(f'[services.crasher]\ncmd = "{PROC} crash 0.05"\nport = false\n')
    run = p.start("--no-watch")
    began = time.monotonic()
    run.expect("restarting in 4s", 60)
    took = time.monotonic() - began
    run.proc.send_signal(signal.SIGINT)
    run.proc.wait()
    p.cleanup()
    return {
        "default schedule: restarts in the first minute": restarts,
        "measured: seconds to the 4th crash (schedule: 3.7)": round(took, 2),
    }


def flood_figure(runner: str) -> dict[str, object]:
    p = Project(f'[services.blast]\ncmd = "{PROC} blast 100 100"\nport = false\nrestart = "no"\n')
    go = p.tmp / "go"
    env = {**p.env, "RELIABILITY_GO": str(go)}
    if runner == "honcho":
        (p.root / "Procfile").write_text(f"blast: {PROC} blast 100 100\n")
        cmd = [*HONCHO, "start"]
    else:
        cmd = [*DEVUP, "--no-watch"]
    out_path = p.tmp / "stdout"
    with out_path.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=p.root, env=env, stdout=out, stderr=subprocess.STDOUT)
    while b"blast waiting" not in out_path.read_bytes():
        time.sleep(0.01)
    status = Path(f"/proc/{proc.pid}/status").read_text()
    baseline_kib = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    began = time.monotonic()
    go.touch()
    if runner == "honcho":
        # honcho stops everything when one process exits; wait for the child's done file.
        while not (p.records / "blast-done").exists():
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
    # VmHWM, not wait4's ru_maxrss: that includes the forking process's RSS from before exec.
    peak_kib = 0
    while proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
            peak_kib = max(peak_kib, hwm)
        except (OSError, AttributeError):
            pass
        time.sleep(0.01)  # a high-water mark: sampling misses nothing but the exit itself
    took = time.monotonic() - began
    text = out_path.read_bytes()
    p.cleanup()
    return {
        "peak RSS growth MB": round((peak_kib - baseline_kib) / 1024, 1),
        "seconds": round(took, 2),
        "tracebacks": text.count(b"Traceback"),
    }


def leftovers_figure(runner: str) -> str:
    services = (
        WRAPPER
        + OUTLIVE
        + f"""
[services.setsid]
cmd = "{PROC} daemon-setsid"
port = false
ready_log = "daemon up"
"""
    )
    p = Project(services, "stop_timeout = 1")
    if runner == "honcho":
        (p.root / "Procfile").write_text(
            f"wrapper: {PROC} ignore-term; echo never\noutlive: {PROC} outlive\n"
            f"setsid: {PROC} daemon-setsid\n"
        )
        run = Run([*HONCHO, "start"], p.root, p.env)
        for _ in range(3):
            run.expect("ignoring SIGTERM|leader up|daemon up")
    else:
        run = p.start("--no-watch")
        run.expect("3 services up")
    run.proc.send_signal(signal.SIGINT)
    try:
        run.proc.wait(20)
        note = ""
    except subprocess.TimeoutExpired:
        os.killpg(run.proc.pid, signal.SIGKILL)
        run.proc.wait()
        note = " (did not exit within 20 s of Ctrl-C; SIGKILLed)"
    time.sleep(0.5)  # let whatever was signalled finish dying before counting survivors
    live, _ = still_there(p.records)
    p.cleanup()
    return f"{len(live)} {sorted(str(e['role']) for e in live)}{note}"


def cycles_figure(cycles: int) -> dict[str, object]:
    p = Project(CYCLE_SERVICES, "stop_timeout = 0.3")
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "tests" / "reliability" / "harness.py"),
            "devports.toml",
            str(cycles),
        ],
        cwd=p.root,
        env=p.env,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    live, zombies = still_there(p.records)
    p.cleanup()
    return {
        "cycles": len(rows),
        "fds first/last": (rows[0]["fds"], rows[-1]["fds"]),
        "RSS MB first/last": (round(rows[0]["rss"] / 2**20, 1), round(rows[-1]["rss"] / 2**20, 1)),
        "children/zombies after any cycle": max(r["children"] for r in rows),
        "processes left": len(live) + len(zombies),
        "median start s / stop s": (
            round(statistics.median(r["start_s"] for r in rows), 3),
            round(statistics.median(r["stop_s"] for r in rows), 3),
        ),
    }


KILL_SERVICES = f"""
[services.server]
cmd = "{PROC} server"

[services.outlive]
cmd = "{PROC} outlive"
port = false
ready_log = "leader up"

[services.daemon]
cmd = "{PROC} daemon-setsid"
port = false
ready_log = "daemon up"
"""
KILL_PHASES = ("spawn", "restart", "stop")


def kill_points_figure(kills: int, seed: int = 1) -> dict[str, object]:
    """SIGKILL devup at `kills` random points in spawn, restart and stop (quiet services: a
    server, a group outliving its leader, a setsid daemon); each next run must stop what the
    killed one left, keep the leases, and nothing may be left at the end."""
    import random

    rng = random.Random(seed)
    p = Project(KILL_SERVICES, "stop_timeout = 0.5")
    leaked: dict[tuple[object, object], dict[str, object]] = {}  # by pid and start time
    moved = 0
    phases: dict[str, int] = dict.fromkeys(KILL_PHASES, 0)
    ports: set[str] = set()
    try:
        for _ in range(kills + 1):
            before = [e for e in recorded(p.records) if same_process(e)]
            run = p.start("--no-watch")
            last = _ == kills
            phase = "final" if last else rng.choice(KILL_PHASES)
            if phase == "spawn":
                # Somewhere between the first spawn and the last service up.
                run.expect(r"(server|outlive|daemon) started")
                time.sleep(rng.uniform(0, 0.15))  # the random kill point
            else:
                run.expect("3 services up")
                if phase == "restart":
                    name = rng.choice(["server", "outlive", "daemon"])
                    subprocess.run(
                        [*DEVUP, "restart", name, "--no-wait"],
                        cwd=p.root,
                        env=p.env,
                        capture_output=True,
                        timeout=30,
                    )
                    time.sleep(rng.uniform(0, 0.2))  # the random kill point
                elif phase == "stop":
                    run.proc.send_signal(signal.SIGINT)
                    time.sleep(rng.uniform(0, 0.6))  # the random kill point (stop_timeout 0.5)
            if last:
                run.proc.send_signal(signal.SIGINT)
                run.proc.wait(30)
            else:
                run.proc.kill()
                run.proc.wait()
                phases[phase] += 1
            while True:  # the rest of its output
                try:
                    run.seen.append(run.lines.get(timeout=0.5))
                except queue.Empty:
                    break
            text = "\n".join(run.seen)
            moved += text.count(" stays ")
            ports.update(re.findall(r"server started \(pid \d+, PORT=(\d+)", text))
            # What the killed run before this one left must be gone once this one started.
            if "3 services up" in text:
                leaked.update(((e["pid"], e["start_ticks"]), e) for e in before if _alive(e))
        leaked.update(((e["pid"], e["start_ticks"]), e) for e in recorded(p.records) if _alive(e))
        started = len(recorded(p.records))
    finally:
        p.cleanup()
    return {
        "kills per phase": phases,
        "processes started in all": started,
        "leaked (alive after the next run was up, or at the end)": len(leaked),
        "leaked by role": sorted({str(e["role"]) for e in leaked.values()}),
        "leases moved": moved,
        "server ports seen": sorted(ports),
    }


def _alive(entry: dict[str, object]) -> bool:
    proc = same_process(entry)
    try:
        return proc is not None and proc.status() != "zombie"
    except Exception:  # gone meanwhile
        return False


IO_FLOOD = """
import sys
for i in range(int(sys.argv[1])):
    print(f"line {i:07d} " + "x" * 50)
"""


def slow_reader_flood_figure(lines: int, rate_bps: int) -> dict[str, object]:
    """A flood of `lines` lines while devup's stdout is read at `rate_bps`: what the log files
    and `logs -f` (started during the flood) hold, and what the terminal got."""
    script = Path(tempfile.mkdtemp(prefix="devup-bench-")) / "flood.py"
    script.write_text(IO_FLOOD)
    p = Project(
        f'[services.blast]\ncmd = "{sys.executable} {script} {lines}"\nport = false\n'
        'restart = "no"\n[services.idle]\ncmd = "sleep 1000"\nport = false\n'
    )
    proc = subprocess.Popen(
        [*DEVUP, "--no-watch"],
        cwd=p.root,
        env=p.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    STARTED.append(proc)  # type: ignore[arg-type]
    assert proc.stdout is not None
    logs = p.root / ".devup" / "logs"
    got = 0
    follow = None
    began = time.monotonic()
    # The slow reader: rate_bps, in 1 KiB reads, until the log files hold the whole flood.
    while True:
        data = os.read(proc.stdout.fileno(), 1024)
        got += data.count(b"\n")
        if follow is None and (logs / "blast.log").exists():
            follow = subprocess.Popen(
                [*DEVUP, "logs", "-f", "blast"],
                cwd=p.root,
                env=p.env,
                stdout=subprocess.PIPE,
                start_new_session=True,
            )
            STARTED.append(follow)  # type: ignore[arg-type]
            followed: list[int] = [0]

            def count(stream: Any = follow.stdout, into: list[int] = followed) -> None:
                for chunk in iter(lambda: stream.read1(1 << 20), b""):
                    into[0] += chunk.count(b"\n")  # blast.log holds only blast's lines

            threading.Thread(target=count, daemon=True).start()
        kept = sum(
            f.read_bytes().count(b"| line ")
            for f in (logs / "blast.log.1", logs / "blast.log")
            if f.exists()
        )
        if kept >= lines or time.monotonic() - began > 300:
            break
        time.sleep(1024 / rate_bps)  # the reader's pace
    flood_s = time.monotonic() - began
    deadline = time.monotonic() + 10
    while followed[0] < kept and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = proc.poll() is None
    for started in (proc, follow):
        if started is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(started.pid, signal.SIGINT)
            started.wait(30)
    p.cleanup()
    shutil.rmtree(script.parent, ignore_errors=True)
    return {
        "lines in the log files": f"{kept:,} of {lines:,}",
        "lines `logs -f` got (started during the flood)": f"{followed[0]:,}",
        "lines the slow terminal had read by then": f"{got:,}",
        "devup alive through it": alive,
        "flood took s": round(flood_s, 1),
    }


def idle_clients_figure(clients: int) -> dict[str, object]:
    """`clients` idle connections to the control socket; then `devup status`, and devup's fds."""
    import socket

    p = Project('[services.idle]\ncmd = "sleep 1000"\nport = false\n')
    run = p.start("--no-watch")
    run.expect("1 service up")
    sock_path = subprocess.run(
        [*DEVUP, "status", "--json"], cwd=p.root, env=p.env, capture_output=True, check=True
    )
    from orchestrator.control.client import socket_path

    os.environ["DEVUP_HOME"] = p.env["DEVUP_HOME"]
    path = str(socket_path(p.root))
    del sock_path
    idle = []
    refused = 0
    for _ in range(clients):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(5)
        try:
            conn.connect(path)
            idle.append(conn)
        except OSError:
            refused += 1
            conn.close()
    began = time.monotonic()
    status = subprocess.run(
        [*DEVUP, "status"], cwd=p.root, env=p.env, capture_output=True, text=True
    )
    took = time.monotonic() - began
    fds = len(os.listdir(f"/proc/{run.proc.pid}/fd"))
    alive = run.proc.poll() is None
    for conn in idle:
        conn.close()
    run.proc.send_signal(signal.SIGINT)
    code = run.proc.wait(30)
    p.cleanup()
    return {
        "connects refused": refused,
        "status exit code / s": (status.returncode, round(took, 2)),
        "devup's open fds meanwhile": fds,
        "devup alive / exit code after Ctrl-C": (alive, code),
    }


def concurrent_status_figure(count: int) -> dict[str, object]:
    p = Project('[services.idle]\ncmd = "sleep 1000"\nport = false\n')
    run = p.start("--no-watch")
    run.expect("1 service up")
    began = time.monotonic()
    procs = [
        subprocess.Popen(
            [*DEVUP, "status"],
            cwd=p.root,
            env=p.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    results = [(proc.wait(60), proc.stderr.read() if proc.stderr else "") for proc in procs]
    took = time.monotonic() - began
    failed = [err.strip() for code, err in results if code != 0]
    run.proc.send_signal(signal.SIGINT)
    run.proc.wait(30)
    p.cleanup()
    return {
        "failed": len(failed),
        "first failure": failed[0] if failed else "-",
        "all answered within s": round(took, 2),
    }


def io_figures(show: Callable[[str, object], None], flood_lines: int) -> None:
    for key, value in slow_reader_flood_figure(flood_lines, 10_000).items():
        show(f"{flood_lines:,}-line flood, stdout read at 10 KB/s: {key}", value)
    for key, value in idle_clients_figure(1000).items():
        show(f"1,000 idle control clients: {key}", value)
    for key, value in concurrent_status_figure(180).items():
        show(f"180 concurrent `devup status`: {key}", value)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--kills", type=int, default=100, help="SIGKILLs of devup")
    parser.add_argument("--only", choices=["kills"], help="run one figure only")
    parser.add_argument("--only-io", action="store_true", help="only the output/control figures")
    parser.add_argument("--flood-lines", type=int, default=1_000_000)
    args = parser.parse_args()

    def show(title: str, value: object) -> None:
        print(f"{title:<58} {value}", flush=True)

    try:
        if not args.only_io:
            figures(args, show)
        if args.only is None:
            io_figures(show, args.flood_lines)
    finally:
        for proc in STARTED:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def figures(args: argparse.Namespace, show: Callable[[str, object], None]) -> None:
    if args.only == "kills":
        for key, value in kill_points_figure(args.kills).items():
            show(f"{args.kills} SIGKILLs of devup: {key}", value)
        return
    st = stop_timeout_figure(args.runs)
    show(
        "stop_timeout=1, child ignores SIGTERM: gone after s (min/med/max)",
        (round(min(st), 3), round(statistics.median(st), 3), round(max(st), 3)),
    )
    cc = second_ctrl_c_figure(args.runs)
    show(
        "second Ctrl-C (stop_timeout=30): all gone after s (min/med/max)",
        (round(min(cc), 3), round(statistics.median(cc), 3), round(max(cc), 3)),
    )
    for key, value in recovery_figure().items():
        show(f"SIGKILLed devup, next run: {key}", value)
    for key, value in crash_figures().items():
        show(f"crash 50 ms after start: {key}", value)
    for runner in ("devup", "honcho"):
        for key, value in flood_figure(runner).items():
            show(f"{runner}: 100 MiB lines + 100 x 1 MiB lines: {key}", value)
    for runner in ("devup", "honcho"):
        show(
            f"{runner}: processes left after Ctrl-C (wrapper, outlive, setsid)",
            leftovers_figure(runner),
        )
    for key, value in cycles_figure(args.cycles).items():
        show(f"start/stop cycles in one interpreter: {key}", value)
    for key, value in kill_points_figure(args.kills).items():
        show(f"{args.kills} SIGKILLs of devup: {key}", value)


if __name__ == "__main__":
    main()
