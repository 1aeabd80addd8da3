"""Shared fixtures: an isolated devup home, a random port pool, a running devup to talk to, and a
leak check that fails any test leaving a process behind.

Every process a test starts inherits DEVUP_TEST_MARKER, so survivors are found by that marker
(grandchildren and double-forked daemons included), never by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

REPO = Path(__file__).resolve().parent.parent
# A suite started in the background by a script (`pytest &`, nohup) inherits SIGINT ignored, and
# so would every devup it starts: `devup logs -f` then never sees the Ctrl-C a test sends it.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
DEVUP = [sys.executable, "-m", "orchestrator"]
# Test ports come from below the kernel's ephemeral range (32768-60999 on Linux, 49152- on macOS),
# where no outgoing connection or port-0 bind of another process lands, and each pytest-xdist
# worker has its own slice of them, so tests running at once never share a port.
TEST_PORTS = (20000, 32767)


def port_window(size: int = 200) -> tuple[int, int]:
    """A random window of `size` ports in this worker's slice of TEST_PORTS."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    span = (TEST_PORTS[1] - TEST_PORTS[0] + 1) // workers
    assert span >= size, f"{workers} workers leave each only {span} test ports"
    start = random.randrange(
        TEST_PORTS[0] + worker * span, TEST_PORTS[0] + (worker + 1) * span - size + 1
    )
    return start, start + size - 1


