"""`devup up --detach`: the run in the background (its own session, no terminal, stdin /dev/null),
and an answer once every service is ready, one failed to start, or --timeout passed. Against a run
that is already up it starts nothing and reports that run (idempotent). Never reads stdin.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from orchestrator.base.errors import DevupError, UsageError
from orchestrator.base.paths import ensure_private_dir, project_state_dir
from orchestrator.base.safefs import open_file, read_file
from orchestrator.config.manifest import Manifest, start_order
from orchestrator.control import client
from orchestrator.system import runstate

DEFAULT_TIMEOUT_S = 60.0
# The waiting parent looks at the run record (.devup/run.json, rewritten at each turn of the
# run's loop in which a state changed) this often, and asks the run for its status only when it
# changed or STATUS_EVERY_S passed: a status costs ~2 ms of CPU on both sides, which 100 asks a
# second would take from the services starting on a small machine; a stat costs microseconds.
POLL_S = 0.005
STATUS_EVERY_S = 0.25
LAST_LINES = 20
ERR_NAME = "detached.err"  # the background devup's stderr: what it says if it fails to run
PID_NAME = "detached.pid"  # the pid of a detached run, so a foreground `devup up` can say so
MAX_ERR_BYTES = 64 * 1024


def parse_timeout(text: str) -> float:
    """`--timeout 60`, `90s`, `2m`: seconds, more than 0."""
    from orchestrator.output.logs import parse_duration

    try:
        seconds = parse_duration(text)
    except UsageError:
        seconds = 0.0
    if not seconds > 0 or seconds == float("inf"):
        raise UsageError(
            f'--timeout: "{text}" is not a duration above 0', hint="for example 60, 90s, 2m"
        )
    return seconds


class Verdict:
    """Where the services named stand: all up, one failed, or some still on their way."""

    # A plain class: this module is imported before `devup up`'s first spawn, and a dataclass
    # would import `dataclasses` (inspect, ast, dis) there.
    __slots__ = ("failed", "missing", "not_ready", "pending", "up")

    def __init__(self) -> None:
        self.up: list[str] = []
        self.failed: str | None = None
        self.pending: dict[str, str] = {}  # name -> what it waits on
        self.missing: list[str] = []  # named, but not part of the running devup
        # Up but not ready: past its ready_timeout, counted as up as the run's summary counts it
        # (its dependents have started); name -> what it still waits on.
        self.not_ready: dict[str, str] = {}

    @property
    def done(self) -> bool:
        return self.failed is not None or bool(self.missing) or not self.pending


def up_detached(
    manifest: Manifest,
    names: tuple[str, ...],
    watching: bool,
    timeout_s: float,
    as_json: bool,
    debug: bool = False,
) -> NoReturn:
    """Start (or find) the run and wait for it; prints the summary and exits with its code."""
    order = start_order(manifest, list(names) or None)  # an unknown name: exit 2 before anything
    began = time.monotonic()
    deadline = began + timeout_s
    root = manifest.root
    child: int | None = None
    if runstate.running_pid(root) is None:
        child = _start_in_background(manifest, names, watching, debug)
    else:
        _start_held(root, order)
    answer, verdict, ended = _wait(manifest, order, child, deadline)
    if answer is None and child is not None and runstate.running_pid(root) is not None:
        # Another `up -d` (or `up`) took the run lock first: this one waits on that run.
        child = None
        _start_held(root, order)
        answer, verdict, ended = _wait(manifest, order, child, deadline)
    took = time.monotonic() - began
    if answer is None:
        _exit_now(_report_ended(root, ended, as_json))
    doc = _summary(answer, order, verdict, started=child is not None, took=took)
    if verdict.failed is not None:
        doc["failed"] = _failure(root, verdict.failed, answer["services"][verdict.failed])
    if as_json:
        print(json.dumps(doc, indent=2))
    else:
        _print_text(doc, verdict, timeout_s)
    _exit_now(0 if doc["ok"] else 1)


def _start_held(root: Path, order: list[str]) -> None:
    """`up -d` against a run where `devup stop NAME` holds some of the services: up means up,
    so they are started (the wait that follows tells how that goes)."""
    try:
        services = client.check_answer(client.request(root, "status"))["services"]
        held = [name for name in order if services.get(name, {}).get("held")]
        if held:
            client.check_answer(client.request(root, "start", held, {"wait": False}))
    except DevupError:
        return  # not answering yet, or ending: the wait finds out


def _exit_now(code: int) -> NoReturn:
    """Exit without the interpreter's finalization: with the run's modules loaded it takes
    100-180 ms on a busy machine, which the script waiting on `up -d` would wait too. Nothing is
    left to close: the output is flushed here, the files were closed by those that opened them."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):  # a reader gone (`| head -1`) is not an error
            stream.flush()
    os._exit(code)


