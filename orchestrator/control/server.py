"""The server end of the control channel: a Unix socket (0600, in a 0700 folder, same user only)
through which `devup status/restart/stop/start/reload` talk to a running devup, one line of JSON
each way, and what each verb does to the supervisor (HANDLERS). The client end is client.py.

The server's threads only parse requests and post ControlRequested; on the supervisor's thread,
`handle` (injected as Supervisor(on_control=...)) runs the verb's handler, which answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.base.errors import DevupError
from orchestrator.base.paths import ensure_private_dir
from orchestrator.control.client import CONNECT_TIMEOUT_S, settle_timeout, socket_path
from orchestrator.run.changes import Notice, ServiceStateChanged, TurnEnded, settles
from orchestrator.run.events import ControlRequested
from orchestrator.run.states import State

if TYPE_CHECKING:
    from orchestrator.run.service import ServiceRun
    from orchestrator.run.supervisor import Supervisor

MAX_REQUEST_BYTES = 64 * 1024
REQUEST_READ_TIMEOUT_S = 5.0
LISTEN_BACKLOG = 4096
# Open connections at most (each costs a file descriptor and a thread): past it the oldest one that
# has not sent its request yet is closed, so idle clients can neither starve devup of descriptors
# (EMFILE in a spawn) nor lock out a real `devup status`.
MAX_CONNECTIONS = 64
ACCEPT_BACKOFF_S = 0.05  # after EMFILE at accept: the pending connection stays in the backlog
HANGUP_POLL_S = 0.5  # how often a request waiting on the supervisor checks that its client is there


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end of a connected Unix socket."""
    if hasattr(socket, "SO_PEERCRED"):  # Linux: struct ucred {pid, uid, gid}
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        return int(uid)
    # macOS / BSD: getpeereid() is LOCAL_PEERCRED at level SOL_LOCAL (0), a struct xucred
    # {u_int cr_version; uid_t cr_uid; ...}.
    sol_local, local_peercred = 0, getattr(socket, "LOCAL_PEERCRED", 0x001)
    creds = conn.getsockopt(sol_local, local_peercred, struct.calcsize("IIh16I"))
    return int(struct.unpack_from("II", creds)[1])


