"""Times in what devup's JSON prints: ISO 8601 local time with its UTC offset, to the second."""

from __future__ import annotations

import time


def iso_local(at: float) -> str:
    """`2026-11-29T13:05:09+01:00` for the epoch time `at`."""
    local = time.localtime(at)
    offset = (local.tm_gmtoff or 0) // 60
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset), 60)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', local)}{sign}{hours:02d}:{minutes:02d}"
