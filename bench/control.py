"""Bench: how fast `devup status`, `devup restart SERVICE` (until ready) and `devup logs -n` answer
with 20 services running, measured as a user sees it (a fresh `devup` each time: the console
script next to sys.executable, else `python -m orchestrator`; bytecode caches allowed, as installed
users have them; so devup's CLI start-up is included), next to `devup --version` (start-up alone)
and one raw request over the socket (the channel alone).

Run: PYTHONPATH=$PWD python bench/control.py [--services 20] [--runs 15], with the python of a venv
where this checkout is installed (`pip install -e .`), so its `devup` script runs this code.
Targets: < 100 ms each. overmind and process-compose are not on PyPI, npm or Debian, so no peer
is measured side by side here (see bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SERVER = REPO / "tests" / "fixtures" / "server.py"
_SCRIPT = Path(sys.executable).parent / "devup"
DEVUP = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "orchestrator"]


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {result.stderr}")
    return took * 1000


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def child_start_ms(port: int) -> float:
    """The floor of any restart: the fixture server from exec to accepting on its port."""
    import socket

    started = time.perf_counter()
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1"}
    child = subprocess.Popen([sys.executable, str(SERVER)], env=env, stdout=subprocess.DEVNULL)
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return (time.perf_counter() - started) * 1000
            except OSError:
                if child.poll() is not None:
                    raise SystemExit(f"server.py exited with {child.returncode}") from None
                time.sleep(0.005)
    finally:
        child.terminate()
        child.wait()


def follow_latencies(root: Path, env: dict[str, str], n: int) -> list[float]:
    """From the echo service being told to print a line to `devup logs -f echo` showing it."""
    follow = subprocess.Popen(
        [*DEVUP, "logs", "-f", "-n", "0", "echo"], cwd=root, env=env, stdout=subprocess.PIPE
    )
    assert follow.stdout is not None
    took = []
    try:
        time.sleep(1)  # let it start following; not part of any figure
        for i in range(n):
            started = time.perf_counter()
            (root / f"go-{i}").write_text("")
            line = follow.stdout.readline()
            took.append((time.perf_counter() - started) * 1000)
            assert f"saw go-{i}".encode() in line, line
    finally:
        follow.send_signal(signal.SIGINT)
        follow.wait(10)
    return took


def report(label: str, samples: list[float]) -> None:
    samples = sorted(samples)
    p90 = samples[int(len(samples) * 0.9) - 1]
    print(
        f"{label:<34} median {statistics.median(samples):6.1f} ms   "
        f"p90 {p90:6.1f} ms   min {samples[0]:6.1f} ms   (n={len(samples)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "project"
        root.mkdir()
        low = random.randrange(20000, 59000, 200)
        services = "".join(
            f'[services.s{i:02d}]\ncmd = "{sys.executable} {SERVER}"\n'
            for i in range(args.services)
        )
        echo = (
            "import os, time\n"
            "while True:\n"
            "    for name in os.listdir('.'):\n"
            "        if name.startswith('go-'):\n"
            "            os.unlink(name); print('saw', name, flush=True)\n"
            "    time.sleep(0.005)\n"
        )
        (root / "echo.py").write_text(echo)
        services += f'[services.echo]\ncmd = "{sys.executable} echo.py"\nport = false\n'
        (root / "devports.toml").write_text(f'[devup]\nports = "{low}-{low + 199}"\n\n{services}')
        env = {**os.environ, "DEVUP_HOME": str(Path(tmp) / "home"), "PYTHONPATH": str(REPO)}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # users have __pycache__; a fresh checkout not
        env["XDG_RUNTIME_DIR"] = str(Path(tmp) / "runtime")
        run = subprocess.Popen(
            [*DEVUP, "--no-watch"], cwd=root, env=env, stdout=subprocess.PIPE, text=True
        )
        try:
            assert run.stdout is not None
            for line in run.stdout:
                if "services up in" in line:
                    break
            # Drain devup's output so its pipe never fills while we measure.
            import threading

            threading.Thread(target=run.stdout.read, daemon=True).start()

            os.environ.update(DEVUP_HOME=env["DEVUP_HOME"], XDG_RUNTIME_DIR=env["XDG_RUNTIME_DIR"])
            from orchestrator.control import client

            raw = []
            for _ in range(args.runs * 4):
                started = time.perf_counter()
                client.check_answer(client.request(root, "status"))
                raw.append((time.perf_counter() - started) * 1000)
            n = args.runs
            for warm in (["--version"], ["status"], ["logs", "-n", "1"], ["restart", "s07"]):
                timed([*DEVUP, *warm], root, env)  # writes the bytecode caches; not timed
            print(f"{args.services} services running; {n} runs each; CLI = {' '.join(DEVUP)}")
            report("devup --version", [timed([*DEVUP, "--version"], root, env) for _ in range(n)])
            report("devup status", [timed([*DEVUP, "status"], root, env) for _ in range(n)])
            report(
                "devup status --json",
                [timed([*DEVUP, "status", "--json"], root, env) for _ in range(n)],
            )
            report(
                "devup restart s07 (until ready)",
                [timed([*DEVUP, "restart", "s07"], root, env) for _ in range(n)],
            )
            no_wait = []
            for _ in range(n):
                no_wait.append(timed([*DEVUP, "restart", "s07", "--no-wait"], root, env))
                ready = ("ready", "running")
                while client.request(root, "status")["services"]["s07"]["state"] not in ready:
                    time.sleep(0.02)  # let it come up before the next one; not timed
            report("devup restart s07 --no-wait", no_wait)
            report(
                "devup logs -n 20",
                [timed([*DEVUP, "logs", "-n", "20"], root, env) for _ in range(n)],
            )
            report(
                "devup logs -n 5 s03",
                [timed([*DEVUP, "logs", "-n", "5", "s03"], root, env) for _ in range(n)],
            )
            report("status request, in-process (socket)", raw)
            restarts = []
            for _ in range(n):
                started = time.perf_counter()
                client.check_answer(client.request(root, "restart", ["s07"], timeout_s=60))
                restarts.append((time.perf_counter() - started) * 1000)
            report("restart s07 until ready, in-process", restarts)
            report(
                "(floor) server.py exec to listening",
                [child_start_ms(free_port()) for _ in range(n)],
            )
            from orchestrator.output.logs import show

            tails = []
            for _ in range(n * 4):
                started = time.perf_counter()
                show(root / ".devup" / "logs", [], lambda data: None, count=20)
                tails.append((time.perf_counter() - started) * 1000)
            report("logs -n 20, in-process", tails)
            states = json.loads(
                subprocess.run(
                    [*DEVUP, "status", "--json"], cwd=root, env=env, capture_output=True, text=True
                ).stdout
            )["services"]
            assert all(s["state"] in ("ready", "running") for s in states.values()), states
            report("logs -f: a new line shows after", follow_latencies(root, env, n))
        finally:
            run.send_signal(signal.SIGINT)
            run.wait(30)


if __name__ == "__main__":
    main()