class ControlServer:
    """Accepts on the project's socket; each request becomes a ControlRequested on `post`."""

    def __init__(
        self,
        root: Path,
        post: Callable[[Any], None],
        *,
        allowed_uid: int | None = None,
        path: Path | None = None,
    ) -> None:
        self.path = path or socket_path(root)
        self._post = post
        self._allowed_uid = os.getuid() if allowed_uid is None else allowed_uid
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self._pending: set[queue.SimpleQueue[dict[str, Any] | None]] = set()
        self._lock = threading.Lock()  # guards _pending between connection threads and stop()
        self._stopped = False  # set by stop(), under _lock
        # Every open connection, in accept order, and whether it still waits for its request.
        self._conns: dict[socket.socket, bool] = {}  # under _lock

    def start(self) -> None:
        try:
            ensure_private_dir(self.path.parent.parent)
            ensure_private_dir(self.path.parent)
            _remove_stale_socket(self.path)
        except OSError as exc:  # XDG_RUNTIME_DIR or DEVUP_HOME is a file, read-only, ...
            raise DevupError(
                f"cannot create the control socket's folder {self.path.parent}: "
                f"{exc.strerror or exc}",
                hint="set XDG_RUNTIME_DIR (or DEVUP_HOME) to a folder you can write",
            ) from None
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(self.path))
            # The folder is 0700 already, so nobody else could reach it between bind and chmod.
            os.chmod(self.path, 0o600)
            # Many `devup status` at once (an editor, a script, an agent per service): a short
            # backlog makes the surplus fail at connect with EAGAIN. The kernel caps it (somaxconn).
            listener.listen(LISTEN_BACKLOG)
        except OSError:
            listener.close()
            raise
        self._listener = listener
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._accept_loop, name="devup-control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, answer any waiting client that devup has ended, remove the socket."""
        if self._listener is None:
            return
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=2)
        with self._lock:
            self._stopped = True  # a connection thread that gets here later answers itself
            for answers in self._pending:
                answers.put(None)
        self._listener.close()
        self._listener = None
        os.close(self._wake_r)
        os.close(self._wake_w)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while True:
            ready, _, _ = select.select([self._listener.fileno(), self._wake_r], [], [])
            if self._wake_r in ready:
                return
            try:
                conn, _ = self._listener.accept()
            except OSError:  # EMFILE, ENFILE, ENOBUFS: make room, then let the client wait
                self._close_oldest_idle()
                select.select([self._wake_r], [], [], ACCEPT_BACKOFF_S)
                continue
            with self._lock:
                full = len(self._conns) >= MAX_CONNECTIONS
            if full and not self._close_oldest_idle():
                _refuse(conn, "too many control connections waiting for devup; try again")
                continue
            with self._lock:
                self._conns[conn] = True
            try:
                threading.Thread(
                    target=self._serve, args=(conn,), name="devup-control-conn", daemon=True
                ).start()
            except RuntimeError:  # no thread to be had
                self._forget(conn)
                _refuse(conn, "devup cannot take more control connections now")

    def _close_oldest_idle(self) -> bool:
        """Shut the oldest connection that has not sent its request yet; its thread then ends."""
        with self._lock:
            idle = next((c for c, waiting in self._conns.items() if waiting), None)
            if idle is None:
                return False
            self._conns[idle] = False  # shut once
        with contextlib.suppress(OSError):
            idle.shutdown(socket.SHUT_RDWR)
        return True

    def _forget(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.pop(conn, None)
        conn.close()

    def _serve(self, conn: socket.socket) -> None:
        try:
            try:
                answer = self._answer(conn)
            except (OSError, ValueError) as exc:
                answer = {"ok": False, "error": f"bad request: {exc}"}
            except RecursionError:  # `[[[[...` 50,000 deep: json's parser recurses per level
                answer = {"ok": False, "error": "bad request: nested too deeply"}
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(answer).encode() + b"\n")
        finally:
            self._forget(conn)

    def _answer(self, conn: socket.socket) -> dict[str, Any]:
        if peer_uid(conn) != self._allowed_uid:
            return {"ok": False, "error": "refused: the peer is another user"}
        conn.settimeout(REQUEST_READ_TIMEOUT_S)
        line = _read_line(conn)
        with self._lock:
            if conn in self._conns:
                self._conns[conn] = False  # has asked: no longer idle
        request = json.loads(line)
        verb = request.get("verb") if isinstance(request, dict) else None
        if verb not in HANDLERS:
            return {"ok": False, "error": f"unknown verb {verb!r}"}
        names = request.get("names") or []
        options = request.get("options") or {}
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return {"ok": False, "error": "names must be a list of strings"}
        if not isinstance(options, dict):
            return {"ok": False, "error": "options must be an object"}
        answers: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        with self._lock:
            if self._stopped:
                return {"ok": False, "error": "devup stopped"}
            self._pending.add(answers)
        try:
            # The reply runs on the supervisor's thread: SimpleQueue.put never blocks it.
            self._post(ControlRequested(verb, tuple(names), dict(options), answers.put))
            answer = _wait_unless_hung_up(answers, conn)
        finally:
            with self._lock:
                self._pending.discard(answers)
        return answer if answer is not None else {"ok": False, "error": "devup stopped"}


def _wait_unless_hung_up(
    answers: queue.SimpleQueue[dict[str, Any] | None], conn: socket.socket
) -> dict[str, Any] | None:
    """The supervisor's answer; or, once the client has hung up (its own timeout passed on a
    restart that never settles), none: the thread and its connection slot are freed."""
    while True:
        try:
            return answers.get(timeout=HANGUP_POLL_S)
        except queue.Empty:
            if _hung_up(conn):
                return {"ok": False, "error": "the client hung up"}


