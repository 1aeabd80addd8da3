"""Bench: `devup mcp` as an agent's client meets it, through the MCP SDK's own stdio client:
from spawning `devup mcp` to the answer of the first tools/list (initialize included), and the
round trip of a `status` tool call in an open session next to `devup status --json` run directly
(the tool runs that same command, so the difference is the MCP server's own cost). Also the import
of the SDK's server alone, which is most of the start.

Run: PYTHONPATH=$PWD python bench/mcp_server.py [--starts 5] [--calls 15], with the python of a venv
where this checkout and the SDK are installed (`pip install -e '.[mcp]'`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

REPO = Path(__file__).resolve().parent.parent
SERVER = REPO / "tests" / "fixtures" / "server.py"
DEVUP = [sys.executable, "-m", "orchestrator"]


def line(label: str, figures: list[float]) -> str:
    return (
        f"  {label:34} median {statistics.median(figures):6.0f} ms"
        f"   (min {min(figures):.0f}, max {max(figures):.0f}, n={len(figures)})"
    )


async def first_list_ms(root: Path, env: dict[str, str]) -> float:
    params = StdioServerParameters(command=DEVUP[0], args=[*DEVUP[1:], "mcp"], cwd=root, env=env)
    started = time.perf_counter()
    async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        await client.list_tools()
        return (time.perf_counter() - started) * 1000


async def status_calls_ms(root: Path, env: dict[str, str], calls: int) -> list[float]:
    params = StdioServerParameters(command=DEVUP[0], args=[*DEVUP[1:], "mcp"], cwd=root, env=env)
    took = []
    async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        for _ in range(calls):
            started = time.perf_counter()
            result = await client.call_tool("status", {})
            took.append((time.perf_counter() - started) * 1000)
            if result.is_error:
                raise SystemExit(f"status tool failed: {result.content}")
    return took


def direct_ms(cmd: list[str], root: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {result.stderr}")
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--calls", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {**os.environ, "DEVUP_HOME": str(root / "home"), "PYTHONPATH": str(REPO)}
        (root / "devports.toml").write_text(
            '[devup]\nports = "41000-41099"\n'
            + "".join(f'[services.s{i}]\ncmd = "{sys.executable} {SERVER}"\n' for i in range(3))
        )
        imports = [
            direct_ms([sys.executable, "-c", "import mcp.server.mcpserver"], root, env)
            for _ in range(args.starts)
        ]
        starts = [anyio.run(first_list_ms, root, env) for _ in range(args.starts)]
        run = subprocess.Popen(
            [*DEVUP, "--no-watch"], cwd=root, env=env, stdout=subprocess.PIPE, text=True
        )
        try:
            assert run.stdout is not None
            for out in run.stdout:
                if "services up" in out:
                    break
            direct = [direct_ms([*DEVUP, "status", "--json"], root, env) for _ in range(args.calls)]
            tool = anyio.run(status_calls_ms, root, env, args.calls)
        finally:
            subprocess.run([*DEVUP, "stop"], cwd=root, env=env, capture_output=True)
            run.wait(30)
    print(f"devup mcp (python {sys.version.split()[0]}, 3 services running for the status calls):")
    print(line("import mcp.server.mcpserver", imports))
    print(line("spawn -> first tools/list answer", starts))
    print(line("status tool call (open session)", tool))
    print(line("devup status --json (direct)", direct))


if __name__ == "__main__":
    main()
