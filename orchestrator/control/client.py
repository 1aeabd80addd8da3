"""The client end of the control channel, all a command run in another terminal does: the grammar
of the verbs (VERBS, which the server answers one handler each and the CLI turns into commands),
where the project's socket is, one request and its answer, what `devup status/restart/stop/start/
reload` print, and the fast path that answers them without click or the manifest parser.

Kept apart from the server (server.py) so these commands load no threads, queues or selectors.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time

from orchestrator.base.errors import DevupError, UsageError
from orchestrator.base.gitbranch import branch_of
from orchestrator.base.paths import control_dir, project_key

TYPE_CHECKING = False  # not typing's: importing typing costs every CLI start ~6 ms
if TYPE_CHECKING:
    import socket
    from pathlib import Path
    from typing import Any, Literal

    from orchestrator.config.manifest import Manifest

SOCKET_NAME = "control.sock"
CONNECT_TIMEOUT_S = 2.0
CONNECT_RETRY_S = 0.005
NOT_RUNNING = "devup is not running in this project"
STOP_WAIT_EXTRA_S = 10.0  # beyond stop_timeout: the run's own teardown (logs, leases, lock)
SETTLE_WAIT_EXTRA_S = 30.0  # beyond stop_timeout + ready_timeout: backoff, a busy port


class Verb:
    """A control verb as the command line spells it: `devup NAME [SERVICE...] [FLAG...]`."""

    __slots__ = ("flags", "help_text", "name", "services", "short_help")

    def __init__(
        self,
        name: str,
        services: Literal["none", "optional", "required"],
        flags: dict[str, str],
        help_text: str,
        short_help: str,
    ) -> None:
        self.name = name
        self.services = services  # whether it takes service names, and needs at least one
        self.flags = flags  # flag: its help
        self.help_text = help_text
        self.short_help = short_help


_NO_WAIT = {"--no-wait": "Return at once, not when the services settle."}
# The one list of verbs: the server has a handler for each (server.HANDLERS), the CLI a command
# (cli/main.py), and the fast path takes exactly the forms it allows (parse).
VERBS = {
    verb.name: verb
    for verb in (
        Verb(
            "status",
            "none",
            {"--json": "Print the status as JSON."},
            "Ask the running devup for each service's state, pid, port, restarts and uptime.",
            "Each service's state, pid, port, restarts and uptime.",
        ),
        Verb(
            "restart",
            "required",
            _NO_WAIT,
            "Restart services of the running devup; returns once they are ready.",
            "Restart services of the running devup (waits until ready).",
        ),
        Verb(
            "start",
            "required",
            _NO_WAIT,
            "Start stopped services (and what they need); returns once ready.",
            "Start stopped services of the running devup (waits).",
        ),
        Verb(
            "stop",
            "optional",
            _NO_WAIT,
            "Stop services of the running devup; with no names, stop the run.",
            "Stop services of the running devup, or the whole run.",
        ),
        Verb(
            "reload",
            "none",
            {},
            "Apply devports.toml and its env files to the running devup now (it also follows "
            "them).",
            "Apply devports.toml to the running devup.",
        ),
    )
}


def socket_path(root: Path) -> Path:
    return control_dir(root) / SOCKET_NAME


def request(
    root: Path,
    verb: str,
    names: list[str] | None = None,
    options: dict[str, Any] | None = None,
    timeout_s: float | None = 10.0,
) -> dict[str, Any]:
    """Send one request to the project's running devup and return its answer."""
    return request_path(socket_path(root), verb, names, options, timeout_s)


def request_path(
    path: Path,
    verb: str,
    names: list[str] | None = None,
    options: dict[str, Any] | None = None,
    timeout_s: float | None = 10.0,
) -> dict[str, Any]:
    import socket  # here: every other command checks VERBS, and needs no socket

    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        _connect(conn, str(path), CONNECT_TIMEOUT_S)
        line = {"verb": verb, "names": names or [], "options": options or {}}
        # A devup that refuses the request (another user) answers and closes without reading it:
        # the send may then fail, and the answer is still there to read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.sendall(json.dumps(line).encode() + b"\n")
        conn.settimeout(timeout_s)
        try:
            data = _read_all(conn)
        except TimeoutError:
            raise DevupError(f"devup did not answer within {timeout_s:g}s") from None
    finally:
        conn.close()
    if not data:
        raise DevupError("devup ended before it answered")
    try:
        answer = json.loads(data)
    except ValueError:  # cut off: devup ended (or was killed) while it answered
        raise DevupError("devup ended before it answered") from None
    if not isinstance(answer, dict):
        raise DevupError("devup sent an answer that is not a JSON object")
    return answer


def _connect(conn: socket.socket, path: str, timeout_s: float) -> None:
    """Connect, retrying while the listen backlog is full: an AF_UNIX connect fails with EAGAIN
    at once then (it does not wait like TCP's), so many clients at once would fail for nothing."""
    deadline = time.monotonic() + timeout_s
    while True:
        conn.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            conn.connect(path)
            return
        except (FileNotFoundError, ConnectionRefusedError):
            raise DevupError(NOT_RUNNING) from None
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise DevupError("cannot reach devup: too busy to accept (timed out)") from None
            time.sleep(CONNECT_RETRY_S)  # the backlog drains as devup accepts: poll it
        except OSError as exc:
            raise DevupError(f"cannot reach devup: {exc.strerror or exc}") from None


