"""The Linux watcher's hold on a rename's first half: the events behind it wait for its pair, not
for the whole hold."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path

import pytest
from watchdog.events import FileSystemEventHandler

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify: Linux only"),
    # Python 3.10 has watchdog 6, whose own observer is used instead (pyproject.toml)
    pytest.mark.skipif(sys.version_info < (3, 11), reason="the pruned watch needs watchdog 7"),
]


class _SeenWaiting(threading.Condition):
    """The queue's condition, telling the test when the reader waits on it with a deadline."""

    def __init__(self, lock: threading.Lock) -> None:
        super().__init__(lock)
        self.reader_holds = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is not None:
            self.reader_holds.set()
        return super().wait(timeout)


def test_a_reader_holding_a_moved_from_wakes_when_its_pair_replaces_it() -> None:
    from orchestrator.watch.inotify_tree import _WakeableDelayedQueue

    hold_s = 60.0  # watchdog's own queue would sleep all of it
    q = _WakeableDelayedQueue(hold_s)
    q._not_empty = condition = _SeenWaiting(q._lock)
    q.put("moved from", delay=True)
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.append(q.get()), daemon=True)
    reader.start()
    # The reader has taken the first half as its head and holds it.
    assert condition.reader_holds.wait(10), "the reader never waited for the pair"
    # What the move grouper does when the second half comes: pair them, queue the pair.
    assert q.remove(lambda e: e == "moved from") == "moved from"
    q.put(("moved from", "moved to"))
    reader.join(10)
    assert got == [("moved from", "moved to")]
    q.close()


def test_a_lone_moved_from_is_still_held_then_delivered_and_close_ends_a_wait() -> None:
    from orchestrator.watch.inotify_tree import _WakeableDelayedQueue

    q = _WakeableDelayedQueue(0.01)
    q.put("moved out of the tree", delay=True)
    q.put("behind it")
    assert q.get() == "moved out of the tree"  # after its hold: no pair came
    assert q.get() == "behind it"
    got: list[object] = ["not yet"]
    reader = threading.Thread(target=lambda: got.__setitem__(0, q.get()), daemon=True)
    reader.start()
    q.close()
    reader.join(10)
    assert got == [None]


def test_stopping_closes_the_inotify_instance_without_removing_each_watch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing the instance ends every watch in the kernel at once; removing them one by one
    first (a syscall and an IN_IGNORED event each) took 0.2-0.6 s for 20,000 folders."""
    from watchdog.observers import inotify_c

    from orchestrator.watch.inotify_tree import PrunedInotifyObserver

    for i in range(50):
        (tmp_path / f"d{i}" / "e").mkdir(parents=True)
    removed: list[int] = []
    real = inotify_c.inotify_rm_watch
    monkeypatch.setattr(
        inotify_c, "inotify_rm_watch", lambda fd, wd: removed.append(wd) or real(fd, wd)
    )
    before = inotify_instances()
    observer = PrunedInotifyObserver(lambda path: False)
    observer.start()
    observer.schedule(FileSystemEventHandler(), str(tmp_path), recursive=True)
    assert inotify_instances() == before + 1
    observer.stop()
    observer.join(timeout=10)
    assert removed == []
    assert inotify_instances() == before  # closed, and every watch with it


def inotify_instances() -> int:
    found = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            found += os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify"
    return found
