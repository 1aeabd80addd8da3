"""Spots a service whose own writes keep restarting it: after RESTARTS_LIMIT file-change restarts
within WINDOW_S, watching that service is suspended (pure: the supervisor passes the clock in).

Only changes seen within SOON_AFTER_START_S of the process starting count: that is when a service
writes its pid file or cache, while a person saving every second or two does not look like one.
"""

from __future__ import annotations

from collections import Counter, deque

RESTARTS_LIMIT = 5
WINDOW_S = 10.0
SOON_AFTER_START_S = 2.0


class SelfTriggerGuard:
    def __init__(
        self,
        limit: int = RESTARTS_LIMIT,
        window_s: float = WINDOW_S,
        soon_s: float = SOON_AFTER_START_S,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.soon_s = soon_s
        self._recent: dict[str, deque[tuple[float, str]]] = {}
        self.suspended: set[str] = set()

    def check(self, name: str, path: str, now: float, up_for_s: float | None) -> str | None:
        """Before a file-change restart of `name` (up for `up_for_s`, None if not running): None to
        go ahead; otherwise the restart is not done, and the text is what to tell the user (empty
        once it has been told)."""
        if name in self.suspended:
            return ""
        if up_for_s is None or up_for_s > self.soon_s:
            return None
        recent = self._recent.setdefault(name, deque())
        while recent and now - recent[0][0] > self.window_s:
            recent.popleft()
        if len(recent) < self.limit:
            recent.append((now, path))
            return None
        self.suspended.add(name)
        culprit, _ = Counter(p for _, p in recent).most_common(1)[0]
        return (
            f"{name}: restarted {len(recent)} times in {self.window_s:g}s by file changes"
            f" (last {path}, most often {culprit}); it may be writing into its own watched files."
            f' Watching {name} is suspended: add "{culprit}" to its `ignore` in devports.toml'
        )
