"""Restart on file change, end to end: real files, real processes, real inotify.

"No second restart" is proved, not slept on: the service `probe` lives inside api's watched tree
(api ignores it), so both are watched by one inotify watch and their events arrive in order. Once
`probe: marker.txt changed` is printed, every earlier event of api's has been handled.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from conftest import REPO, DevupProcess, Project, py, wait_for

from orchestrator.config.ignore import GitIgnores, Ignorer, read_gitignores
from orchestrator.run.events import Event, FilesChanged
from orchestrator.watch.catchup import CATCHES_UP
from orchestrator.watch.filememory import CLOCK_SLACK_NS
from orchestrator.watch.watcher import WatchedService, Watcher

SERVER = REPO / "tests" / "fixtures" / "server.py"
APP = f"""\
import runpy, sys
VERSION = 1
print("version", VERSION, flush=True)
sys.argv = ["server.py"]
runpy.run_path({str(SERVER)!r}, run_name="__main__")
"""
SLEEPER = py("import time; time.sleep(10**6)")
SERVICES = f"""\
[services.api]
cmd = "{sys.executable} app.py"
ignore = ["probe/", "*.log"]

[services.probe]
cwd = "probe"
cmd = '''{SLEEPER}'''
port = false
"""


def watching_all(folder: Path) -> WatchedService:
    """A service named after `folder`, watching all of it, with no ignore beyond the defaults."""
    return WatchedService(
        folder.name, str(folder), (str(folder),), (), Ignorer(str(folder), (), GitIgnores())
    )


def pid_at(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        return int(json.loads(response.read())["pid"])


def start(
    project: Project, running: list[DevupProcess], *args: str, devup: str = "", **files: str
) -> tuple[DevupProcess, int]:
    project.write(SERVICES, devup=devup, **{"app.py": APP, "probe/marker.txt": "0\n", **files})
    run = project.start(*args)
    running.append(run)
    port = int(run.expect_line(r"api started \(pid \d+, PORT=(\d+)\)").group(1))
    run.expect_line(r"devup\s+\| 2 services up")
    return run, port


def prove_quiet(project: Project, run: DevupProcess) -> None:
    """Everything api's watcher saw before this has been acted on."""
    with open(project.root / "probe" / "marker.txt", "a") as f:
        f.write("1\n")
    run.expect_line(r"probe: marker.txt changed, restarting")


def count(run: DevupProcess, pattern: str) -> int:
    return sum(1 for line in run.lines if pattern in line)


def test_a_change_restarts_the_service_on_the_same_port(
    project: Project, running: list[DevupProcess]
) -> None:
    run, port = start(project, running)
    old = pid_at(port)
    (project.root / "app.py").write_text(APP.replace("VERSION = 1", "VERSION = 2"))
    run.expect_line(r"devup\s+\| api: app.py changed, restarting")
    run.expect_line(r"api\s+\| version 2")
    run.expect_line(rf"api ready on http://127.0.0.1:{port}")
    new = pid_at(port)
    assert new != old
    assert psutil.Process(new).environ()["DEVUP_SERVICE"] == "api"


def test_ignored_files_do_not_restart(project: Project, running: list[DevupProcess]) -> None:
    (project.root / ".git").mkdir()
    (project.root / ".gitignore").write_text("*.gen\n")
    run, _ = start(project, running, **{"node_modules/dep/index.js": "1"})
    (project.root / "debug.log").write_text("own ignore\n")
    (project.root / "out.gen").write_text("the repo's .gitignore\n")
    (project.root / "node_modules" / "dep" / "index.js").write_text("a default\n")
    (project.root / "node_modules" / "new").mkdir()
    (project.root / "node_modules" / "new" / "x.js").write_text("in a new ignored folder\n")
    (project.root / "app.py~").write_text("an editor backup\n")
    prove_quiet(project, run)
    assert count(run, "api: ") == 0, run.lines
    assert count(run, "api started") == 1