def refuse_if_detached(root: Path) -> None:
    """A foreground `devup up` while a detached run is up: say it runs in the background and how
    to reach it (the run lock alone would say only that devup runs)."""
    pid = runstate.running_pid(root)
    if pid is None or pid != _detached_pid(root):
        return
    raise DevupError(
        f"devup is already running in the background in this project (pid {pid}, `devup up -d`)",
        hint="`devup logs -f` follows its output, `devup status` shows it, `devup stop` ends it",
    )


# -- the background run ----------------------------------------------------------------------


def _start_in_background(
    manifest: Manifest, names: tuple[str, ...], watching: bool, debug: bool
) -> int:
    """Fork the run into its own session (a fork, not a new interpreter: the manifest is parsed
    and devup's modules loaded already, which is most of devup's start). Returns its pid."""
    try:
        folder = ensure_private_dir(project_state_dir(manifest.root))
        # Emptied once the run lock is held (_run): a run that loses the race must not wipe it.
        err = open_file(folder / ERR_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    except OSError as exc:  # .devup is a file, the folder is read-only, ...
        raise DevupError(
            f"cannot create {exc.filename or project_state_dir(manifest.root)}: "
            f"{exc.strerror or exc}",
            hint="devup keeps its run state and logs in .devup/ in the project folder",
        ) from None
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError as exc:  # out of processes or memory
        os.close(err)
        raise DevupError(f"cannot start devup in the background: {exc.strerror or exc}") from None
    if pid:
        os.close(err)
        return pid
    code = 1
    try:
        os.setsid()  # no controlling terminal: a closed terminal or Ctrl-C there cannot reach it
        null = os.open(os.devnull, os.O_RDWR)
        # The services' output is in .devup/logs already; only devup's own errors are kept here.
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(err, 2)
        # Whatever else was open (the caller's pipes given to the parent) must not be held by a
        # run that outlives it: a caller reading the parent's output would wait for ever.
        os.closerange(3, _max_fd())
        code = _run(manifest, names, watching, debug, folder / PID_NAME)
    finally:
        os._exit(code)


def _run(
    manifest: Manifest, names: tuple[str, ...], watching: bool, debug: bool, pid_file: Path
) -> int:
    from orchestrator.base.paths import write_private_atomic
    from orchestrator.cli.up import UpOptions, up

    def locked() -> None:  # this run is the project's: its pid file, a fresh error file
        write_private_atomic(pid_file, f"{os.getpid()}\n".encode(), durable=False)
        from orchestrator.output.logfiles import capped_stderr

        capped_stderr(pid_file.with_name(ERR_NAME))  # rotated past the log files' cap

    options = UpOptions(names, color=False, watching=watching, debug=debug, on_locked=locked)
    try:
        try:
            return up(manifest, options)
        finally:
            if _detached_pid(manifest.root) == os.getpid():
                pid_file.unlink(missing_ok=True)
    except DevupError as exc:
        print(exc.report(), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BaseException:
        import traceback

        traceback.print_exc()
        return 1
    finally:
        sys.stderr.flush()


def _max_fd() -> int:
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if 0 < soft < 1 << 20 else 1 << 16


def _detached_pid(root: Path) -> int | None:
    try:
        text = read_file(project_state_dir(root) / PID_NAME, 32).decode().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


# -- waiting ---------------------------------------------------------------------------------


def _wait(
    manifest: Manifest, order: list[str], child: int | None, deadline: float
) -> tuple[dict[str, Any] | None, Verdict, int | None]:
    """Poll the run's status until the services named are up, one failed, or the deadline:
    (its last status answer, the verdict, None) or (None, -, exit code) if the run ended (a
    code of None: a run this command did not start, or one killed)."""
    answer: dict[str, Any] | None = None
    verdict = Verdict()
    record: tuple[int, int] | None = None
    asked_at = 0.0
    unanswered = ""
    while True:
        seen, now = _record_key(manifest.root), time.monotonic()
        if answer is not None and seen == record and now - asked_at < STATUS_EVERY_S:
            if now >= deadline:
                return answer, verdict, None
            time.sleep(POLL_S)  # nothing changed in the run since its last answer
            continue
        record, asked_at = seen, now
        try:
            answer = client.check_answer(client.request(manifest.root, "status"))
        except DevupError as exc:
            # Not listening yet, ending ("devup stopped"), or slow to answer: whether it ended
            # is told by the child's exit (or the run lock), not by this one request.
            answer, unanswered = None, str(exc)
        if answer is not None:
            verdict = judge(manifest, order, answer["services"])
            if verdict.done or time.monotonic() >= deadline:
                return answer, verdict, None
        else:
            ended = _ended(manifest.root, child)
            if ended is not None:
                return None, verdict, ended[0]
            if time.monotonic() >= deadline:
                verdict.pending = {"devup": f"does not answer yet ({unanswered})"}
                return {"pid": child, "services": {}}, verdict, None
        time.sleep(POLL_S)  # polling the run's status against the deadline


def _record_key(root: Path) -> tuple[int, int] | None:
    """Which version of the run record is there: it is replaced (a new inode) at each write."""
    try:
        st = os.stat(project_state_dir(root) / runstate.STATE_NAME)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _ended(root: Path, child: int | None) -> tuple[int | None] | None:
    """(exit code,) once the background devup has ended; None while it runs. A run this command
    did not start has ended when its run lock is free (its code is not ours to know)."""
    if child is None:
        return None if runstate.running_pid(root) is not None else (None,)
    pid, status = os.waitpid(child, os.WNOHANG)
    if pid == 0:
        return None
    return (os.waitstatus_to_exitcode(status),)


def judge(manifest: Manifest, order: list[str], services: dict[str, Any]) -> Verdict:
    """Each named service's standing from the run's status; the first failure decides."""
    verdict = Verdict()
    for name in order:
        svc = services.get(name)
        if svc is None:
            verdict.missing.append(name)  # it will not come: the run was started without it
            continue
        state = svc["state"]
        code = svc["exit_code"] if svc["exit_code"] is not None else svc.get("last_exit_code")
        if state == "ready" or (state == "running" and svc["port"] is None):
            verdict.up.append(name)
        elif state == "running":  # past its ready_timeout: the run went on without it
            verdict.up.append(name)
            verdict.not_ready[name] = _waits_on(manifest, name, svc, services)
        elif state == "stopped" and code == 0 and svc["port"] is None:
            verdict.up.append(name)  # a task that finished
        elif svc.get("failing") and (code is not None or state == "crashed"):
            verdict.failed = verdict.failed or name
        else:
            verdict.pending[name] = _waits_on(manifest, name, svc, services)
    return verdict


def _waits_on(manifest: Manifest, name: str, svc: dict[str, Any], services: dict[str, Any]) -> str:
    state = svc["state"]
    spec = manifest.services.get(name)
    if state == "waiting" and spec is not None:
        deps = [d for d in spec.depends_on if services.get(d, {}).get("state") != "ready"]
        return f"waits for {', '.join(deps) or 'its dependencies'}"
    ready_log = spec.ready_log if spec is not None else None
    if state in ("starting", "running"):
        if ready_log:
            what = f"a line matching {ready_log!r} in its output"
        elif svc["port"] is not None:
            what = f"something to listen on port {svc['port']}"
        else:
            what = "it to exit with code 0 (a task)"
        late = " (its ready_timeout has passed)" if state == "running" else ""
        return f"{state}, waits for {what}{late}"
    if state == "restarting":
        code = svc.get("last_exit_code")
        why = f" after exit code {code}" if code is not None else ""
        return f"restarting{why}"
    if state == "stopped":
        return f"stopped (`devup start {name}` starts it)"
    return str(state)


# -- what is printed -------------------------------------------------------------------------


def _summary(
    answer: dict[str, Any], order: list[str], verdict: Verdict, started: bool, took: float
) -> dict[str, Any]:
    services = {}
    for name in order:
        svc = answer["services"].get(name)
        if svc is None:
            continue
        services[name] = {
            "name": name,
            "state": svc["state"],
            "pid": svc["pid"],
            "port": svc["port"],
            "url": svc["url"],
            "exit_code": svc["exit_code"],
        }
    ok = verdict.done and verdict.failed is None and not verdict.missing
    return {
        "ok": ok,
        "pid": answer["pid"],
        "started": started,  # false: it was running already, nothing was started
        "took_s": round(took, 3),
        "services": services,
        "waiting": verdict.pending,
        "failed": None,
        "missing": verdict.missing,
        "not_ready": verdict.not_ready,
    }


def _failure(root: Path, name: str, svc: dict[str, Any]) -> dict[str, Any]:
    from orchestrator.output.logs import show

    lines: list[bytes] = []
    with contextlib.suppress(OSError):  # no log yet: the exit code alone then
        show(project_state_dir(root) / "logs", [name], lines.append, count=LAST_LINES)
    text = b"".join(lines).decode("utf-8", "replace")
    code = svc["exit_code"] if svc["exit_code"] is not None else svc.get("last_exit_code")
    return {
        "name": name,
        "state": svc["state"],
        "exit_code": code,
        "lines": _plain(text).splitlines(),
    }


def _plain(text: str) -> str:
    from orchestrator.base.ansi import strip_ansi

    return strip_ansi(text.encode()).decode("utf-8", "replace")


def _print_text(doc: dict[str, Any], verdict: Verdict, timeout_s: float) -> None:
    where = "started in the background" if doc["started"] else "was already running"
    head = f"devup {where} (pid {doc['pid']})"
    failed = doc["failed"]
    if failed is not None:
        print(
            f"devup: error: {failed['name']} failed to start: exit code {failed['exit_code']}"
            f" ({failed['state']}); its last lines:",
            file=sys.stderr,
        )
        for line in failed["lines"]:
            print(f"  {line}", file=sys.stderr)
        print(
            f"hint: the run goes on ({head}): a fix of its files restarts {failed['name']}, "
            f"`devup restart {failed['name']}` retries, `devup stop` ends the run",
            file=sys.stderr,
        )
        return
    if verdict.missing:
        print(
            f"devup: error: {head} without {', '.join(verdict.missing)}",
            file=sys.stderr,
        )
        print("hint: `devup stop`, then `devup up -d` with every service you need", file=sys.stderr)
        return
    if verdict.pending:
        print(
            f"devup: error: not ready after {timeout_s:g}s (--timeout): "
            + "; ".join(f"{name} {what}" for name, what in verdict.pending.items()),
            file=sys.stderr,
        )
        print(
            f"hint: {head} goes on; `devup logs -f` shows why, `devup stop` ends it",
            file=sys.stderr,
        )
        return
    services = doc["services"]
    up = sum(1 for s in services.values() if s["port"] is not None or s["state"] != "stopped")
    done = len(services) - up
    counts = f"{up} service{'s' * (up != 1)} up" + (f", {done} done" if done else "")
    print(f"{head}: {counts} in {doc['took_s']:.2f}s")
    width = max((len(n) for n in services), default=0)
    for name, svc in services.items():
        url = svc["url"] or ("(no port)" if svc["state"] != "stopped" else "done (exit 0)")
        pid = f"pid {svc['pid']}" if svc["pid"] is not None else ""
        late = "  not ready" if name in verdict.not_ready else ""
        print(f"  {name.ljust(width)}  {url:<22}  {pid:<10}{late}".rstrip())
    print("`devup logs -f` follows its output, `devup stop` ends it")
    for name, what in verdict.not_ready.items():
        print(f"devup: warning: {name} is not ready: {what}", file=sys.stderr)


def _report_ended(root: Path, code: int | None, as_json: bool) -> int:
    """The background devup ended before its services were up: what it said, and its code."""
    try:
        said = _tail(project_state_dir(root) / ERR_NAME, MAX_ERR_BYTES).decode("utf-8", "replace")
    except OSError:
        said = ""
    said = said.strip() or _last_devup_lines(root)
    if code == 0:  # with --no-watch, every service ran to its end with 0 before it was asked
        if as_json:
            print(json.dumps({"ok": True, "exit_code": 0, "ended": said}, indent=2))
        else:
            print(f"devup ran every service to its end (exit 0):\n{said}")
        return 0
    code = 1 if code is None else code
    if as_json:
        print(json.dumps({"ok": False, "exit_code": code, "error": said}, indent=2))
    elif said.startswith("devup: error:"):
        print(said, file=sys.stderr)
    else:
        ended = f"devup: error: devup ended with code {code} before its services were up"
        print(ended, file=sys.stderr)
        for line in said.splitlines():
            print(f"  {line}", file=sys.stderr)
    return code


def _tail(path: Path, limit: int) -> bytes:
    """The last `limit` bytes of `path` from a line's start: what devup said last comes after
    what `--debug` traced before it."""
    fd = open_file(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        start = max(0, size - limit)
        data = os.pread(fd, limit, start)
    finally:
        os.close(fd)
    if start and b"\n" in data:
        data = data.split(b"\n", 1)[1]
    return data


def _last_devup_lines(root: Path) -> str:
    from orchestrator.output.logs import DEVUP_LOG, show

    lines: list[bytes] = []
    try:
        show(project_state_dir(root) / "logs", [DEVUP_LOG], lines.append, count=LAST_LINES)
    except OSError:
        return ""
    return _plain(b"".join(lines).decode("utf-8", "replace"))