def marked_processes(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == os.getpid():
            continue
        try:
            if proc.environ().get("DEVUP_TEST_MARKER") == marker and proc.status() != "zombie":
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def wait_for(predicate, timeout: float, interval: float = 0.02, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll an observable condition until true or the deadline; fails naming what it waited for."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)  # polling interval of an observable condition, not a synchronisation


def inotify_watches(pid: int) -> int:
    """How many inotify watches process `pid` holds (Linux; a large number elsewhere): watchdog
    adds them from its own thread, so a test waits for them before its first change."""
    fdinfo = Path(f"/proc/{pid}/fdinfo")
    if not fdinfo.is_dir():
        return 1 << 30
    count = 0
    for entry in fdinfo.iterdir():
        try:
            count += entry.read_text().count("inotify wd:")
        except OSError:  # an fd closed meanwhile
            continue
    return count


def inotify_watches_folder(pid: int, folder: Path) -> bool:
    """Whether process `pid` holds an inotify watch on `folder` (Linux; True elsewhere): devup
    holds more than one watch (devports.toml's too), so a count does not say which is set."""
    fdinfo = Path(f"/proc/{pid}/fdinfo")
    if not fdinfo.is_dir():
        return True
    inode = f" ino:{os.stat(folder).st_ino:x} "
    for entry in fdinfo.iterdir():
        try:
            if inode in entry.read_text():
                return True
        except OSError:  # an fd closed meanwhile
            continue
    return False


@pytest.fixture(autouse=True)
def no_leftover_processes(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    marker = uuid.uuid4().hex
    monkeypatch.setenv("DEVUP_TEST_MARKER", marker)
    # `python -m orchestrator` in a test runs this checkout, whatever is pip-installed.
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    yield marker
    deadline = time.monotonic() + 5
    survivors = marked_processes(marker)
    while survivors and time.monotonic() < deadline:
        time.sleep(0.05)
        survivors = marked_processes(marker)
    left = [_describe(proc) for proc in survivors]  # before the kill makes them zombies
    for proc in survivors:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(psutil.Error):
            proc.kill()
    assert not left, "processes left behind: " + ", ".join(left)


def _describe(proc: psutil.Process) -> str:
    try:
        return f"{proc.pid} {' '.join(proc.cmdline())}"
    except psutil.Error:  # a zombie by now, or gone: no command line to read
        return str(proc.pid)


@pytest.fixture(autouse=True)
def devup_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("devup-home")
    monkeypatch.setenv("DEVUP_HOME", str(home))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(home / "runtime"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    return home


@pytest.fixture
def pool() -> tuple[int, int]:
    """A random 200-port window of this worker's, so concurrent test runs on one machine rarely
    meet and the workers of one run never do."""
    return port_window(200)


class Project:
    def __init__(self, root: Path, pool: tuple[int, int]) -> None:
        self.root = root
        self.pool = pool

    def write(self, services: str, devup: str = "", **files: str) -> Path:
        """Write devports.toml (its [devup] table gets this project's pool) and files by path."""
        header = f'[devup]\nports = "{self.pool[0]}-{self.pool[1]}"\n' + textwrap.dedent(devup)
        manifest = self.root / "devports.toml"
        manifest.write_text(header + "\n" + textwrap.dedent(services))
        for name, text in files.items():
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        return manifest

    def devup(
        self, *args: str, timeout: float = 30, **kwargs: object
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*DEVUP, *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            **kwargs,  # type: ignore[call-overload]
        )

    def status(self) -> dict[str, Any]:
        """`devup status --json` of the run, which must answer."""
        result = self.devup("status", "--json")
        assert result.returncode == 0, result.stderr
        doc: dict[str, Any] = json.loads(result.stdout)
        return doc

    def start(self, *args: str) -> DevupProcess:
        return DevupProcess(self.root, list(args))


class DevupProcess:
    """A devup running in the background; its output is read by a thread into a queue."""

    def __init__(self, cwd: Path, args: list[str], command: list[str] = DEVUP) -> None:
        self.proc = subprocess.Popen(
            [*command, *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._seen = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def expect_line(self, pattern: str, timeout: float = 15) -> re.Match[str]:
        """The next line matching `pattern`; fails showing what was seen instead."""
        regex = re.compile(pattern)
        for line in self.lines[self._seen :]:
            self._seen += 1
            match = regex.search(line)
            if match:
                return match
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                line = None
                if remaining > 0:
                    continue
                raise AssertionError(
                    f"no line matching {pattern!r} within {timeout}s; saw:\n"
                    + "\n".join(self.lines[-40:])
                ) from None
            if line is None:
                raise AssertionError(
                    f"devup ended (code {self.proc.poll()}) before a line matching {pattern!r}; saw:\n"
                    + "\n".join(self.lines[-40:])
                )
            self.lines.append(line)
            self._seen += 1
            match = regex.search(line)
            if match:
                return match

    def expect_lines(self, *patterns: str, timeout: float = 15) -> list[re.Match[str]]:
        """The next line matching each pattern, in whatever order they come: a server's own line
        and devup's line about it race (devup may see the port listening before it reads what
        the server printed after listen())."""
        found: dict[int, re.Match[str]] = {}
        deadline = time.monotonic() + timeout
        while len(found) < len(patterns):
            pending = [i for i in range(len(patterns)) if i not in found]
            either = "|".join(f"(?:{patterns[i]})" for i in pending)
            line = self.expect_line(either, max(deadline - time.monotonic(), 0.001)).string
            first = next(i for i in pending if re.search(patterns[i], line))
            found[first] = re.search(patterns[first], line)  # type: ignore[assignment]
        return [found[i] for i in range(len(patterns))]

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 15) -> int:
        code = self.proc.wait(timeout)
        # Let the reader take the rest of the output.
        while True:
            try:
                line = self._queue.get(timeout=5)
            except queue.Empty:
                break
            if line is None:
                self._queue.put(None)
                break
            self.lines.append(line)
        return code

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@pytest.fixture
def project(tmp_path: Path, pool: tuple[int, int]) -> Iterator[Project]:
    root = tmp_path / "project"
    root.mkdir()
    yield Project(root, pool)


@pytest.fixture
def running() -> Iterator[list[DevupProcess]]:
    """Register devups here; whatever a failing test left running is stopped."""
    started: list[DevupProcess] = []
    yield started
    for run in started:
        run.stop()


def py(code: str) -> str:
    """A shell command running a Python snippet with this interpreter."""
    import shlex

    return f"{shlex.quote(sys.executable)} -c {shlex.quote(textwrap.dedent(code))}"