def test_a_burst_of_1000_writes_across_200_files_restarts_once(
    project: Project, running: list[DevupProcess]
) -> None:
    files = {f"src/m{i}/f{i}.py": "0\n" for i in range(200)}
    # 200 ms of quiet rather than 50: on a loaded 2-core machine this writer can be descheduled
    # for longer than 50 ms, and a real pause in a burst rightly ends it.
    run, port = start(project, running, devup="debounce_ms = 200\n", **files)
    old = pid_at(port)
    began = time.monotonic()
    for n in range(5):
        for name in files:
            fd = os.open(project.root / name, os.O_WRONLY | os.O_TRUNC)
            os.write(fd, b"%d\n" % n)
            os.close(fd)
    print(f"1,000 writes took {time.monotonic() - began:.2f}s")
    run.expect_line(r"api: src/m\d+/f\d+.py changed, restarting")
    run.expect_line(r"api ready on")
    prove_quiet(project, run)
    assert count(run, "api: ") == 1, run.lines
    assert count(run, "api started") == 2
    assert pid_at(port) != old


def test_a_vim_style_atomic_save_restarts_once_with_the_new_file(
    project: Project, running: list[DevupProcess]
) -> None:
    run, port = start(project, running)
    root = project.root
    # What vim does with `backupcopy=no` (writebackup): probe the folder, move the original away,
    # write the new file, drop the backup.
    fd = os.open(root / "4913", os.O_CREAT | os.O_WRONLY)
    os.close(fd)
    os.unlink(root / "4913")
    os.rename(root / "app.py", root / "app.py~")
    (root / "app.py").write_text(APP.replace("VERSION = 1", "VERSION = 2"))
    os.unlink(root / "app.py~")
    run.expect_line(r"api: app.py changed, restarting")
    run.expect_line(r"api\s+\| version 2")
    run.expect_line(rf"api ready on http://127.0.0.1:{port}")
    prove_quiet(project, run)
    assert count(run, "api: ") == 1, run.lines
    assert count(run, "api started") == 2
    assert count(run, "version 1") == 1


def inotify_fds(pid: int) -> int:
    found = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found += os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify"
        except OSError:
            continue
    return found


def inotify_watches(pid: int) -> int:
    """How many inotify watches the process holds (its inotify fds' fdinfo lists one a line)."""
    found = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify":
                with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                    found += sum(line.startswith("inotify wd:") for line in info)
        except OSError:
            continue
    return found


def test_no_watch_never_restarts(project: Project, running: list[DevupProcess]) -> None:
    watching, _ = start(project, running)
    # what the --no-watch check below looks for (the watcher sets up on a thread of its own)
    wait_for(lambda: inotify_fds(watching.proc.pid) >= 1, 10, what="devup's inotify instance")
    watching.stop()

    run, port = start(project, running, "--no-watch")
    old = pid_at(port)
    assert inotify_fds(run.proc.pid) == 0  # nothing could ever report a change
    (project.root / "app.py").write_text(APP.replace("VERSION = 1", "VERSION = 2"))
    (project.root / "probe" / "marker.txt").write_text("2\n")
    assert pid_at(port) == old
    assert run.stop() == 130
    assert count(run, "changed, restarting") == 0
    assert count(run, "started") == 2


def test_an_exited_service_starts_again_on_the_next_change(
    project: Project, running: list[DevupProcess]
) -> None:
    project.write(
        """
        [services.job]
        cmd = "python3 job.py"
        port = false
        restart = "no"
        """,
        **{"job.py": "print('job ran 1')\n"},
    )
    run = project.start()
    running.append(run)
    run.expect_line(r"job finished \(exit code 0\)")
    (project.root / "job.py").write_text("print('job ran 2'); raise SystemExit(3)\n")
    run.expect_line(r"job: job.py changed, restarting")
    run.expect_line(r"job\s+\| job ran 2")
    run.expect_line(r"job failed: exited with code 3")
    (project.root / "job.py").write_text("print('job ran 3')\n")
    run.expect_line(r"job: job.py changed, restarting")
    run.expect_line(r"job\s+\| job ran 3")


