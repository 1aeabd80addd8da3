"""The client end of the control channel: where the project's socket is, one request to the running
devup and its answer. Kept apart from the server (control.py) so `devup status/restart/...` load no
threads, queues or selectors.
"""

from __future__ import annotations

import json
import socket
import time

from orchestrator.base.errors import DevupError
from orchestrator.base.paths import control_dir

TYPE_CHECKING = False  # not typing's: importing typing costs every CLI start ~6 ms
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

SOCKET_NAME = "control.sock"
CONNECT_TIMEOUT_S = 2.0
CONNECT_RETRY_S = 0.005
NOT_RUNNING = "devup is not running in this project"


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
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        _connect(conn, str(path), CONNECT_TIMEOUT_S)
        line = {"verb": verb, "names": names or [], "options": options or {}}
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
    answer = json.loads(data)
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
