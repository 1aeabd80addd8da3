"""Bench: `devup logs --json` and `--grep` over a large log next to plain `devup logs` (the same
lines as text), and `devup status` of a run in a git worktree (which reads the branch from .git)
next to the same command from another checkout (`--before DIR`, e.g. the commit before the branch
lookup, unpacked with `git archive COMMIT | tar -x -C DIR`).

Each command is a fresh `python -m orchestrator` (start-up included), output to a pipe that is
read and thrown away, runs interleaved, median of --runs.

Run: PYTHONPATH=$PWD python bench/logsjson.py [--lines 200000] [--runs 5] [--before DIR]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SERVER = REPO / "tests" / "fixtures" / "server.py"
SERVICES = ("api", "web", "worker", "db")


def write_logs(root: Path, lines: int) -> None:
    """`lines` lines over four services' logs, stamped as devup stamps them, some coloured."""
    folder = root / ".devup" / "logs"
    folder.mkdir(parents=True)
    start = time.time() - lines / 1000
    per = lines // len(SERVICES)
    for n, name in enumerate(SERVICES):
        out = []
        for i in range(per):
            at = time.strftime("%H:%M:%S", time.localtime(start + (i * len(SERVICES) + n) / 1000))
            level = "\x1b[31mERROR\x1b[0m" if i % 100 == 0 else "INFO"
            out.append(f"{at} {name:<6} | {level} request {i} GET /api/items?page={i % 50} 200\n")
        (folder / f"{name}.log").write_text("".join(out))


def timed(cmd: list[str], cwd: Path, pythonpath: Path) -> tuple[float, int]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, check=False)
    took = (time.perf_counter() - started) * 1000
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {result.stderr.decode()}")
    return took, result.stdout.count(b"\n")


def report(label: str, times: list[float], lines: int, base: float | None = None) -> float:
    median = statistics.median(times)
    ratio = f"  {median / base:5.2f}x" if base else ""
    print(f"{label:<40} median {median:8.1f} ms  min {min(times):8.1f} ms  {lines:>7} lines{ratio}")
    return median


def bench_logs(lines: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "devports.toml").write_text(
            "".join(f'[services.{name}]\ncmd = "true"\n' for name in SERVICES)
        )
        write_logs(root, lines)
        devup = [sys.executable, "-m", "orchestrator", "logs"]
        variants = {
            "devup logs": devup,
            "devup logs --json": [*devup, "--json"],
            "devup logs --grep ERROR": [*devup, "--grep", "ERROR"],
            "devup logs --json --grep ERROR": [*devup, "--json", "--grep", "ERROR"],
            "devup logs -n 1000 --json": [*devup, "-n", "1000", "--json"],
        }
        times: dict[str, list[float]] = {k: [] for k in variants}
        counts: dict[str, int] = {}
        for _ in range(runs):
            for label, cmd in variants.items():
                took, counts[label] = timed(cmd, root, REPO)
                times[label].append(took)
        print(f"logs: {lines} lines in {len(SERVICES)} services' files, {runs} runs each")
        base = report("devup logs", times["devup logs"], counts["devup logs"])
        for label in list(variants)[1:]:
            report(label, times[label], counts[label], base)


def bench_status(runs: int, before: Path | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        git = ["git", "-c", "user.name=b", "-c", "user.email=b@example.com"]
        subprocess.run([*git, "init", "-q", "-b", "main"], cwd=repo, check=True)
        (repo / "devports.toml").write_text(
            f'[devup]\nports = "41000-41199"\n[services.api]\ncmd = "{sys.executable} {SERVER}"\n'
        )
        (repo / ".gitignore").write_text(".devup/\n")
        subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
        subprocess.run([*git, "commit", "-q", "-m", "b"], cwd=repo, check=True)
        tree = Path(tmp) / "feat"
        subprocess.run([*git, "worktree", "add", "-q", "-b", "feat", str(tree)], cwd=repo)
        env = {**os.environ, "PYTHONPATH": str(REPO), "DEVUP_HOME": str(Path(tmp) / "home")}
        env.pop("XDG_RUNTIME_DIR", None)
        run = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "--no-watch"],
            cwd=tree,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert run.stdout is not None
            for line in run.stdout:
                if "service up" in line:
                    break
            os.environ["DEVUP_HOME"] = env["DEVUP_HOME"]
            os.environ.pop("XDG_RUNTIME_DIR", None)
            status = [sys.executable, "-m", "orchestrator", "status"]
            checkouts = {"this checkout": REPO, **({"--before": before} if before else {})}
            times: dict[str, list[float]] = {k: [] for k in checkouts}
            for _ in range(runs):
                for label, path in checkouts.items():
                    times[label].append(timed(status, tree, path)[0])
            print(f"status of a run in a git worktree, {runs} runs each")
            base = report("devup status (this checkout)", times["this checkout"], 0)
            if before:
                report(f"devup status ({before})", times["--before"], 0, base)
        finally:
            run.send_signal(signal.SIGINT)
            run.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", type=Path, help="another checkout to time `status` from")
    args = parser.parse_args()
    bench_logs(args.lines, args.runs)
    bench_status(args.runs, args.before)


if __name__ == "__main__":
    main()
