"""`devup mcp` through the MCP SDK's own client over stdio, against real devup runs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest
from conftest import DEVUP, REPO, DevupProcess, Project, py

pytest.importorskip("mcp", reason="devup mcp needs the MCP SDK: pip install -e '.[mcp]'")

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, CallToolResult

SERVER = f"{sys.executable} {REPO / 'tests' / 'fixtures' / 'server.py'}"
WORKER = py("import time\nprint('working', flush=True)\nwhile True: time.sleep(1)")
SERVICES = f"""
    [services.api]
    cmd = "{SERVER}"
    [services.worker]
    cmd = '''{WORKER}'''
    port = false
"""
TOOLS = {"status", "logs", "restart", "stop", "start", "up", "ports", "who", "env"}


def mcp_server_pid() -> int:
    """The `devup mcp` the SDK's client started (a child of this test process)."""
    for child in psutil.Process().children(recursive=True):
        if child.cmdline()[-1:] == ["mcp"]:
            return child.pid
    raise AssertionError("no `devup mcp` process among this test's children")


@asynccontextmanager
async def session(cwd: Path, errlog: Path, options: list[str]) -> AsyncIterator[ClientSession]:
    args = ["-m", "orchestrator", *options, "mcp"]
    params = StdioServerParameters(command=sys.executable, args=args, cwd=cwd, env=dict(os.environ))
    with errlog.open("w") as err:
        async with (
            stdio_client(params, errlog=err) as (read, write),
            ClientSession(read, write) as client,
        ):
            await client.initialize()
            yield client


def with_session(
    cwd: Path,
    errlog: Path,
    scenario: Callable[[ClientSession], Awaitable[int]],
    options: tuple[str, ...] = (),
) -> int:
    """Run `scenario` with a session of `devup [OPTIONS] mcp` started in `cwd`, then prove the
    server is gone; returns the server's pid."""

    async def main() -> int:
        async with session(cwd, errlog, list(options)) as client:
            return await scenario(client)

    pid = anyio.run(main)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    return pid


def answer(result: CallToolResult) -> dict[str, Any]:
    """The JSON of a successful call; the text of a failed one fails the test."""
    assert not result.is_error, result.content
    assert result.structured_content is not None
    text = result.content[0]
    assert text.type == "text" and json.loads(text.text) == result.structured_content
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    assert result.is_error, result.structured_content
    text = result.content[0]
    assert text.type == "text"
    return text.text


def has_option(project: Project, command: str, option: str) -> bool:
    """Whether this checkout's `devup COMMAND` has OPTION (some come from other branches)."""
    return option in project.devup(command, "--help").stdout


def test_tools_against_a_real_run(
    project: Project, running: list[DevupProcess], tmp_path: Path
) -> None:
    project.write(SERVICES)
    run = project.start("--no-watch")
    running.append(run)
    run.expect_line(r"2 services up")
    direct = json.loads(project.devup("status", "--json").stdout)

    async def scenario(client: ClientSession) -> int:
        server_pid = mcp_server_pid()
        listed = (await client.list_tools()).tools
        assert {tool.name for tool in listed} == TOOLS
        schemas = {tool.name: tool.input_schema for tool in listed}
        assert schemas["restart"]["required"] == ["services"]
        assert schemas["who"]["required"] == ["port"]
        assert schemas["env"]["required"] == ["service"]
        assert schemas["logs"]["properties"]["lines"]["maximum"] == 10_000
        assert "required" not in schemas["status"]
        read_only = {t.name for t in listed if t.annotations and t.annotations.read_only_hint}
        assert read_only == {"status", "logs", "ports", "who", "env"}

        status = answer(await client.call_tool("status", {}))
        assert status["pid"] == direct["pid"] == run.proc.pid
        assert list(status["services"]) == ["api", "worker"]
        for name, service in status["services"].items():
            before = direct["services"][name]
            assert (service["pid"], service["port"], service["url"]) == (
                before["pid"], before["port"], before["url"]
            )  # fmt: skip
        old_api = status["services"]["api"]["pid"]

        restarted = answer(await client.call_tool("restart", {"services": ["api"]}))
        assert restarted == {"ok": True, "exit_code": 0, "output": "api ready"}
        api = answer(await client.call_tool("status", {}))["services"]["api"]
        assert api["state"] == "ready" and api["restarts"] == 1 and api["pid"] != old_api

        # An unknown service: devup's own usage error, as a failed call the agent can read.
        unknown = error_text(await client.call_tool("restart", {"services": ["apj"]}))
        assert 'unknown service "apj"' in unknown and 'did you mean "api"?' in unknown
        # Not a service name at all (it would be read as an option): refused by the schema.
        assert "pattern" in error_text(await client.call_tool("stop", {"services": ["-f"]}))
        assert "10000" in error_text(await client.call_tool("logs", {"lines": 10**6}))
        # An unknown tool: a JSON-RPC error, and the session goes on.
        with pytest.raises(MCPError) as raised:
            await client.call_tool("reboot", {})
        assert raised.value.code == INVALID_PARAMS and "reboot" in raised.value.message

        # The server talks on stdio only.
        assert not [c for c in psutil.Process(server_pid).net_connections("inet") if not c.raddr]
        stopped = answer(await client.call_tool("stop", {"services": ["worker"]}))
        assert stopped["ok"] and stopped["exit_code"] == 0
        worker = answer(await client.call_tool("status", {}))["services"]["worker"]
        assert worker["state"] == "stopped" and worker["pid"] is None
        assert answer(await client.call_tool("stop", {}))["ok"]  # no names: the whole run
        return server_pid

    with_session(project.root, tmp_path / "mcp.err", scenario)
    assert run.wait() == 0