def test_a_service_writing_into_its_own_folder_at_every_start_is_suspended_once(
    project: Project, running: list[DevupProcess]
) -> None:
    # It writes out.json at every start, then notes the start in starts.log (ignored: *.log).
    writer = py(
        """
        import os, time
        with open("out.json", "w") as f:
            f.write(str(os.getpid()))
        with open("starts.log", "a") as f:
            f.write("started\\n")
        time.sleep(10**6)
        """
    )
    project.write(
        f"[services.selfw]\ncmd = '''{writer}'''\nport = false\nignore = [\"probe/\"]\n\n"
        f"[services.probe]\ncwd = \"probe\"\ncmd = '''{SLEEPER}'''\nport = false\n",
        **{"probe/marker.txt": "0\n"},
    )
    run = project.start()
    running.append(run)
    run.expect_line(r"devup\s+\| 2 services up")
    # The watcher, set up on its own thread, may have missed the first start's write; an edit
    # of another file starts the loop if that write did not.
    (project.root / "go.txt").write_text("1\n")
    # Suspended on the evidence seen first: out.json changed soon after each of 5 starts, or the
    # event came while the process still held out.json open for writing.
    message = run.expect_line(
        r"selfw: out.json changed.*Watching selfw is suspended.*", timeout=60
    ).group(0)
    assert "selfw (pid " in message or re.search(r"python[0-9.]* holds it open", message), message
    assert 'add "out.json" to its `ignore` in devports.toml' in message
    # A restart under way goes on; its process writes out.json again, which is let be.
    out = project.root / "out.json"

    def last_start_wrote() -> bool:
        # The newest process has written out.json (an older one may have been stopped before it
        # got to starts.log, so counting those lines could wait for ever).
        said = (project.root / ".devup" / "logs" / "devup.log").read_text()  # run.lines lags
        last = int(re.findall(r"selfw started \(pid (\d+)", said)[-1])
        try:
            return os.getpgid(int(out.read_text())) == last  # the writer is in its group
        except (OSError, ValueError):  # not written yet, or by a process already stopped
            return False

    wait_for(last_start_wrote, 10, what="the last start's write")
    prove_quiet(project, run)
    assert count(run, "Watching selfw is suspended") == 1, run.lines
    # `devup restart` watches it again: the next start's write is seen again.
    assert project.devup("restart", "selfw", "--no-wait").returncode == 0
    run.expect_line(r"selfw: watching its files again")
    run.expect_line(r"selfw: out.json changed")


def test_a_service_holding_a_watched_file_open_for_writing_is_suspended_at_once(
    project: Project, running: list[DevupProcess]
) -> None:
    writer = py(
        """
        import time
        with open("state.txt", "a") as f:
            while True:
                time.sleep(0.3)
                f.write("tick\\n")
                f.flush()
        """
    )
    project.write(f"[services.holder]\ncmd = '''{writer}'''\nport = false\n")
    run = project.start()
    running.append(run)
    pid = int(run.expect_line(r"holder started \(pid (\d+)").group(1))
    message = run.expect_line(
        r"holder: state.txt changed, and holder writes it itself \(pid (\d+) python[0-9.]* holds it"
        r" open for writing\)\. Watching holder is suspended"
    )
    assert os.getpgid(int(message.group(1))) == pid  # a process of its group (sh's child here)
    assert count(run, "holder started") == 1
    assert count(run, "restarting") == 0


@pytest.mark.slow
def test_20_saves_half_a_second_apart_give_20_restarts_and_no_suspension(
    project: Project, running: list[DevupProcess]
) -> None:
    run, _ = start(project, running)
    app = project.root / "app.py"
    # A person's first save, not within a second of devup's own start (see selftrigger.py).
    time.sleep(1.5)
    for n in range(2, 22):
        app.write_text(APP.replace("VERSION = 1", f"VERSION = {n}"))
        run.expect_line(rf"api\s+\| version {n}\b")
        time.sleep(0.5)  # the pace of the saves under test, not a synchronisation
    prove_quiet(project, run)
    assert count(run, "api: app.py changed, restarting") == 20, run.lines
    assert count(run, "suspended") == 0
    assert count(run, "api started") == 21


def test_sed_in_place_names_the_file_it_saved(
    project: Project, running: list[DevupProcess]
) -> None:
    run, _ = start(project, running)
    subprocess.run(["sed", "-i", "s/VERSION = 1/VERSION = 2/", "app.py"], cwd=project.root)
    run.expect_line(r"api\s+\| version 2")
    prove_quiet(project, run)
    assert count(run, "api: app.py changed, restarting") == 1, run.lines
    assert count(run, "api: ") == 1, run.lines


