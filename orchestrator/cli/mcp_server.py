"""`devup mcp`: a Model Context Protocol server on stdio, for coding agents. Each tool runs the
devup command line (`python -m orchestrator VERB ... --json`) in the project folder and answers
with what it printed, so the shapes are those of the `--json` commands (docs/json.md), one
implementation serves both, and no `sys.exit` in command code can end the server.

Imported only by `devup mcp`: the MCP SDK is an optional extra and slow to import.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, ToolAnnotations
from pydantic import Field

from orchestrator import __version__

QUERY_DEADLINE_S = 30.0  # status, ports, who, env, logs: each answers at once
CONTROL_DEADLINE_S = 300.0  # restart/start/stop wait for readiness (ready_timeout, 30 s each)
UP_TIMEOUT_S = 120.0  # `up` waits this long for readiness unless told otherwise
LOG_LINES_DEFAULT = 200
LOG_LINES_MAX = 10_000
LOG_ANSWER_MAX_BYTES = 200_000  # about 50k tokens: the newest lines that fit are kept

# A service (or Procfile line, `shop.web`) as the manifest allows it, but never an option.
ServiceName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", max_length=200)]
ProjectPath = Annotated[
    str | None,
    Field(description="The project folder (default: the one `devup mcp` was started in)."),
]

# Hints for clients that ask before each call: queries change nothing; only stop ends things.
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
CHANGES = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
ENDS = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False)

INSTRUCTIONS = """\
devup runs this project's dev services (devports.toml): each has a stable port of its own.
Start them with `up` (it returns once they are ready, with their URLs); read `status` for
states, pids and URLs; use `logs` (with `grep`) to see what a service printed; `restart` a
service after changing what it reads only once. Never kill a process on a port by hand: ask
`who` which process holds it, and use `stop`/`restart`. Ports are the services' own: take
URLs from `status` or `ports`, never guess 3000 or 8080."""


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str


class Project:
    """Where the tools run devup: a folder (and the manifest `devup -f` named, if any)."""

    def __init__(self, folder: Path, manifest_file: Path | None = None) -> None:
        self.folder = folder
        self.manifest_file = manifest_file

    def run(self, args: list[str], deadline_s: float, path: str | None = None) -> Outcome:
        """`devup ARGS` in the project (or in `path`), stdin closed, output captured."""
        command = [sys.executable, "-m", "orchestrator"]
        if path is not None:
            folder = Path(path).expanduser()
            if not folder.is_dir():
                raise ToolError(f"devup: error: no such folder: {path}")
        else:
            folder = self.folder
            if self.manifest_file is not None:
                command += ["-f", str(self.manifest_file)]
        # Files, not pipes: the answer is due when devup exits, even if a process it started
        # in the background (`up --detach`) still held a copy of a pipe.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                code = subprocess.run(
                    [*command, *args],
                    cwd=folder,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    timeout=deadline_s,
                ).returncode
            except subprocess.TimeoutExpired:
                raise ToolError(
                    f"devup: error: `devup {args[0]}` did not answer within {deadline_s:g}s"
                    "\nhint: the `status` tool shows what each service is doing"
                ) from None
            out.seek(0)
            err.seek(0)
            return Outcome(code, _text(out.read()), _text(err.read()))

    def json(
        self, args: list[str], path: str | None, ok_codes: tuple[int, ...] = (0,)
    ) -> dict[str, Any]:
        """The JSON a `--json` command printed; its error line as a tool error otherwise."""
        outcome = self.run(args, QUERY_DEADLINE_S, path)
        if outcome.code not in ok_codes:
            raise ToolError(failure(outcome))
        try:
            doc = json.loads(outcome.stdout)
        except ValueError:
            raise ToolError(f"devup {args[0]} printed no JSON: {failure(outcome)}") from None
        if not isinstance(doc, dict):
            raise ToolError(f"devup {args[0]} printed JSON that is not an object")
        return doc

    def control(
        self, verb: str, services: list[str], wait: bool, path: str | None
    ) -> dict[str, Any]:
        """restart/start/stop have no --json: their exit code and what they printed."""
        args = [verb, *services] + ([] if wait else ["--no-wait"])
        outcome = self.run(args, CONTROL_DEADLINE_S, path)
        if outcome.code == 2:  # a usage error: an unknown service, no devports.toml
            raise ToolError(failure(outcome))
        output = "\n".join(s for s in (outcome.stdout.strip(), outcome.stderr.strip()) if s)
        return {"ok": outcome.code == 0, "exit_code": outcome.code, "output": output}


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def failure(outcome: Outcome) -> str:
    """What devup said about a failure (its `devup: error:` and `hint:` lines)."""
    text = outcome.stderr.strip() or outcome.stdout.strip()
    return text or f"devup exited with code {outcome.code} and printed nothing"


def log_answer(stdout: str) -> dict[str, Any]:
    """`devup logs --json` lines as one object; the oldest dropped past LOG_ANSWER_MAX_BYTES."""
    kept: list[str] = []
    size = 0
    rows = [row for row in stdout.splitlines() if row.strip()]
    for row in reversed(rows):
        size += len(row) + 2
        if size > LOG_ANSWER_MAX_BYTES:
            break
        kept.append(row)
    try:
        lines = [json.loads(row) for row in reversed(kept)]
    except ValueError:
        raise ToolError("devup logs --json printed a line that is not JSON") from None
    return {"lines": lines, "truncated": len(kept) < len(rows)}


def build_server(project: Project) -> MCPServer:
    server: MCPServer = MCPServer(
        "devup", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )
    server.middleware.append(_refuse_unknown_tools(server))

    @server.tool(annotations=READ_ONLY)
    def status(path: ProjectPath = None) -> dict[str, Any]:
        """Each service of the running devup: state, pid, port, url, restarts, uptime_s,
        exit_code (as `devup status --json`). An error when devup is not running here."""
        return project.json(["status", "--json"], path)

    @server.tool(annotations=READ_ONLY)
    def logs(
        services: list[ServiceName] | None = None,
        lines: Annotated[int, Field(ge=1, le=LOG_LINES_MAX)] = LOG_LINES_DEFAULT,
        since: Annotated[str | None, Field(description="30s, 10m, 2h")] = None,
        grep: Annotated[str | None, Field(description="A regular expression")] = None,
        path: ProjectPath = None,
    ) -> dict[str, Any]:
        """The last `lines` log lines of the current or last run (of `services`, default all;
        "devup" names devup's own), oldest first, as `devup logs --json` objects (time,
        service, stream, text). `truncated`: older lines were left out to keep the answer
        short."""
        args = ["logs", "--json", f"--lines={lines}"]
        args += [f"--since={since}"] if since is not None else []
        args += [f"--grep={grep}"] if grep is not None else []
        outcome = project.run([*args, *(services or [])], QUERY_DEADLINE_S, path)
        if outcome.code != 0:
            raise ToolError(failure(outcome))
        return log_answer(outcome.stdout)

    @server.tool(annotations=CHANGES)
    def restart(
        services: Annotated[list[ServiceName], Field(min_length=1)],
        wait: bool = True,
        path: ProjectPath = None,
    ) -> dict[str, Any]:
        """Restart services of the running devup; returns once they are ready (or failed)
        unless wait is false. Answers {ok, exit_code, output}."""
        return project.control("restart", services, wait, path)

    @server.tool(annotations=CHANGES)
    def start(
        services: Annotated[list[ServiceName], Field(min_length=1)],
        wait: bool = True,
        path: ProjectPath = None,
    ) -> dict[str, Any]:
        """Start stopped services of the running devup (and what they need); returns once
        ready unless wait is false. Answers {ok, exit_code, output}."""
        return project.control("start", services, wait, path)

    @server.tool(annotations=ENDS)
    def stop(
        services: list[ServiceName] | None = None, wait: bool = True, path: ProjectPath = None
    ) -> dict[str, Any]:
        """Stop services of the running devup; with no services, stop the whole run (every
        service, then devup itself). Answers {ok, exit_code, output}."""
        return project.control("stop", services or [], wait, path)

    @server.tool(annotations=CHANGES)
    def up(
        services: list[ServiceName] | None = None,
        timeout_s: Annotated[float, Field(gt=0, le=3600)] = UP_TIMEOUT_S,
        path: ProjectPath = None,
    ) -> dict[str, Any]:
        """Start the services (default all) in the background, as `devup up --detach`, and
        answer once every one is ready, with their URLs; when already up, changes nothing and
        answers the same. An error naming the service that failed, with its last lines."""
        args = ["up", "--detach", "--json", f"--timeout={timeout_s:g}", *(services or [])]
        outcome = project.run(args, timeout_s + QUERY_DEADLINE_S, path)
        if outcome.code != 0:
            raise ToolError("\n".join(s for s in (outcome.stdout.strip(), failure(outcome)) if s))
        try:
            doc: dict[str, Any] = json.loads(outcome.stdout)
        except ValueError:
            raise ToolError(f"devup up printed no JSON: {failure(outcome)}") from None
        return doc

    @server.tool(annotations=READ_ONLY)
    def ports(path: ProjectPath = None) -> dict[str, Any]:
        """Each service's port, URL and stable lease, and what holds a busy one (as `devup
        ports --json`); while devup runs, the ports in use."""
        return project.json(["ports", "--json"], path)

    @server.tool(annotations=READ_ONLY)
    def who(
        port: Annotated[int, Field(ge=1, le=65535)], path: ProjectPath = None
    ) -> dict[str, Any]:
        """Which processes listen on PORT (pid, command, folder) and whether this project's
        devup, another devup run, or nothing of devup's started them (as `devup who --json`;
        `listeners` is empty when nothing listens)."""
        return project.json(["who", str(port), "--json"], path, ok_codes=(0, 1))

    @server.tool(annotations=READ_ONLY)
    def env(service: ServiceName, path: ProjectPath = None) -> dict[str, Any]:
        """The variables devup sets for SERVICE (PORT, other services' URLs, env files, env
        tables), values from env files and env tables masked (as `devup env --json`)."""
        return project.json(["env", service, "--json"], path)

    return server


def _refuse_unknown_tools(server: MCPServer) -> Any:
    """An unknown tool is a protocol error (JSON-RPC -32602, as the MCP spec says), not a
    failed call: the SDK alone would answer it as a tool result."""

    async def middleware(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "tools/call" and ctx.params is not None:
            name = ctx.params.get("name")
            known = {tool.name for tool in await server.list_tools()}
            if isinstance(name, str) and name not in known:
                raise MCPError(INVALID_PARAMS, f"unknown tool {name!r}; tools: {sorted(known)}")
        return await call_next(ctx)

    return middleware


def serve(folder: Path, manifest_file: Path | None) -> int:
    """Serve on stdin/stdout until the client closes them."""
    build_server(Project(folder, manifest_file)).run("stdio")
    return 0
