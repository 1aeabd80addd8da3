"""Whether a project has a devup run up, even when its folder is gone (a worktree removed under a
running devup): the run lock lives in the folder, the control socket under devup's home.
"""

from __future__ import annotations

import socket
from pathlib import Path

from orchestrator.base.paths import control_dir
from orchestrator.system.runstate import running_pid

SOCKET_NAME = "control.sock"  # = control.client.SOCKET_NAME (a layer above; a test checks it)


def run_is_up(root: str | Path) -> bool:
    """True while a devup runs in `root`: it holds the run lock, or it answers on its socket."""
    if running_pid(Path(root)) is not None:
        return True
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(1.0)
    try:
        conn.connect(str(control_dir(Path(root)) / SOCKET_NAME))
    except OSError:  # no socket, or one a killed devup left: nobody listens
        return False
    finally:
        conn.close()
    return True