def test_a_tree_of_5000_folders_is_watched_and_devup_stays_idle(
    project: Project, running: list[DevupProcess]
) -> None:
    tree = project.root / "src"
    for i in range(100):
        for j in range(50):
            (tree / f"d{i}" / f"e{j}").mkdir(parents=True)
    (tree / "d99" / "e49" / "deep.py").write_text("0\n")
    run, _ = start(project, running)
    # The watcher sets up on a thread of its own: wait until every folder has its watch.
    wait_for(lambda: inotify_watches(run.proc.pid) >= 5100, 30, what="5,100 inotify watches")
    devup = psutil.Process(run.proc.pid)
    before = devup.cpu_times()
    window_s = 1.0
    time.sleep(window_s)  # a measuring window, not a synchronisation
    after = devup.cpu_times()
    busy_s = (after.user + after.system) - (before.user + before.system)
    assert busy_s < 0.2 * window_s, f"devup used {busy_s:.2f}s of CPU in {window_s}s while idle"
    (tree / "d99" / "e49" / "deep.py").write_text("1\n")
    run.expect_line(r"api: src/d99/e49/deep.py changed, restarting")
    run.expect_line(r"api ready on")


def test_when_inotify_watches_run_out_it_says_so_once_and_polls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ctypes

    from watchdog.observers import inotify_c

    real_add_watch = inotify_c.inotify_add_watch
    calls = []

    def add_watch_until_limit(fd: int, path: bytes, mask: int) -> int:
        calls.append(path)
        if len(calls) > 3:  # the kernel's answer once max_user_watches is reached
            ctypes.set_errno(errno.ENOSPC)
            return -1
        return int(real_add_watch(fd, path, mask))

    monkeypatch.setattr(inotify_c, "inotify_add_watch", add_watch_until_limit)
    for name in ("a", "b"):
        for i in range(5):
            (tmp_path / name / f"sub{i}").mkdir(parents=True)
    services = [watching_all(tmp_path / n) for n in ("a", "b")]
    events: queue.SimpleQueue[Event] = queue.SimpleQueue()
    said: list[str] = []
    watcher = Watcher(services, events.put, said.append)
    watcher.start(wait=True)
    try:
        assert len(said) == 1, said
        assert "inotify watches ran out" in said[0]
        assert "sudo sysctl fs.inotify.max_user_watches=" in said[0]
        assert "a, b" in said[0] or "b" in said[0]
        (tmp_path / "b" / "sub4" / "x.py").write_text("1")
        seen = events.get(timeout=10)
        assert seen == FilesChanged("b", "sub4/x.py")
    finally:
        watcher.stop()


def test_when_no_inotify_instance_can_be_had_it_says_so_once_and_polls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """inotify_init fails with EMFILE once the user's max_user_instances are taken."""
    from watchdog.observers import inotify_c

    def no_instances() -> int:
        raise OSError(errno.EMFILE, "Too many open files")

    # watchdog 7 opens the inotify instance in InotifyFD, watchdog 6 (Python 3.10) in Inotify
    opener = getattr(inotify_c, "InotifyFD", None) or inotify_c.Inotify
    monkeypatch.setattr(opener, "__init__", lambda self, *args, **kwargs: no_instances())
    (tmp_path / "a" / "sub").mkdir(parents=True)
    service = watching_all(tmp_path / "a")
    events: queue.SimpleQueue[Event] = queue.SimpleQueue()
    said: list[str] = []
    watcher = Watcher([service], events.put, said.append)
    watcher.start(wait=True)
    try:
        assert len(said) == 1 and "cannot use inotify" in said[0], said
        (tmp_path / "a" / "sub" / "x.py").write_text("1")
        assert events.get(timeout=10) == FilesChanged("a", "sub/x.py")
    finally:
        watcher.stop()


