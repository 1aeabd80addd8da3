"""Which paths a service's watcher ignores: the SPEC's defaults, the repository's .gitignore files
(git's rules, nested files included) and the service's own `ignore`, matched by pathspec.

The .gitignore files are read lazily, from the watcher's threads (GitIgnores); the rest is pure
matching.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from pathspec import GitIgnoreSpec

from orchestrator.config.quickmatch import QuickMatch

MEMO_MAX = 100_000
GITIGNORE = ".gitignore"
DEFAULT_IGNORES = (
    ".git",
    "node_modules",
    "__pycache__",
    ".venv",
    "venv",
    "dist",
    "build",
    ".next",
    ".devup",
    "*.pyc",
    # editor temporaries: vim swap files and its write test, backups, emacs locks, JetBrains saves
    "*.swp",
    "*~",
    "4913",
    ".#*",
    "*___jb_tmp___",
    "*___jb_old___",  # JetBrains' safe write moves the old file there before it deletes it
    # what applications write while they run: SQLite databases and their journals, logs, and
    # log/ and tmp/ at the service's root (Rails writes both; anchored, so src/tmp/ still counts)
    "*.sqlite3",
    "*.sqlite",
    "*.db",
    "*-journal",
    "*-wal",
    "*-shm",
    "*.log",
    "/log/",
    "/tmp/",
    # the bundled config Vite writes beside vite.config.* at each start, named anew each time
    # (vite.config.ts.timestamp-1700000000000-5f3a.mjs), then deletes
    "*.timestamp-*.mjs",
    "*.timestamp-*.cjs",
    # tool caches
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".tox",
    ".cache",
    "coverage",
    ".coverage",
    ".parcel-cache",
    ".svelte-kit",
    ".nuxt",
    ".turbo",
    ".vite",
)


def spec(patterns: Iterable[str]) -> GitIgnoreSpec:
    return GitIgnoreSpec.from_lines(list(patterns))


def invalid_pattern(patterns: Iterable[str]) -> str | None:
    """The first pattern pathspec rejects (a trailing backslash, a lone "!"), or None."""
    for pattern in patterns:
        try:
            spec([pattern])
        except ValueError:  # pathspec's GitIgnorePatternError
            return pattern
    return None


class GitIgnores:
    """The .gitignore files of a work tree, each read the first time a path below its folder is
    asked about (reading them all up front meant a second walk of the whole tree at start-up),
    and read again after `forget()`. Outside git (`in_git=False`) only the root's own file counts.
    """

    def __init__(self, root: str | None = None, in_git: bool = True) -> None:
        self.root = root  # the git work tree (or the manifest folder outside git)
        self.by_folder: dict[str, GitIgnoreSpec] = {}  # the files read since the last forget()
        self._in_git = in_git
        self._chains: dict[str, tuple[tuple[str, GitIgnoreSpec], ...]] = {}

    def forget(self) -> None:
        """A .gitignore changed: read them again as they are next asked about."""
        self._chains.clear()
        self.by_folder.clear()

    def chain(self, folder: str) -> tuple[tuple[str, GitIgnoreSpec], ...]:
        """The layers bearing on the paths directly in `folder` (inside root), outermost first."""
        found = self._chains.get(folder)
        if found is None:
            parent = os.path.dirname(folder)
            above = () if folder == self.root or parent == folder else self.chain(parent)
            own = self._read(folder)
            found = (*above, (folder, own)) if own is not None else above
            if len(self._chains) >= MEMO_MAX:
                self._chains.clear()
            self._chains[folder] = found
        return found

    def _read(self, folder: str) -> GitIgnoreSpec | None:
        if folder != self.root and not self._in_git:
            return None
        found = _read_one(folder)
        if folder == self.root and self._in_git:
            exclude = _read_one(os.path.join(folder, ".git", "info"), "exclude")
            if exclude is not None:
                # info/exclude ranks below the work tree's .gitignore in git; merging keeps it
                # simple.
                found = exclude + found if found is not None else exclude
        if found is not None:
            self.by_folder[folder] = found
        return found


class Ignorer:
    """Answers "is this absolute path ignored?" for one service.

    Later sources override earlier ones, as in git: the defaults, then .gitignore files from the
    outermost folder inwards, then the service's `ignore`. A path inside an ignored folder is
    ignored whatever its own name says (git cannot re-include it either).
    """

    def __init__(self, cwd: str, service_ignore: Sequence[str], gitignores: GitIgnores) -> None:
        self.cwd = cwd
        self._defaults = spec(DEFAULT_IGNORES)
        self._own = spec(service_ignore)
        self._git = gitignores
        # Memos: a burst names the same files and folders over and over.
        self._folders: dict[str, bool] = {}
        self._files: dict[str, bool] = {}
        self._quick: dict[int, QuickMatch] = {}

    def forget(self) -> None:
        """A .gitignore changed: drop every verdict and the files read."""
        self._folders.clear()
        self._files.clear()
        self._quick.clear()  # keyed by the id() of specs now freed: a new one may reuse it
        self._git.forget()

    def ignored(self, path: str, is_dir: bool = False) -> bool:
        if is_dir:
            return self._folder_ignored(path)
        verdict = self._files.get(path)
        if verdict is None:
            if len(self._files) >= MEMO_MAX:
                self._files.clear()
            parent = os.path.dirname(path)
            verdict = (parent != path and self._folder_ignored(parent)) or self._own_verdict(
                path, False
            )
            self._files[path] = verdict
        return verdict

    def ignored_folders_in(self, folder: str, names: Sequence[str]) -> list[bool]:
        """ignored(folder/name, is_dir=True) for each name: a walk asks about every subfolder of a
        folder at once, and they share the folder's verdict and layers."""
        if not names:
            return []
        sep = "" if folder.endswith(os.sep) else os.sep
        root = self._git.root
        if root is not None and not _inside(folder, root):  # a child may be the root itself
            return [self.ignored(folder + sep + name, True) for name in names]
        if self._folder_ignored(folder):
            verdicts = [True] * len(names)
        else:
            verdicts = [False] * len(names)
            for base, patterns in self._layers(folder + sep + names[0]):
                if folder == base:
                    prefix = ""
                else:
                    rel = _relative(folder, base)
                    if rel is None:
                        continue
                    prefix = rel + "/"
                could = self._could_match(patterns).could_match_folders_in(prefix, names)
                for i, name in enumerate(names):
                    if could[i]:
                        result = patterns.check_file(prefix + name + "/")
                        if result.include is not None:
                            verdicts[i] = result.include
        # Not remembered: a walk would keep every folder's path (2.7 MB for 20,000 folders);
        # an event's folder is judged when it comes, from its parent's remembered verdict.
        return verdicts

    def _folder_ignored(self, folder: str) -> bool:
        verdict = self._folders.get(folder)
        if verdict is None:
            parent = os.path.dirname(folder)
            verdict = (parent != folder and self._folder_ignored(parent)) or self._own_verdict(
                folder, True
            )
            self._folders[folder] = verdict
        return verdict

    def _own_verdict(self, path: str, is_dir: bool) -> bool:
        """The verdict on this path's own name, its folders aside."""
        ignored = False
        for base, patterns in self._layers(path):
            rel = _relative(path, base)
            if rel is None:
                continue
            subject = rel + "/" if is_dir else rel
            if not self._could_match(patterns).could_match(subject):
                continue
            result = patterns.check_file(subject)
            if result.include is not None:
                ignored = result.include
        return ignored

    def _could_match(self, patterns: GitIgnoreSpec) -> QuickMatch:
        """Whether any pattern of this layer could match, mostly from a memo (quickmatch.py):
        most paths match none, and pathspec asks each pattern in turn."""
        quick = self._quick.get(id(patterns))
        if quick is None:
            quick = self._quick[id(patterns)] = QuickMatch(patterns)
        return quick

    def _layers(self, path: str) -> Iterable[tuple[str, GitIgnoreSpec]]:
        yield self.cwd, self._defaults
        root = self._git.root
        if root is not None and path != root and _inside(path, root):
            yield from self._git.chain(os.path.dirname(path))
        yield self.cwd, self._own


def _relative(path: str, folder: str) -> str | None:
    """`path` below `folder` (both absolute and normalised), or None; relpath is slow."""
    prefix = folder if folder.endswith(os.sep) else folder + os.sep
    return path[len(prefix) :] if path.startswith(prefix) and len(path) > len(prefix) else None


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def find_git_root(start: Path) -> Path | None:
    for folder in [start, *start.parents]:
        if (folder / ".git").exists():
            return folder
    return None


def read_gitignores(manifest_dir: Path) -> GitIgnores:
    """The .gitignore files of the repository holding the manifest (with git's info/exclude);
    outside git, only the manifest folder's .gitignore."""
    git_root = find_git_root(manifest_dir)
    if git_root is None:
        return GitIgnores(str(manifest_dir), in_git=False)
    return GitIgnores(str(git_root))


def _read_one(folder: str, name: str = GITIGNORE) -> GitIgnoreSpec | None:
    try:
        with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    try:
        return spec(lines)
    except ValueError:  # git skips an invalid line (a trailing backslash); pathspec raises
        return spec([line for line in lines if invalid_pattern([line]) is None])