def check_answer(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer, or a DevupError with devup's reason when it says no."""
    if not answer.get("ok"):
        raise DevupError(str(answer.get("error", "devup refused the request")))
    return answer


def _read_all(conn: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            break
    return b"".join(chunks)


# What the verbs do from another terminal: find the running devup from the project folder alone,
# check the names against its own list (never against devports.toml, which may not parse), ask it,
# and turn its answer into text.


def status(root: Path, as_json: bool) -> str:
    answer = check_answer(request(root, "status"))
    doc = {"pid": answer["pid"], "services": answer["services"]}
    if "manifest" in answer:  # a devup that follows its manifest (live.py)
        doc["manifest"] = answer["manifest"]
    # Which worktree this is: each git worktree of a repository is a project of its own.
    doc["folder"], doc["branch"] = project_key(root), branch_of(root)
    return json.dumps(doc, indent=2) if as_json else format_status(doc)


def format_status(doc: dict[str, Any]) -> str:
    head = ("NAME", "STATE", "PID", "PORT", "URL", "RESTARTS", "UPTIME", "EXIT")
    rows = [head]
    for name, svc in doc["services"].items():
        rows.append(
            (
                name,
                svc["state"],
                _dash(svc["pid"]),
                _dash(svc["port"]),
                _dash(svc["url"]),
                str(svc["restarts"]),
                format_uptime(svc["uptime_s"]),
                _dash(svc["exit_code"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    where = f" in {doc['folder']}" if doc.get("folder") else ""
    where += f" (branch {doc['branch']})" if doc.get("branch") else ""
    text = f"devup pid {doc['pid']}{where}\n" + "\n".join(lines)
    manifest = doc.get("manifest") or {}
    if manifest.get("error"):
        text += f"\n{manifest['error']}; still running the previous version"
    elif manifest.get("pending"):
        text += "\ndevports.toml changed since it was applied: `devup reload` applies it"
    return text


def format_uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def control(
    root: Path, verb: str, names: list[str], wait: bool, manifest_path: Path | None = None
) -> tuple[int, str]:
    """restart/stop/start/reload for the project folder `root`, never parsing devports.toml while
    devup runs: names are checked against the running devup's own list (a Procfile group names its
    lines), timeouts come from its answer. Only when nothing runs is the manifest read, to give a
    typo its did-you-mean before saying devup is not running."""
    try:
        facts = check_answer(request(root, "status"))
    except DevupError as exc:
        if str(exc) == NOT_RUNNING and names and manifest_path is not None:
            _check_names_in_file(manifest_path, names)
        raise
    run = facts.get("run", {})
    stop_s = float(run.get("stop_timeout_s", 5.0))
    settle_s = float(run.get("settle_timeout_s", stop_s + SETTLE_WAIT_EXTRA_S))
    if verb == "reload":
        return reload(root, settle_s)
    running = list(facts["services"])
    targets, unknown = expand_running(running, names)
    if unknown and verb in ("restart", "start") and _named_in_file(manifest_path, unknown):
        # Named in devports.toml since the run read it? Apply the file, then look again.
        with contextlib.suppress(DevupError):
            request(root, "reload", timeout_s=settle_s)
            running = list(check_answer(request(root, "status"))["services"])
            targets, unknown = expand_running(running, names)
    if unknown:
        raise unknown_service(unknown[0], running)
    return send(root, verb, targets, wait, stop_s, settle_s)


def unknown_service(name: str, known: list[str]) -> UsageError:
    """`unknown service "apj"`, with the closest of `known` (or a Procfile service's group name)
    as a did-you-mean, else the list of them."""
    import difflib

    choices = [*known, *{n.split(".")[0] for n in known if "." in n}]
    close = difflib.get_close_matches(name, choices, n=1)
    hint = f'did you mean "{close[0]}"?' if close else f"services: {', '.join(known)}"
    return UsageError(f'unknown service "{name}"', hint=hint)


def expand_running(running: list[str], names: list[str]) -> tuple[list[str], list[str]]:
    """The running services the user named (a Procfile service names all its lines), and the
    names that match none."""
    targets: list[str] = []
    unknown: list[str] = []
    for name in names:
        lines = [n for n in running if n.startswith(name + ".")]
        if name in running:
            targets.append(name)
        elif lines:
            targets.extend(lines)
        else:
            unknown.append(name)
    return targets, unknown


def reload(root: Path, timeout_s: float) -> tuple[int, str]:
    """`devup reload`: the running devup applies devports.toml (and its env files) as they are."""
    answer = request(root, "reload", timeout_s=timeout_s)
    if not answer.get("ok"):
        raise DevupError(str(answer.get("error", "devup refused the request")))
    return 0, str(answer.get("summary", ""))


def _check_names_in_file(manifest_path: Path, names: list[str]) -> None:
    from orchestrator.config.manifest import load_manifest, service_names

    try:
        manifest = load_manifest(manifest_path)
    except DevupError:
        return  # a broken file: "not running" is the answer that matters
    service_names(manifest, names)


def send(
    root: Path, verb: str, targets: list[str], wait: bool, stop_timeout_s: float, settle_s: float
) -> tuple[int, str]:
    """restart/stop/start of services the running devup knows by these names: exit code and
    text; waits up to `settle_s` for its answer (stop_timeout_s for the run to end, with no
    names to stop)."""
    if verb == "stop" and not targets:
        return stop_all(root, stop_timeout_s)
    answer = request(root, verb, targets, {"wait": wait}, timeout_s=settle_s)
    if not answer.get("ok") and "unknown" in answer:
        missing = ", ".join(f'"{n}"' for n in answer["unknown"])
        raise DevupError(
            f"{missing} not part of the running devup",
            hint="it was started with only some services; restart it with them to control these",
        )
    if "services" not in answer:
        check_answer(answer)
    if answer.get("manifest_error"):
        what = "restarted" if verb == "restart" else "started"
        error = answer["manifest_error"]
        print(f"devup: {error}; {what} with the previous version", file=sys.stderr)
    states: dict[str, str] = answer["services"]
    lines = [f"{name} {state}" for name, state in states.items()]
    if verb == "stop":
        failed = wait and any(state != "stopped" for state in states.values())
    else:
        # A task (port = false, restart = "no") that finished with 0 came up as it should.
        failed = wait and bool(answer.get("failed", []))
    return (1 if failed else 0), "\n".join(lines)


def stop_all(root: Path, stop_timeout_s: float) -> tuple[int, str]:
    """Ask the run to stop as Ctrl-C would, and return once it has ended."""
    from orchestrator.system import runstate

    pid = check_answer(request(root, "status"))["pid"]
    check_answer(request(root, "stop"))
    deadline = time.monotonic() + stop_timeout_s + STOP_WAIT_EXTRA_S
    while runstate.running_pid(root) is not None:
        if time.monotonic() > deadline:
            raise DevupError(f"devup (pid {pid}) is still stopping")
        time.sleep(0.02)  # polling the run lock: the kernel drops it when devup exits
    return 0, f"devup (pid {pid}) stopped"


def settle_timeout(manifest: Manifest) -> float:
    """How long `restart/start/stop SERVICE` waits for devup's answer."""
    ready = max((s.ready_timeout_s for s in manifest.services.values()), default=0.0)
    return manifest.settings.stop_timeout_s + ready + SETTLE_WAIT_EXTRA_S


def _dash(value: object) -> str:
    return "-" if value is None else str(value)


def _named_in_file(manifest_path: Path | None, names: list[str]) -> bool:
    """Whether devports.toml as it is now names each of `names` (a typo never applies pending
    edits as a side effect of a command that then fails)."""
    if manifest_path is None:
        return False
    from orchestrator.config.manifest import load_manifest, service_names

    try:
        service_names(load_manifest(manifest_path), names)  # a Procfile group names its lines
    except DevupError:  # a file that does not parse, or a name it does not have
        return False
    return True


# The fast path: `devup status [--json]`, `devup restart|start|stop SERVICE... [--no-wait]`, `devup
# stop` and `devup reload` without click or the manifest parser, which are most of the time they
# take (and a running devup must stay reachable while devports.toml does not parse).


def parse(args: list[str]) -> tuple[Verb, list[str], set[str]] | None:
    """`VERB [SERVICE...] [FLAG...]` as VERBS allows it: the verb, the names and the flags given;
    None for anything else (-f FILE, --help, a flag twice, no name where one is needed, ...),
    which is the click CLI's to answer or refuse."""
    verb = VERBS.get(args[0]) if args else None
    if verb is None:
        return None
    names: list[str] = []
    flags: set[str] = set()
    for arg in args[1:]:
        if arg in verb.flags and arg not in flags:
            flags.add(arg)
        elif arg.startswith("-") or verb.services == "none":
            return None
        else:
            names.append(arg)
    if verb.services == "required" and not names:
        return None
    return verb, names, flags


def command(verb: str, manifest: Path, names: list[str], flags: set[str]) -> tuple[int, str]:
    """What `devup VERB NAMES... FLAGS...` exits with and prints, for the project of `manifest`
    (found, never parsed): the CLI's command and the fast path both end here."""
    if verb == "status":
        return 0, status(manifest.parent, "--json" in flags)
    wait = "--no-wait" not in flags
    return control(manifest.parent, verb, names, wait, manifest_path=manifest)


def fast_path(args: list[str]) -> int | None:
    """The exit code, after printing what `devup ARGS...` prints, for a verb's command line
    (parse); None: use the click CLI."""
    parsed = parse(args)
    if parsed is None:
        return None
    from pathlib import Path

    from orchestrator.base.locate import find_manifest

    verb, names, flags = parsed
    try:
        code, text = command(verb.name, find_manifest(Path.cwd()), names, flags)
    except DevupError as exc:
        print(exc.report(), file=sys.stderr)
        return exc.exit_code
    if text:
        print(text)
    return code
