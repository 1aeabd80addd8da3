"""A run that follows its manifest: devports.toml and the env files it names are watched; once a
save is quiet they are read again and only the difference is applied (manifest_diff.py), or, if
they do not parse, one line says so and the run goes on with the version it has.

The observer's thread only posts ManifestChanged; reading, planning and applying happen on the
supervisor's thread (through Supervisor.live).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.base.errors import DevupError
from orchestrator.base.paths import sha256
from orchestrator.base.smallfile import read_capped
from orchestrator.config.environ import build_env
from orchestrator.config.manifest import Manifest, load_manifest, start_order
from orchestrator.config.manifest_diff import Plan, PlanDiff, compare, ports_to_choose, summary
from orchestrator.run.events import Event, ManifestChanged, WatcherSaid
from orchestrator.run.supervisor import Supervisor, Watcher

if TYPE_CHECKING:
    from watchdog.events import FileSystemEvent
    from watchdog.observers.api import BaseObserver

RESTARTING_WATCH = ("watch", "ignore", "cwd")  # a change of these needs a new file watcher
VERSION_CHARS = 16
VERSION_READ_CAP_BYTES = 2 * 1024 * 1024  # above the manifest's and env files' own 1 MiB caps


def own_files(manifest: Manifest, names: Sequence[str]) -> list[Path]:
    """The files a run reads its plan from: devports.toml and every env file named (missing or
    not: creating one is a change too)."""
    files = [manifest.path]
    for env_file in [manifest.settings.env_file, *(manifest.services[n].env_file for n in names)]:
        if env_file is not None and env_file not in files:
            files.append(env_file)
    return files


def version(files: Sequence[Path]) -> str:
    """A digest of the files' bytes (a missing file counts as missing)."""
    digest = sha256()  # CPython's own: hashlib loads OpenSSL (~5 ms before the first spawn)
    for path in files:
        digest.update(os.fsencode(path) + b"\0")
        try:
            # Capped, regular files only: a FIFO or /dev/zero named as an env file never hangs
            # the supervisor's thread (reading it for the plan says what is wrong with it).
            digest.update(read_capped(path, VERSION_READ_CAP_BYTES))
        except OSError as exc:
            digest.update(f"\0unreadable {exc.errno}\0".encode())
    return digest.hexdigest()[:VERSION_CHARS]


def without_own_files(manifest: Manifest, files: Sequence[Path]) -> Manifest:
    """The manifest with each service ignoring the run's own files inside its folder: an edit of
    devports.toml or of an env file is applied by a reload, which restarts only what changed; a
    service watching its folder must not restart for it as well."""
    services = {}
    for name, spec in manifest.services.items():
        extra = []
        for path in files:
            try:
                rel = path.relative_to(spec.cwd)
            except ValueError:
                continue
            extra.append("/" + _escape_pattern(rel.as_posix()))
        services[name] = spec._replace(ignore=(*spec.ignore, *extra))
    return manifest._replace(services=services)


def _escape_pattern(path: str) -> str:
    """A literal path as a gitignore pattern."""
    out = "".join("\\" + c if c in "\\*?[" else c for c in path)
    return "\\" + out if out[:1] in ("!", "#") else out


class ManifestObserver:
    """A watchdog observer of the folders holding the run's own files (not recursive). watchdog
    is imported on first use: the run's first `watch` happens off the supervisor's thread, so its
    import (~50 ms) is not on the services' start."""

    def __init__(self, post: Callable[[Event], None], say: Callable[[str], None]) -> None:
        self._handler = _Poster(post)
        self._say = say
        self._observer: BaseObserver | None = None
        self._lock = threading.Lock()  # the first watch runs on its own thread

    def watch_soon(self, files: Sequence[Path]) -> None:
        threading.Thread(
            target=self.watch, args=(files,), name="devup-manifest-watch", daemon=True
        ).start()

    def watch(self, files: Sequence[Path]) -> None:
        with self._lock:
            self._watch(files)

    def _watch(self, files: Sequence[Path]) -> None:
        from watchdog.observers import Observer

        self._handler.files = {os.path.abspath(f) for f in files}
        folders = sorted({os.path.dirname(f) for f in self._handler.files})
        if self._observer is None:
            try:
                self._observer = Observer()
                self._observer.start()
            except OSError as exc:  # EMFILE: the user's inotify instances ran out
                self._observer = None
                self._say(
                    f"cannot watch devports.toml for changes ({exc.strerror or exc}); "
                    "`devup reload` applies them"
                )
                return
        self._observer.unschedule_all()
        for folder in folders:
            if not os.path.isdir(folder):
                continue  # an env file in a folder that does not exist yet: `devup reload`
            try:
                handler: Any = self._handler  # watchdog only calls its dispatch()
                self._observer.schedule(handler, folder, recursive=False)
            except OSError as exc:
                self._say(f"cannot watch {folder} for changes: {exc.strerror or exc}")

    def stop(self) -> None:
        with self._lock:
            if self._observer is not None:
                self._observer.stop()
                self._observer.join(timeout=2)
                self._observer = None