def test_queries_without_a_run(project: Project, tmp_path: Path) -> None:
    project.write(SERVICES, **{".env": "TOKEN=hunter2\n"}, devup='env_file = ".env"\n')
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    direct_ports = json.loads(project.devup("ports", "--json").stdout)

    async def scenario(client: ClientSession) -> int:
        not_running = error_text(await client.call_tool("status", {}))
        assert "devup: error: devup is not running in this project" in not_running
        assert answer(await client.call_tool("ports", {})) == direct_ports
        who = answer(await client.call_tool("who", {"port": port}))
        assert [listener["pid"] for listener in who["listeners"]] == [os.getpid()]
        nobody = answer(await client.call_tool("who", {"port": 1}))
        assert nobody == {"port": 1, "listeners": []}
        env = answer(await client.call_tool("env", {"service": "api"}))
        assert answer(await client.call_tool("env", {"service": "api", "path": here})) == env
        token = next(v for v in env["variables"] if v["name"] == "TOKEN")
        assert token["value"] == "***" and token["secret"] and not env["revealed"]
        assert 'unknown service "wrker"' in error_text(
            await client.call_tool("env", {"service": "wrker"})
        )
        elsewhere = error_text(await client.call_tool("status", {"path": str(tmp_path / "no")}))
        assert "devup: error: no such folder" in elsewhere
        return mcp_server_pid()

    # Started outside the project, as Claude Desktop starts servers: -f names the manifest.
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    here = str(project.root)
    manifest = ("-f", str(project.root / "devports.toml"))
    with listener:
        with_session(outside, tmp_path / "mcp.err", scenario, manifest)


def test_logs_tool(project: Project, running: list[DevupProcess], tmp_path: Path) -> None:
    if not has_option(project, "logs", "--grep"):
        pytest.skip("needs `devup logs --json --grep` (branch worktrees)")
    project.write(SERVICES)
    run = project.start("--no-watch")
    running.append(run)
    run.expect_line(r"2 services up")

    async def scenario(client: ClientSession) -> int:
        logs = answer(await client.call_tool("logs", {"services": ["worker"], "lines": 5}))
        assert logs["truncated"] is False
        assert [(line["service"], line["text"]) for line in logs["lines"]] == [
            ("worker", "working")
        ]
        grep = answer(await client.call_tool("logs", {"grep": "^working$"}))
        assert {(line["service"], line["text"]) for line in grep["lines"]} == {
            ("worker", "working")
        }
        unknown = error_text(await client.call_tool("logs", {"services": ["nope"]}))
        assert 'unknown service "nope"' in unknown
        return mcp_server_pid()

    with_session(project.root, tmp_path / "mcp.err", scenario)
    assert run.stop() == 130  # SIGINT


def test_up_tool_and_stop_the_run(project: Project, tmp_path: Path) -> None:
    if not has_option(project, "up", "--detach"):
        pytest.skip("needs `devup up --detach --json` (branch detach)")
    project.write(SERVICES)

    async def scenario(client: ClientSession) -> int:
        summary = answer(await client.call_tool("up", {"timeout_s": 30}))
        status = answer(await client.call_tool("status", {}))
        assert status["services"]["api"]["url"] in json.dumps(summary)
        again = answer(await client.call_tool("up", {}))
        assert answer(await client.call_tool("status", {}))["pid"] == status["pid"]
        assert again.keys() == summary.keys()
        assert answer(await client.call_tool("stop", {}))["ok"]
        return mcp_server_pid()

    with_session(project.root, tmp_path / "mcp.err", scenario)
    assert project.devup("status").returncode == 1


def test_without_the_sdk(project: Project, tmp_path: Path) -> None:
    hidden = tmp_path / "no-sdk" / "mcp"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'mcp'\", name='mcp')\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{hidden.parent}{os.pathsep}{REPO}"}
    result = subprocess.run(
        [*DEVUP, "mcp"], cwd=project.root, env=env, capture_output=True, text=True, timeout=30
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        "devup: error: devup mcp needs the MCP SDK",
        "hint: pip install 'devup[mcp]'",
    ]


def test_a_long_log_answer_keeps_the_newest_lines_that_fit() -> None:
    from orchestrator.cli.mcp_server import LOG_ANSWER_MAX_BYTES, log_answer

    rows = [json.dumps({"service": "api", "text": f"{i:05d} " + "x" * 994}) for i in range(400)]
    answer = log_answer("\n".join(rows) + "\n")
    kept = [line["text"][:5] for line in answer["lines"]]
    assert answer["truncated"] and kept[-1] == "00399" and kept == sorted(kept)
    assert 100 < len(kept) < 400 and len(json.dumps(answer)) <= LOG_ANSWER_MAX_BYTES
    assert log_answer("\n".join(rows[:3])) == {
        "lines": [json.loads(row) for row in rows[:3]],
        "truncated": False,
    }