def _hung_up(conn: socket.socket) -> bool:
    """Whether the client is gone: it closed its end (POLLHUP: both directions shut) or the
    connection broke. End of file alone is not gone: a client that shuts its writing side once
    its request is sent (`nc -N`, socat, shutdown(SHUT_WR)) still reads the answer."""
    if not hasattr(select, "poll"):  # no poll(): end of file is all that can be seen
        try:
            readable, _, _ = select.select([conn], [], [], 0)
            return bool(readable) and conn.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True
    poller = select.poll()
    poller.register(conn, select.POLLHUP | select.POLLERR)
    try:
        events = poller.poll(0)
    except OSError:
        return True
    gone = select.POLLHUP | select.POLLERR | select.POLLNVAL
    return any(mask & gone for _fd, mask in events)


def _refuse(conn: socket.socket, why: str) -> None:
    """Say no without waiting on the client, and close."""
    with conn, contextlib.suppress(OSError):
        conn.setblocking(False)
        conn.send(json.dumps({"ok": False, "error": why}).encode() + b"\n")


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST_BYTES:
            raise ValueError("request too long")
    return data.split(b"\n", 1)[0]


def _remove_stale_socket(path: Path) -> None:
    """A socket file nobody accepts on (a killed devup's) is removed; a live one is an error."""
    if not path.exists() and not path.is_symlink():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(CONNECT_TIMEOUT_S)
    try:
        probe.connect(str(path))
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    finally:
        probe.close()
    raise DevupError(f"another devup answers on {path}", hint="stop it with `devup stop`")


# -- what each verb does: on the supervisor's thread, answering through request.reply -----------

Handler = Callable[["Supervisor", ControlRequested], None]


def handle(sup: Supervisor, request: ControlRequested) -> None:
    """Run the request's verb (Supervisor's on_control)."""
    handler = HANDLERS.get(request.verb)
    if handler is None:
        request.reply({"ok": False, "error": f"unknown verb {request.verb!r}"})
        return
    handler(sup, request)


def status(sup: Supervisor, request: ControlRequested) -> None:
    live = {"manifest": sup.live.state()} if sup.live is not None else {}
    request.reply({"ok": True, **sup.status(), "run": run_facts(sup), **live})


def reload(sup: Supervisor, request: ControlRequested) -> None:
    if sup.live is None:
        request.reply({"ok": False, "error": "this devup does not follow its manifest"})
        return
    ok, text = sup.live.reload()
    request.reply({"ok": True, "summary": text} if ok else {"ok": False, "error": text})


def restart(sup: Supervisor, request: ControlRequested) -> None:
    def act(svc: ServiceRun) -> None:
        sup.say(f"{svc.name}: restart requested")
        if sup.watch_again(svc):
            sup.say(f"{svc.name}: watching its files again")
        sup.request_restart(svc, asked=True)

    _act_on_each(sup, request, act, _apply_manifest(sup))


def start(sup: Supervisor, request: ControlRequested) -> None:
    _act_on_each(sup, request, sup.start_service, _apply_manifest(sup))


def stop(sup: Supervisor, request: ControlRequested) -> None:
    if not request.names:
        request.reply({"ok": True, "stopping": "all"})
        sup.say("stop requested, stopping all services")
        sup.shutdown(0)
        return

    def act(svc: ServiceRun) -> None:
        sup.say(f"{svc.name}: stop requested")
        sup.stop_service(svc)

    _act_on_each(sup, request, act)


# The one table of verbs the server answers: client.VERBS has the same names (a test checks it).
HANDLERS: dict[str, Handler] = {
    "status": status,
    "restart": restart,
    "stop": stop,
    "start": start,
    "reload": reload,
}