class _Poster:
    """A watchdog event handler (duck-typed: watchdog is imported only once watching starts)."""

    def __init__(self, post: Callable[[Event], None]) -> None:
        self.post = post
        self.files: set[str] = set()

    def dispatch(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        paths = [os.fsdecode(event.src_path), os.fsdecode(event.dest_path or "")]
        if any(p in self.files for p in paths):
            self.post(ManifestChanged())


class SwappableWatcher:
    """The run's file watcher, replaced when the services or what they watch change."""

    def __init__(self, inner: Watcher | None) -> None:
        self.inner = inner
        self._started = False

    def start(self) -> None:
        self._started = True
        if self.inner is not None:
            self.inner.start()

    def wait_started(self, timeout_s: float) -> bool:
        return self.inner.wait_started(timeout_s) if self.inner is not None else True

    def busy(self) -> bool:
        return self.inner is not None and self.inner.busy()

    def stop(self) -> None:
        self._started = False
        if self.inner is not None:
            self.inner.stop()

    def replace(self, inner: Watcher | None) -> None:
        old = self.inner
        if self._started and old is not None:
            # Off the supervisor's thread: stopping a watcher still walking a big tree waits
            # for its walk, and the run must not freeze for that.
            threading.Thread(target=old.stop, name="devup-watch-stop", daemon=True).start()
        self.inner = inner
        if self._started and inner is not None:
            inner.start()


class Live:
    """Follows devports.toml for one run: Supervisor.live."""

    def __init__(
        self,
        sup: Supervisor,
        plan: Plan,
        *,
        names: Sequence[str],
        color: bool,
        add_output: Callable[[str], None],
        make_watcher: Callable[[Manifest, list[str]], Watcher | None],
        watcher: SwappableWatcher,
        observe: bool,
    ) -> None:
        self.sup = sup
        self.plan = plan
        self._names = list(names)
        self._color = color
        self._add_output = add_output
        self._make_watcher = make_watcher
        self._watcher = watcher
        self._files = own_files(plan.manifest, plan.order)
        self.applied = version(self._files)
        self._error: tuple[str, str] | None = None  # (version on disk, its error)
        self._quiet_seq = 0
        # Its lines go through the supervisor's queue: its first watch runs on its own thread,
        # and only the supervisor's thread prints.
        say = partial(_post_line, sup.events.put)
        self._observer = ManifestObserver(sup.events.put, say) if observe else None

    def start(self) -> None:
        if self._observer is not None:
            self._observer.watch_soon(self._files)

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()

    # -- Supervisor.live -----------------------------------------------------------------------

    def changed(self) -> None:
        """A file was written: read them once they have been quiet for debounce_ms."""
        self._quiet_seq += 1
        seq = self._quiet_seq
        quiet_s = self.plan.manifest.settings.debounce_ms / 1000
        self.sup.call_later(quiet_s, lambda: self._quiet(seq))

    def _quiet(self, seq: int) -> None:
        # A missing devports.toml is an editor between moving the old file away and writing the
        # new one (vim's backup): its next event brings the reload. `status` shows it pending.
        manifest = self.plan.manifest.path
        if seq == self._quiet_seq and not self.sup.shutting_down and manifest.exists():
            self.reload(quiet_if_unchanged=True)

    def reload(self, quiet_if_unchanged: bool = False) -> tuple[bool, str]:
        """Read the files and apply what changed: (True, summary) or (False, the error)."""
        if self.sup.shutting_down:
            return False, "devup is stopping"
        on_disk = version(self._files)
        if quiet_if_unchanged and on_disk == self.applied:
            return True, ""
        if quiet_if_unchanged and self._error is not None and self._error[0] == on_disk:
            return False, self._error[1]  # said already
        try:
            new, messages = self._plan()
        except DevupError as exc:
            self._error = (on_disk, exc.message)
            self.sup.say(f"{exc.message}; still running the previous version")
            return False, exc.message
        diff = compare(self.plan, new)
        for message in messages:
            self.sup.say(message)
        for name in diff.added:
            if name not in self.sup.services:  # not one removed and back before it was gone
                self._add_output(name)
        idle = [n for n, svc in self.sup.services.items() if not svc.will_restart_for_changes]
        old, self.plan = self.plan, new
        self.sup.apply_plan(
            new.manifest,
            list(new.order),
            dict(new.ports),
            {n: dict(e) for n, e in new.envs.items()},
            diff,
        )
        files = own_files(new.manifest, new.order)
        files_changed = files != self._files
        if self._needs_new_watcher(diff) or files_changed:
            self._watcher.replace(self._make_watcher(new.manifest, list(new.order)))
        if files_changed:
            self._files = files
            if self._observer is not None:
                self._observer.watch(files)
        self.applied = version(files) if files_changed else on_disk
        self._error = None
        text = summary(diff, new.manifest.path.name, idle)
        self.sup.say(text)
        if "ports" in diff.settings:
            self.sup.say(_pool_note(old, new))
        return True, text

    def state(self) -> dict[str, Any]:
        on_disk = version(self._files)
        error = self._error[1] if self._error is not None and self._error[0] == on_disk else None
        return {
            "applied": self.applied,
            "on_disk": on_disk,
            "pending": on_disk != self.applied,
            "error": error,
        }

    # -- planning ------------------------------------------------------------------------------

    def _plan(self) -> tuple[Plan, list[str]]:
        from orchestrator.ports.allocation import allocate_ports

        old = self.plan
        manifest = load_manifest(old.manifest.path)
        order = start_order(manifest, self._names or None)
        ports = {n: p for n, p in old.ports.items() if n in manifest.services}
        # Removed and added back while its process is still stopping (an editor's undo): it
        # keeps its port, which that process may still hold, rather than a temporary one.
        back = {
            n: self.sup.ports[n]
            for n in manifest.services
            if n not in ports and n in self.sup.retiring and self.sup.ports.get(n) is not None
        }
        ports.update({n: p for n, p in back.items() if manifest.services[n].needs_port})
        messages: list[str] = []
        choose = [n for n in ports_to_choose(old, manifest) if n not in back]
        if choose:
            # A removed service keeps its lease until the run ends (its process may still hold
            # the port): the allocator sees it, and any still stopping, as in the manifest.
            kept = {n: s for n, s in old.manifest.services.items() if n not in manifest.services}
            kept.update(
                {
                    n: self.sup.services[n].spec
                    for n in self.sup.retiring
                    if n in self.sup.services and n not in manifest.services
                }
            )
            everything = manifest._replace(services={**manifest.services, **kept})
            chosen = allocate_ports(everything, choose)
            ports.update(chosen.ports)
            messages += chosen.messages
        ports = {n: ports.get(n) for n in manifest.services}
        envs = {}
        for name in order:
            env, warnings = build_env(manifest, ports, name, color=self._color)
            envs[name] = env
            messages += warnings
        return Plan(manifest, tuple(order), ports, envs), messages

    def _needs_new_watcher(self, diff: PlanDiff) -> bool:
        if diff.added or diff.removed:
            return True
        return any(set(c.reasons) & set(RESTARTING_WATCH) for c in diff.changed)


def _pool_note(old: Plan, new: Plan) -> str:
    lo, hi = new.manifest.settings.port_range
    outside = [
        f"{n} ({p})"
        for n, p in new.ports.items()
        if p is not None
        and not lo <= p <= hi
        and p == old.ports.get(n)
        and new.manifest.services[n].preferred_port != p
    ]
    kept = f"; {', '.join(outside)} keep their ports until the next run" if outside else ""
    return f"[devup] ports is now {lo}-{hi}: new ports come from it{kept}"


def _post_line(post: Callable[[Event], None], text: str) -> None:
    post(WatcherSaid(text))
