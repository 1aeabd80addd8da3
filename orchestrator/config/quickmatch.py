"""Whether any pattern of a .gitignore layer could match a path, answered mostly from a memo of
path components, before pathspec is asked (ignore.py).

One regex of every pattern, searched over each path (`^(?:.+/)?name...` per pattern, ~40 in the
defaults) cost ~7 us a path: a third of walking a 20,000-folder tree. Most patterns hold no
slash but a trailing one (`node_modules`, `*.log`, `build/`): pathspec's regex for one matches a
path only where it matches one whole component of it (`c/` for a folder component, `c` for a
last file component), so a memo of components answers for them; the few others (`/log/`, `a/b`,
`**/x`) are still searched over the whole path. The answer may be a false "yes" (pathspec then
gives the verdict), never a false "no".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from pathspec import GitIgnoreSpec

MEMO_MAX = 100_000
_NEVER = re.compile(r"(?!)")


def _names_one_component(text: str) -> bool:
    """Whether a pattern matches within one component: no slash but a trailing one, no `**`,
    and no character class (`[!a]` would match a slash)."""
    core = text[1:] if text.startswith("!") else text
    core = core.rstrip("/")
    return "/" not in core and "**" not in core and "[" not in core


def _either(parts: Iterable[str]) -> re.Pattern[str]:
    # pathspec's named group appears once per pattern: unnamed, they can be joined
    joined = "|".join(f"(?:{p.replace('(?P<ps_d>', '(?:')})" for p in parts)
    return re.compile(joined) if joined else _NEVER


class QuickMatch:
    """The prefilter of one layer (GitIgnoreSpec)."""

    def __init__(self, patterns: GitIgnoreSpec) -> None:
        names: list[str] = []
        paths: list[str] = []
        for p in patterns.patterns:
            if p.include is None or p.regex is None:
                continue
            text = p.pattern if isinstance(p.pattern, str) else ""
            (names if text and _names_one_component(text) else paths).append(p.regex.pattern)
        self._names = _either(names)
        self._paths = _either(paths) if paths else None
        self._memo: dict[str, bool] = {}

    def could_match(self, subject: str) -> bool:
        """`subject`: a path relative to the layer's folder, with a trailing slash if a folder."""
        if self._paths is not None and self._paths.search(subject):
            return True
        *folders, last = subject.split("/")
        memo = self._memo
        for part in folders:
            key = part + "/"
            hit = memo.get(key)
            if hit is None:
                hit = self._remember(key)
            if hit:
                return True
        if not last:
            return False
        hit = memo.get(last)
        return self._remember(last) if hit is None else hit

    def could_match_folders_in(self, folder: str, names: Sequence[str]) -> list[bool]:
        """could_match(folder + name + "/") for each name; `folder`: "" (the layer's own folder)
        or a relative path ending in a slash. The folder's own components are looked up once."""
        if folder and self.could_match(folder):
            return [True] * len(names)
        memo = self._memo
        paths = self._paths
        found = []
        for name in names:
            key = name + "/"
            hit = memo.get(key)
            if hit is None:
                hit = self._remember(key)
            if not hit and paths is not None:
                hit = paths.search(folder + key) is not None
            found.append(hit)
        return found

    def _remember(self, key: str) -> bool:
        if len(self._memo) >= MEMO_MAX:
            self._memo.clear()
        hit = self._memo[key] = self._names.match(key) is not None
        return hit