def _apply_manifest(sup: Supervisor) -> str | None:
    """`devup restart/start NAME` acts on devports.toml as it is now: apply it first. The error
    when it does not parse (the services then use the version the run has)."""
    if sup.live is None:
        return None
    ok, text = sup.live.reload(quiet_if_unchanged=True)
    return None if ok else text


def _act_on_each(
    sup: Supervisor,
    request: ControlRequested,
    act: Callable[[ServiceRun], None],
    manifest_error: str | None = None,
) -> None:
    """`act` on each named service, answering when they have settled (or at once, --no-wait)."""
    if not request.names:  # the CLI always names one; a bare request would wait for nothing
        request.reply({"ok": False, "error": f"{request.verb} needs the name of a service"})
        return
    unknown = [n for n in request.names if n not in sup.services or n in sup.retiring]
    if unknown:
        request.reply({"ok": False, "error": f"unknown service {unknown[0]!r}", "unknown": unknown})
        return
    targets = [sup.services[n] for n in request.names]
    wait = bool(request.options.get("wait", True))
    gather = _Gather(request, targets, wait, manifest_error)
    if wait:  # before acting: a target may settle at once (start of a service that is up)
        gather.arm(sup)
    for svc in targets:
        act(svc)
    if not wait:  # after acting, so the answer shows the states the request led to
        gather.arm(sup)


def run_facts(sup: Supervisor) -> dict[str, Any]:
    """What `devup restart/start/stop` needs without loading the manifest (client.control): the
    timeouts of the version of devports.toml this devup runs (and the file it read)."""
    return {
        "manifest": str(sup.manifest.path),
        "manifest_mtime_ns": sup.manifest.mtime_ns,
        "stop_timeout_s": sup.manifest.settings.stop_timeout_s,
        "settle_timeout_s": settle_timeout(sup.manifest),
        "ports": sup.ports,  # every service's port in start order, for `devup ports`
    }


class _Gather:
    """Answers once every target has settled (ready, running, stopped or crashed): a subscriber
    of the run's state changes from the request on."""

    def __init__(
        self,
        request: ControlRequested,
        targets: list[ServiceRun],
        wait: bool,
        manifest_error: str | None = None,
    ) -> None:
        self._request = request
        # devports.toml did not parse: the services restart with the version the run has.
        self._extra = {"manifest_error": manifest_error} if manifest_error else {}
        self._pending = {svc.name for svc in targets}
        self._results: dict[str, str] = {}
        self._failed: list[str] = []  # restart/start targets that did not come up
        self._targets = targets
        self._wait = wait

    def arm(self, sup: Supervisor) -> None:
        if not self._wait:
            self._request.reply(
                {
                    "ok": True,
                    "services": {s.name: s.state.value for s in self._targets},
                    **self._extra,
                }
            )
            return
        self._unsubscribe = sup.subscribe(self._hear)

    def _hear(self, notice: Notice) -> None:
        if isinstance(notice, ServiceStateChanged):
            if notice.name in self._pending and settles(notice):
                self._done(notice.name, notice.new)
        elif isinstance(notice, TurnEnded):
            for svc in self._targets:  # settled already, the request changed nothing
                if svc.name in self._pending and svc.state in _SETTLED:
                    self._done(svc.name, svc.state)

    def _done(self, name: str, state: State) -> None:
        svc = next(s for s in self._targets if s.name == name)
        self._results[name] = state.value
        task_done = svc.is_task and state is State.STOPPED and svc.exit_code == 0
        stopped_as_asked = self._request.verb == "stop" and state is State.STOPPED
        if not (state in (State.READY, State.RUNNING) or task_done or stopped_as_asked):
            self._failed.append(name)
        self._pending.discard(name)
        if not self._pending:
            self._unsubscribe()
            ok = all(s not in (State.CRASHED.value,) for s in self._results.values())
            self._request.reply(
                {"ok": ok, "services": self._results, "failed": self._failed, **self._extra}
            )


_SETTLED = (State.READY, State.RUNNING, State.STOPPED, State.CRASHED)