@pytest.mark.skipif(not CATCHES_UP, reason="the catch-up is inotify_tree.py's (watchdog 7)")
def test_what_changed_after_watching_began_and_before_its_folder_was_watched_is_reported(
    tmp_path: Path,
) -> None:
    """The services do not wait for the walk (watchlater.py): once it is done, a file written,
    made or deleted since watching began counts (by ctime), and nothing older does."""
    root = tmp_path / "a"
    for rel in ("src/deep/old.py", "src/same.py", "src/deep2/gone.py", "src/deep2/kept.py"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("1")
    stamp = max(os.lstat(p).st_ctime_ns for p in root.rglob("*"))
    wait_for(lambda: time.time_ns() > stamp + 2 * CLOCK_SLACK_NS, 10, what="the clock to move on")
    events: queue.SimpleQueue[Event] = queue.SimpleQueue()
    watcher = Watcher([watching_all(root)], events.put, lambda _: None)
    watcher.catch_up_since_ns = time.time_ns() - CLOCK_SLACK_NS  # as watchlater.py sets it
    (root / "src" / "deep" / "old.py").write_text("2")  # in place: its folder's ctime stays
    (root / "src" / "new.py").write_text("1")
    (root / "src" / "deep2" / "gone.py").unlink()
    (root / "src" / "x.log").write_text("ignored")
    watcher.start(wait=True)
    try:
        (root / "marker.py").write_text("1")  # its event comes after every caught-up one
        seen = set()
        while (event := events.get(timeout=10)) != FilesChanged("a", "marker.py"):
            seen.add(event)
        assert seen == {
            FilesChanged("a", "src/deep/old.py"),
            FilesChanged("a", "src/new.py"),
            FilesChanged("a", "src/deep2"),  # it lost gone.py
        }
    finally:
        watcher.stop()


@pytest.mark.parametrize("looked_at_before", [True, False])
def test_a_watched_folder_deleted_before_the_walk_reached_it_is_said_to_be(
    tmp_path: Path, looked_at_before: bool
) -> None:
    """The services do not wait for the watcher: `rm -r src` right after they start may come
    before it looked at the services (src is then no folder), or between that and its watch."""
    src = tmp_path / "a" / "src"
    src.mkdir(parents=True)
    if not looked_at_before:
        shutil.rmtree(src)
    as_dir = src.is_dir()
    service = WatchedService(
        "a",
        str(src.parent),
        (str(src),) if as_dir else (),
        () if as_dir else (str(src),),
        Ignorer(str(src.parent), (), GitIgnores()),
    )
    shutil.rmtree(src, ignore_errors=True)
    events: queue.SimpleQueue[Event] = queue.SimpleQueue()
    said: list[str] = []
    watcher = Watcher([service], events.put, said.append)
    watcher.folders_at_start = frozenset({str(src)})  # as watchlater.py sets it
    watcher.start(wait=True)
    try:
        assert said == ["src was deleted; watching it again for a once it is back"], said
        assert events.get(timeout=10) == FilesChanged("a", "src")
        (src / "lib").mkdir(parents=True)
        while events.get(timeout=10) != FilesChanged("a", "src"):
            pass  # back: what was made in it before its watch counts as a change
        (src / "lib" / "x.py").write_text("1")
        while events.get(timeout=10) != FilesChanged("a", "src/lib/x.py"):
            pass
    finally:
        watcher.stop()


def test_a_change_carries_when_the_watcher_saw_it(tmp_path: Path) -> None:
    """The supervisor counts the quiet time from this moment, not from when it reads the event."""

    (tmp_path / "a").mkdir()
    service = watching_all(tmp_path / "a")
    events: queue.SimpleQueue[Event] = queue.SimpleQueue()
    watcher = Watcher([service], events.put, lambda _: None)
    watcher.start(wait=True)
    try:
        written_at = time.monotonic()
        (tmp_path / "a" / "x.py").write_text("1")
        seen = events.get(timeout=10)
        assert isinstance(seen, FilesChanged) and seen.path == "x.py"
        assert seen.seen_at is not None and written_at <= seen.seen_at <= time.monotonic()
    finally:
        watcher.stop()


def test_the_watcher_imports_without_inotify_as_on_macos() -> None:
    """watchdog's inotify_c raises UnsupportedLibcError on import where libc has no inotify
    (macOS): nothing devup imports to run may need it at import time."""
    code = """
import sys
from watchdog.utils import UnsupportedLibcError

class NoInotify:
    def find_spec(self, name, path=None, target=None):
        if name == "watchdog.observers.inotify_c":
            raise UnsupportedLibcError("Unsupported libc version found: libc.dylib")
        return None

sys.meta_path.insert(0, NoInotify())
import orchestrator.watch.watcher, orchestrator.cli.up
print(sorted(n for n in sys.modules if "inotify" in n))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr


def test_the_observer_used_off_linux_sees_changes_and_drops_ignored_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Off Linux the watcher schedules watchdog's own observer on the whole tree and filters each
    event (here that observer is inotify, but the path through devup is the macOS one)."""
    from orchestrator.watch import watcher as watcher_module

    monkeypatch.setattr(watcher_module, "_NATIVE", "FSEvents")
    (tmp_path / "a" / "node_modules").mkdir(parents=True)
    service = watching_all(tmp_path / "a")
    events: queue.SimpleQueue[Event] = queue.SimpleQueue()
    watcher = Watcher([service], events.put, lambda _: None)
    watcher.start(wait=True)
    try:
        assert not any(type(o).__module__.startswith("orchestrator") for o in watcher._observers), (
            "the pruned inotify observer is Linux's; off Linux watchdog's own one is used"
        )
        (tmp_path / "a" / "node_modules" / "dep.js").write_text("1")  # ignored
        (tmp_path / "a" / "app.py").write_text("1")
        seen = events.get(timeout=10)
        assert isinstance(seen, FilesChanged) and seen.path == "app.py", seen
    finally:
        watcher.stop()


def test_a_gitignore_written_during_the_run_counts_from_then_on(tmp_path: Path) -> None:
    """A generator writes gen/.gitignore, then its output: the output is ignored, whatever was
    asked of that folder before (its .gitignore files are read lazily and kept)."""

    (tmp_path / ".git").mkdir()
    gen = tmp_path / "api" / "gen"
    gen.mkdir(parents=True)
    api = str(tmp_path / "api")
    ignorer = Ignorer(api, (), read_gitignores(tmp_path))
    events: queue.SimpleQueue[Event] = queue.SimpleQueue()
    watcher = Watcher([WatchedService("api", api, (api,), (), ignorer)], events.put, print)
    watcher.start(wait=True)

    def next_path() -> str:
        seen = events.get(timeout=10)
        assert isinstance(seen, FilesChanged)
        return seen.path

    try:
        (gen / "x.py").write_text("1")  # the folder is asked about before it has a .gitignore
        assert next_path() == "gen/x.py"
        (gen / ".gitignore").write_text("*.js\n")
        while (path := next_path()) != "gen/.gitignore":
            assert path == "gen/x.py", path  # x.py's close may come as a second event
        (gen / "bundle.js").write_text("1")
        (gen / "y.py").write_text("1")
        while (path := next_path()) != "gen/y.py":
            assert path != "gen/bundle.js"
    finally:
        watcher.stop()


def make_sqlite(path: Path) -> None:
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("create table t (x integer)")
        db.execute("insert into t values (1)")
    db.close()


def test_a_close_unwritten_a_chmod_to_the_same_mode_and_a_sqlite_read_restart_nothing(
    project: Project, running: list[DevupProcess]
) -> None:
    import sqlite3

    # Named so no default ignore applies: the database is told apart by what it is, not its name.
    make_sqlite(project.root / "store.data")
    run, _ = start(project, running)
    app = project.root / "app.py"
    os.close(os.open(app, os.O_WRONLY))  # opened for writing, closed unwritten
    os.close(os.open(app, os.O_RDWR))
    os.chmod(app, app.stat().st_mode & 0o7777)  # chmod to the mode it has
    db = sqlite3.connect(project.root / "store.data")  # opens it read-write, as Django does
    assert db.execute("select x from t").fetchall() == [(1,)]
    db.close()
    prove_quiet(project, run)
    assert count(run, "api: ") == 0, run.lines
    assert count(run, "api started") == 1


def test_chmod_x_of_a_file_untouched_since_the_start_is_a_change(
    project: Project, running: list[DevupProcess]
) -> None:
    """No event named the file before, so its old mode is not known; the chmod is after the start."""
    run, _ = start(project, running)
    script = project.root / "app.py"
    script.chmod(script.stat().st_mode | 0o111)
    run.expect_line(r"api: app.py changed, restarting")
    run.expect_line(r"api ready on")
    prove_quiet(project, run)
    assert count(run, "api started") == 2


def test_touch_is_a_change(project: Project, running: list[DevupProcess]) -> None:
    run, _ = start(project, running)
    subprocess.run(["touch", str(project.root / "app.py")], check=True)
    run.expect_line(r"api: app.py changed, restarting")
    run.expect_line(r"api ready on")
    prove_quiet(project, run)
    assert count(run, "api: ") == 1, run.lines
    assert count(run, "api started") == 2


def test_a_watched_folder_deleted_and_made_again_is_watched_again(
    project: Project, running: list[DevupProcess]
) -> None:
    """What a git checkout of a branch without src/, then back, does."""
    project.write(
        f"""
        [services.api]
        cmd = "{sys.executable} app.py"
        watch = ["src"]
        """,
        **{"app.py": APP, "src/lib/a.py": "1\n"},
    )
    run = project.start()
    running.append(run)
    run.expect_line(r"devup\s+\| 1 service up")
    shutil.rmtree(project.root / "src")
    run.expect_line(r"src was deleted; watching it again for api once it is back")
    run.expect_line(r"api: src\S* changed, restarting")
    run.expect_line(r"api ready on")
    (project.root / "src" / "lib").mkdir(parents=True)
    (project.root / "src" / "lib" / "a.py").write_text("2\n")
    run.expect_line(r"api: src.* changed, restarting")
    run.expect_line(r"api ready on")
    (project.root / "src" / "lib" / "a.py").write_text("3\n")  # watched as before
    run.expect_line(r"api: src/lib/a.py changed, restarting")
    assert count(run, "was deleted") == 1


def test_a_watched_folder_made_after_the_start_is_watched(
    project: Project, running: list[DevupProcess]
) -> None:
    """`watch = ["src"]` before src exists (a build's output, a branch not checked out yet)."""
    project.write(
        f"""
        [services.api]
        cmd = "{sys.executable} app.py"
        watch = ["src"]
        """,
        **{"app.py": APP},
    )
    run = project.start()
    running.append(run)
    run.expect_line(r"devup\s+\| 1 service up")
    (project.root / "src" / "lib").mkdir(parents=True)
    run.expect_line(r"api: src\S* changed, restarting")
    run.expect_line(r"api ready on")
    (project.root / "src" / "lib" / "a.py").write_text("1\n")  # below it, as in any watched folder
    run.expect_line(r"api: src/lib/a.py changed, restarting")
    run.expect_line(r"api ready on")
    assert count(run, "ran out") == 0, run.lines  # it is watched, not polled


@pytest.mark.skipif(
    sys.version_info < (3, 11), reason="watchdog 6 (Python 3.10) loses this error in its thread"
)
def test_when_watches_run_out_below_the_root_later_it_says_so_once_and_polls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder made after the start cannot get a watch (watchdog 7 swallows that OSError)."""
    import ctypes

    from watchdog.observers import inotify_c

    real_add_watch = inotify_c.inotify_add_watch
    allowed = [2]  # the root and sub0

    def add_watch_until_limit(fd: int, path: bytes, mask: int) -> int:
        if allowed[0] <= 0:
            ctypes.set_errno(errno.ENOSPC)
            return -1
        allowed[0] -= 1
        return int(real_add_watch(fd, path, mask))

    monkeypatch.setattr(inotify_c, "inotify_add_watch", add_watch_until_limit)
    (tmp_path / "a" / "sub0").mkdir(parents=True)
    events: queue.SimpleQueue[Event] = queue.SimpleQueue()
    said: list[str] = []
    watcher = Watcher([watching_all(tmp_path / "a")], events.put, said.append)
    watcher.start(wait=True)
    try:
        assert said == []
        (tmp_path / "a" / "new").mkdir()
        (tmp_path / "a" / "new" / "x.py").write_text("1")
        wait_for(lambda: said, 10, what="the watcher to say it polls")
        assert len(said) == 1 and "inotify watches ran out" in said[0], said
        while events.get(timeout=10) != FilesChanged("a", "new"):
            pass  # what was made in it before the polling began counts as one change
        (tmp_path / "a" / "new" / "y.py").write_text("1")
        while events.get(timeout=10) != FilesChanged("a", "new/y.py"):
            pass
        assert len(said) == 1, said
    finally:
        watcher.stop()
