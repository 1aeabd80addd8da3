"""Port figures: many devups allocating at once (wall time per round, each allocation's time
under the registry lock), the cost of the lookups behind `devup who` and the listen audit, side
by side with lsof (the tool `devup who` replaces and falls back to), and `devup ports` against
`devup status` while a devup runs N services.

    PYTHONPATH=. python bench/ports.py [--projects 50] [--services 10] [--rounds 5]
                                       [--running 50] [--repeat 10] [--only running]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from orchestrator.base.paths import project_key
from orchestrator.ports.holders import _holders_from_lsof, find_holders
from orchestrator.ports.registry import Registry
from orchestrator.run.audit import group_listeners
from orchestrator.system.process import GroupId

ALLOCATOR = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from orchestrator.config.manifest import Manifest, ServiceSpec, Settings
    from orchestrator.ports.allocation import allocate_ports

    root, lo, hi, n = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    names = [f"svc{i}" for i in range(n)]
    specs = {s: ServiceSpec(name=s, cmd="true", cwd=root) for s in names}
    manifest = Manifest(root / "devports.toml", Settings(port_range=(lo, hi)), specs)
    print("ready", flush=True)
    for line in sys.stdin:
        started = time.perf_counter()
        ports = allocate_ports(manifest, names).ports
        print(json.dumps({"ports": ports, "took": time.perf_counter() - started}), flush=True)
    """
)


def contention(projects: int, services: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DEVUP_HOME"] = str(Path(tmp) / "home")
        lo = random.randrange(20000, 50000, 1000)
        hi = lo + max(1000, 2 * projects * services) - 1
        roots = [Path(tmp) / f"p{i}" for i in range(projects)]
        for root in roots:
            root.mkdir()
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", ALLOCATOR, str(r), str(lo), str(hi), str(services)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for r in roots
        ]
        walls, tooks = [], []
        try:
            for proc in procs:  # Python's start is not what is measured
                assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
            for _ in range(rounds):
                started = time.perf_counter()
                for proc in procs:
                    assert proc.stdin is not None
                    proc.stdin.write("go\n")
                    proc.stdin.flush()
                results = [json.loads(p.stdout.readline()) for p in procs if p.stdout]
                walls.append(time.perf_counter() - started)
                tooks += [r["took"] for r in results]
                ports = [p for r in results for p in r["ports"].values()]
                assert len(set(ports)) == projects * services, "a port was handed out twice"
                with Registry().locked() as leases:
                    leases.clear()
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
        tooks.sort()
        print(
            f"{projects} devups x {services} services at once, {rounds} rounds: "
            f"{projects * services} distinct ports every round"
        )
        print(
            f"  round wall time     median {statistics.median(walls) * 1000:7.1f} ms  "
            f"max {max(walls) * 1000:7.1f} ms"
        )
        print(
            f"  one allocate_ports  median {statistics.median(tooks) * 1000:7.1f} ms  "
            f"p95 {tooks[int(len(tooks) * 0.95)] * 1000:7.1f} ms  (lock wait included)"
        )
        assert set(Registry().read()) <= {project_key(r) for r in roots}


def lookups(repeat: int = 20) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        group = GroupId(os.getpgid(0), 0.0)

        def timed(fn: object) -> float:
            samples = []
            for _ in range(repeat):
                started = time.perf_counter()
                fn()  # type: ignore[operator]
                samples.append(time.perf_counter() - started)
            return statistics.median(samples) * 1000

        print(
            f"lookups, median of {repeat} (this machine: {len(os.listdir('/proc'))} /proc entries)"
        )
        rows = [
            ("who holds a port: psutil find_holders", lambda: find_holders(port)),
            ("who holds a port: lsof -iTCP:PORT", lambda: _holders_from_lsof(port)),
            ("audit of one group: group_listeners", lambda: group_listeners(group)),
        ]
        for label, fn in rows:
            print(f"  {label:<40} {timed(fn):7.2f} ms")


LISTENER = (
    "import os, signal, socket; s = socket.socket(); "
    "s.bind(('127.0.0.1', int(os.environ['PORT']))); s.listen(); signal.pause()"
)


def while_running(services: int, repeat: int) -> None:
    """`devup status`, `devup ports` (entry.py's answer) and `devup ports --json -f FILE` (the
    click CLI) against a devup running `services` listeners: wall time of each command."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "project"
        root.mkdir()
        lo = random.randrange(20000, 50000, 1000)
        body = "".join(
            f"[services.s{i}]\ncmd = {json.dumps(f'{sys.executable} -c {LISTENER!r}')}\n"
            "watch = false\n"
            for i in range(services)
        )
        manifest = root / "devports.toml"
        manifest.write_text(f'[devup]\nports = "{lo}-{lo + 999}"\n{body}')
        env = {
            **os.environ,
            "DEVUP_HOME": str(Path(tmp) / "home"),
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        }
        devup = [sys.executable, "-m", "orchestrator"]
        run = subprocess.Popen(
            devup, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            assert run.stdout is not None
            for line in run.stdout:  # until the summary: every service listens
                if f"{services} services up" in line:
                    break
            else:
                raise SystemExit("devup ended before its services were up")

            def timed(*args: str) -> float:
                samples = []
                for _ in range(repeat):
                    started = time.perf_counter()
                    subprocess.run([*devup, *args], cwd=root, env=env, check=True,
                                   stdout=subprocess.DEVNULL)  # fmt: skip
                    samples.append(time.perf_counter() - started)
                return statistics.median(samples) * 1000

            rows = [
                ("devup status", timed("status")),
                ("devup ports", timed("ports")),
                ("devup ports --json", timed("ports", "--json")),
                (
                    "devup ports --json -f FILE (click)",
                    timed("ports", "--json", "-f", str(manifest)),
                ),
            ]
        finally:
            run.send_signal(signal.SIGINT)
            try:
                run.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                run.kill()
                run.wait()
        print(f"while devup runs {services} services, median wall time of {repeat} runs")
        status_ms = rows[0][1]
        for label, ms in rows:
            print(f"  {label:<36} {ms:7.1f} ms  {ms / status_ms:4.2f}x status")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--projects", type=int, default=50)
    parser.add_argument("--services", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--running", type=int, default=50, help="services of the running devup")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--only", choices=["contention", "lookups", "running"])
    args = parser.parse_args()
    if args.only in (None, "contention"):
        contention(args.projects, args.services, args.rounds)
    if args.only in (None, "lookups"):
        lookups()
    if args.only in (None, "running"):
        while_running(args.running, args.repeat)


if __name__ == "__main__":
    main()
