"""Where devup keeps state: the user-wide home ($DEVUP_HOME), per-project folders, and the
private (0700 folder, 0600 file) atomic writes everything under them goes through.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

TYPE_CHECKING = False  # not typing's: this module is on the path of every command
if TYPE_CHECKING:
    from hashlib import _Hash


def devup_home() -> Path:
    """$DEVUP_HOME, else $XDG_STATE_HOME/devup, else ~/.local/state/devup (not created here)."""
    explicit = os.environ.get("DEVUP_HOME")
    if explicit:
        return Path(explicit).expanduser().absolute()
    xdg_state = os.environ.get("XDG_STATE_HOME")
    # The XDG spec says a relative value is invalid and must be ignored.
    if xdg_state and os.path.isabs(xdg_state):
        return Path(xdg_state) / "devup"
    return Path.home() / ".local" / "state" / "devup"


def project_key(root: Path) -> str:
    """The registry's name for a project folder: symlinks resolved, so /tmp and /private/tmp
    (macOS) or a symlinked checkout are one project."""
    return os.path.realpath(root)


def project_state_dir(root: Path) -> Path:
    """The project's own state folder (`.devup/`, holding `logs/`); not created here."""
    return Path(root) / ".devup"


def project_run_dir(root: Path) -> Path:
    """A short per-project folder under devup_home() for the control socket and pid file: a
    Unix socket path must stay under ~104 bytes, which a deep project folder would exceed."""
    return devup_home() / "run" / _sha256_hex(project_key(root).encode())[:16]


def control_dir(root: Path) -> Path:
    """The folder of the project's control socket: $XDG_RUNTIME_DIR/devup/<hash> (a tmpfs the
    login session owns) when set, else the run folder under devup_home(); not created here."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        return Path(runtime) / "devup" / project_run_dir(root).name
    return project_run_dir(root)


def _sha256_hex(data: bytes) -> str:
    return sha256(data).hexdigest()


def sha256(data: bytes = b"") -> _Hash:
    """hashlib.sha256(data), without hashlib: it loads OpenSSL, ~5 ms of every `devup status`
    and `devup up`; CPython's own SHA-256 module (_sha2 since 3.12, _sha256 before) loads in
    ~0.3 ms and gives the same digest."""
    for module in ("_sha2", "_sha256"):
        try:
            digest: _Hash = __import__(module).sha256(data)
            return digest
        except ImportError:
            continue
    import hashlib  # another Python (PyPy, ...)

    return hashlib.sha256(data)


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (and parents) as 0700; tighten it if it already exists with a looser mode.
    A symlink or another user's folder there is refused (safefs.UnsafePath)."""
    from orchestrator.base.safefs import private_dir

    return private_dir(path)


def write_private_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace `path` with `data` so a reader sees the old or the new file, never a half-written
    one, even across a crash (and, when `durable`, a power loss); the file is 0600."""
    path = Path(path)
    # mkstemp creates the file 0600 and in the same folder, so os.replace stays one rename.
    import tempfile  # here: its imports cost `devup status` ~10 ms, and only writers need it

    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            if durable:
                os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    if durable:
        _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; without it a crash can bring back the old directory entry.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
