"""The user-wide port lease registry: devup_home()/ports.json, read and written only under an
exclusive flock on ports.lock, so concurrent devup runs never hand out the same port.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import fcntl
import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from orchestrator.base.errors import DevupError
from orchestrator.base.paths import (
    devup_home,
    ensure_private_dir,
    project_key,
    write_private_atomic,
)
from orchestrator.base.safefs import UnsafePath, open_file, read_file

REGISTRY_VERSION = 1
# Far above what thousands of projects' leases take; more is damage, not a registry.
MAX_REGISTRY_BYTES = 16 * 1024 * 1024
# A version above this is no devup's: damage (a 5,000-digit number), not a newer format.
MAX_PLAUSIBLE_VERSION = 1000
LOCK_TIMEOUT_S = 10.0
LOCK_POLL_S = 0.005
# A project folder gone this long (a deleted worktree or checkout) loses its leases on the next
# write; sooner only by `devup ports --prune`: a disk not mounted today keeps its ports.
MISSING_PRUNE_S = 30 * 86400

# project key (its real path) -> service name -> leased port
Leases = dict[str, dict[str, int]]
# project key -> (pid of its running devup, service name -> port used for that run only)
Temporary = dict[str, tuple[int, dict[str, int]]]
# project key -> when its folder was first seen missing (epoch seconds)
Missing = dict[str, float]


class Registry:
    """Leases per (project folder, service). `warnings` holds what the last load had to repair,
    as lines for the user; it is replaced on every load.

    `temporary` holds, per project whose devup runs now, the ports its services use for that run
    only (their leased port was held by a foreign process): reserved like leases while that devup
    lives, so no other run hands them out, and forgotten once it is gone."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = home if home is not None else devup_home()
        self.path = self.home / "ports.json"
        # The lock lives in its own file: ports.json is replaced by rename on every write, and a
        # flock on a replaced inode would no longer exclude anyone.
        self.lock_path = self.home / "ports.lock"
        # Kept apart from the leases, so a run on temporary ports leaves ports.json as it was.
        self.temporary_path = self.home / "temporary.json"
        self.warnings: list[str] = []
        self.temporary: Temporary = {}
        # Projects whose folder was missing at a write, since when; kept in ports.json.
        self.missing: Missing = {}
        self.pruned: Leases = {}  # what the last write dropped, its folder gone for 30 days

    @contextlib.contextmanager
    def locked(self) -> Iterator[Leases]:
        """Hold the registry lock; yield the leases to read and change. They are written back
        atomically when the block exits cleanly (and only if something changed, `temporary`
        and `missing` included); an exception leaves the file as it was. Not reentrant: nesting
        in one process waits for itself. Projects whose folder has been gone for
        MISSING_PRUNE_S are dropped first."""
        with self._lock():
            self._remove_stale_temp_files()
            loaded, damaged = self._load()
            temporary = copy.deepcopy(self.temporary)
            missing = dict(self.missing)
            leases = copy.deepcopy(loaded)
            self.pruned = _note_missing(leases, self.missing, time.time())
            yield leases
            self.missing = {root: at for root, at in self.missing.items() if leases.get(root)}
            if damaged or leases != loaded or self.missing != missing:
                write_private_atomic(self.path, _dump(leases, self.missing))
            if self.temporary != temporary:
                doc = {"version": REGISTRY_VERSION, "projects": _dump_temporary(self.temporary)}
                write_private_atomic(
                    self.temporary_path, (json.dumps(doc, indent=2) + "\n").encode()
                )

    def read(self) -> Leases:
        """A snapshot of the leases, for display; writes nothing back (`temporary` is loaded)."""
        with self._lock():
            loaded, _ = self._load()
        return loaded

    def release(self, project_root: Path, services: Iterable[str] | None = None) -> list[str]:
        """Forget this project's leases (all, or the named services'); return what was released."""
        key = project_key(project_root)
        with self.locked() as leases:
            own = leases.get(key, {})
            names = list(own) if services is None else [s for s in services if s in own]
            for name in names:
                del own[name]
            if not own:
                leases.pop(key, None)
        return names

    def prune(self) -> Leases:
        """Drop the leases of every project whose folder is gone and that has no run up (`devup
        ports --prune`); return what was dropped."""
        with self.locked() as leases:
            dropped = dict(self.pruned)
            for root in [r for r in leases if not os.path.isdir(r) and not _run_up(r)]:
                dropped[root] = leases.pop(root)
        return dict(sorted(dropped.items()))

    def _remove_stale_temp_files(self) -> None:
        # Temp files are only written under the lock: one seen while holding it is what a devup
        # killed mid-write left (its rename never happened, so ports.json is whole).
        for stale in self.home.glob(f".{self.path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        try:
            ensure_private_dir(self.home)
            fd = open_file(self.lock_path, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            raise DevupError(
                f"cannot use the port registry in {self.home}: {exc.strerror}",
                hint="set DEVUP_HOME to a folder you can write",
            ) from exc
        try:
            self._acquire(fd)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def _acquire(self, fd: int) -> None:
        # flock has no timeout, and a devup stopped with Ctrl-Z inside the lock would otherwise
        # hang every other run silently; the lock is held for milliseconds, so polling is cheap.
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                raise DevupError(
                    f"the port registry {self.lock_path} stayed locked for {LOCK_TIMEOUT_S:.0f}s",
                    hint="another devup holds it (stopped with Ctrl-Z?): resume or end that devup",
                )
            time.sleep(LOCK_POLL_S)

    def _load(self) -> tuple[Leases, bool]:
        """The leases on disk and whether the file needed repair (so it gets rewritten)."""
        self.warnings = []
        self.temporary = self._load_temporary()
        self.missing = {}
        try:
            raw = read_file(self.path, MAX_REGISTRY_BYTES)
        except FileNotFoundError:
            return {}, False
        except UnsafePath:
            return self._start_over("a symbolic link")
        except IsADirectoryError:
            return self._start_over("a folder")
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # a FIFO, a device, ...
                return self._start_over("not a regular file")
            raise DevupError(
                f"cannot read the port registry {self.path}: {exc.strerror or exc}",
                hint=f"make it readable (chmod 600 {self.path}), or remove it: "
                "devup then starts with no leases",
            ) from None
        if len(raw) > MAX_REGISTRY_BYTES:
            return self._start_over(f"larger than {MAX_REGISTRY_BYTES // 2**20} MiB")
        try:
            doc = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return self._start_over(f"unreadable ({exc})")
        except ValueError:  # int() refuses over 4,300 digits
            return self._start_over("unreadable (a number too long)")
        except RecursionError:  # [[[[... 100,000 deep
            return self._start_over("unreadable (nested too deeply)")
        version = doc.get("version") if isinstance(doc, dict) else None
        if (
            not isinstance(version, int)
            or not 1 <= version <= MAX_PLAUSIBLE_VERSION
            or not isinstance(doc.get("projects"), dict)
        ):
            return self._start_over("not a devup port registry")
        if version != REGISTRY_VERSION:
            raise DevupError(
                f"port registry {self.path} has version {version}, "
                f"this devup reads version {REGISTRY_VERSION}",
                hint="upgrade devup, or point DEVUP_HOME to another folder",
            )
        leases, skipped = _parse(doc)
        self.missing = _parse_missing(doc, leases)
        if skipped:
            self.warnings.append(
                f"port registry {self.path}: ignored {skipped} malformed "
                f"entr{'y' if skipped == 1 else 'ies'}"
            )
        return leases, skipped > 0

    def _load_temporary(self) -> Temporary:
        """The temporary ports of projects whose devup still runs; a damaged file is no loss."""
        try:
            doc = json.loads(read_file(self.temporary_path, MAX_REGISTRY_BYTES))
            projects = doc["projects"]
            return _parse_temporary(projects) if isinstance(projects, dict) else {}
        except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError):
            return {}  # a NUL in a folder name, a list for a dict: as if there were none

    def _start_over(self, problem: str) -> tuple[Leases, bool]:
        # Leases are a convenience that devup rebuilds, not data worth refusing to run over:
        # the damaged file (or folder, or link) is set aside for whoever wants to look, and the
        # next write creates a fresh one.
        aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        for n in range(1, 100):  # a second damage within the same second keeps the first
            if not os.path.lexists(aside):
                break
            aside = aside.with_name(f"{aside.name.split('~')[0]}~{n}")
        try:
            os.replace(self.path, aside)
        except OSError as exc:  # a non-empty folder of that name already, ...
            raise DevupError(
                f"port registry {self.path} is {problem} and cannot be set aside: "
                f"{exc.strerror or exc}",
                hint=f"remove it (rm -r {self.path}); devup then starts with no leases",
            ) from None
        self.warnings.append(
            f"port registry {self.path} is {problem}; starting with no leases "
            f"(the damaged one is kept as {aside.name})"
        )
        return {}, True


def _parse(doc: dict[str, Any]) -> tuple[Leases, int]:
    """Best effort: keep every well-formed lease, count the rest."""
    leases: Leases = {}
    skipped = 0
    for root, entry in doc["projects"].items():
        ports = entry.get("ports") if isinstance(entry, dict) else None
        if not isinstance(ports, dict):
            skipped += 1
            continue
        for service, port in ports.items():
            # bool is an int subclass; `true` is not a port.
            if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
                leases.setdefault(root, {})[service] = port
            else:
                skipped += 1
    return leases, skipped


def _parse_missing(doc: dict[str, Any], leases: Leases) -> Missing:
    missing: Missing = {}
    for root in leases:
        since = doc["projects"][root].get("missing_since")
        if isinstance(since, (int, float)) and not isinstance(since, bool) and since >= 0:
            missing[root] = float(since)
    return missing


def _parse_temporary(projects: dict[str, Any]) -> Temporary:
    temporary: Temporary = {}
    for root, entry in projects.items():
        pid = entry.get("pid") if isinstance(entry, dict) else None
        ports = entry.get("ports") if isinstance(entry, dict) else None
        if not (isinstance(pid, int) and isinstance(ports, dict)):
            continue
        from orchestrator.system.runstate import running_pid  # only here: it costs psutil's import

        # The run lock, not the pid alone, says whether that run lives: a pid may be reused.
        if running_pid(Path(root)) == pid:
            valid = {
                s: p for s, p in ports.items() if isinstance(p, int) and not isinstance(p, bool)
            }
            temporary[root] = (pid, valid)
    return temporary


def _dump_temporary(temporary: Temporary) -> dict[str, Any]:
    return {
        root: {"pid": pid, "ports": dict(sorted(ports.items()))}
        for root, (pid, ports) in sorted(temporary.items())
        if ports
    }


def _dump(leases: Leases, missing: Missing) -> bytes:
    projects: dict[str, Any] = {}
    for root, services in sorted(leases.items()):
        if services:
            projects[root] = {"ports": dict(sorted(services.items()))}
            if root in missing:
                projects[root]["missing_since"] = int(missing[root])
    doc = {"version": REGISTRY_VERSION, "projects": projects}
    return (json.dumps(doc, indent=2) + "\n").encode()


def _note_missing(leases: Leases, missing: Missing, now: float) -> Leases:
    """Record when each project's folder was first seen gone, forget it for one that is back, and
    drop (and return) the leases of one gone for MISSING_PRUNE_S, unless a devup still runs
    there."""
    dropped: Leases = {}
    for root in list(leases):
        if os.path.isdir(root):
            missing.pop(root, None)
        elif root not in missing:
            missing[root] = now
        elif now - missing[root] > MISSING_PRUNE_S and not _run_up(root):
            dropped[root] = leases.pop(root)
            del missing[root]
    return dropped


def _run_up(root: str) -> bool:
    from orchestrator.system.runalive import run_is_up  # only here: it costs psutil's import

    return run_is_up(root)
