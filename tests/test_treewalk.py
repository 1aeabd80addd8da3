"""The watcher's folder walk: every folder a full walk finds, minus pruned ones, without listing
the leaf folders on file systems whose link counts count subfolders."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.watch import treewalk
from orchestrator.watch.treewalk import walk_folders


def make_tree(root: Path) -> None:
    for rel in ("a/b/c", "a/b/d", "a/e", "f", "node_modules/x/y", "g/h/i/j"):
        (root / rel).mkdir(parents=True)
        (root / rel / "file.txt").write_text("x")
    (root / "a" / "link").symlink_to(root / "g")  # a symlink to a folder is not followed


def full_walk(root: Path, skip: str) -> set[bytes]:
    found = set()
    for folder, dirs, _ in os.walk(os.fsencode(root)):
        dirs[:] = [d for d in dirs if d != skip.encode()]
        found.update(p for d in dirs if not os.path.islink(p := os.path.join(folder, d)))
    return found


def counted_scandir(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    listed: list[bytes] = []
    real = os.scandir

    def scandir(path: bytes) -> object:
        listed.append(path)
        return real(path)

    monkeypatch.setattr(treewalk.os, "scandir", scandir)
    return listed


def no_node_modules(_folder: bytes, names: list[bytes]) -> list[bool]:
    return [name != b"node_modules" for name in names]


def walk(top: Path) -> Iterator[bytes]:
    """walk_folders's batches, one folder at a time (lazily, as the watcher takes them)."""
    for batch in walk_folders(os.fsencode(top), no_node_modules):
        yield from batch


def test_finds_every_folder_a_full_walk_finds_except_pruned(tmp_path: Path) -> None:
    make_tree(tmp_path)
    found = list(walk(tmp_path))
    assert set(found) == full_walk(tmp_path, "node_modules")
    assert len(found) == len(set(found))
    for path in found:  # parents come before what is inside them
        parent = os.path.dirname(path)
        assert parent == os.fsencode(tmp_path) or found.index(parent) < found.index(path)


def test_leaf_folders_are_not_listed_where_link_counts_count_subfolders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path)
    if os.lstat(tmp_path / "f").st_nlink != 2:
        pytest.skip("this file system does not count subfolders in link counts")
    expected = full_walk(tmp_path, "node_modules")
    listed = counted_scandir(monkeypatch)
    found = set(walk(tmp_path))
    assert found == expected
    leaves = {os.fsencode(tmp_path / rel) for rel in ("a/b/c", "a/b/d", "a/e", "f", "g/h/i/j")}
    assert not leaves & set(listed)
    assert os.fsencode(tmp_path / "a" / "b") in listed


def test_on_other_file_systems_every_folder_is_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path)
    monkeypatch.setattr(treewalk, "COUNTING_FILE_SYSTEMS", frozenset())
    monkeypatch.setattr(treewalk, "_counting", {})
    expected = full_walk(tmp_path, "node_modules")
    listed = counted_scandir(monkeypatch)
    stated: list[bytes] = []
    real_lstat = os.lstat
    monkeypatch.setattr(treewalk.os, "lstat", lambda p: stated.append(p) or real_lstat(p))
    found = set(walk(tmp_path))
    assert found == expected
    assert set(listed) == {os.fsencode(tmp_path), *found}
    assert stated == [os.fsencode(tmp_path)]  # below a non-counting top, no folder is stat'ed


def test_mountinfo_is_read_once_for_many_walks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watcher walks every folder made during a run: each walk must not re-read mounts."""
    make_tree(tmp_path)
    monkeypatch.setattr(treewalk, "_counting", {})
    reads = []
    real = treewalk.mount_types
    monkeypatch.setattr(treewalk, "mount_types", lambda: reads.append(1) or real())
    for _ in range(50):
        list(walk(tmp_path))
    assert len(reads) == 1


def test_a_folder_removed_after_it_was_found_is_skipped(tmp_path: Path) -> None:
    make_tree(tmp_path)
    found = []
    for path in walk(tmp_path):
        found.append(path)
        if path == os.fsencode(tmp_path / "g" / "h" / "i"):  # found, not yet listed
            (tmp_path / "g/h/i/j/file.txt").unlink()
            (tmp_path / "g/h/i/j").rmdir()
            (tmp_path / "g/h/i").rmdir()
    assert set(found) == full_walk(tmp_path, "node_modules") | {os.fsencode(tmp_path / "g/h/i")}
