"""Time, in one place. Wall-clock time enters decisions only through deadlines (§5.3)."""

from __future__ import annotations

import time

__all__ = ["now_ms", "monotonic"]


def now_ms() -> int:
    """Unix epoch milliseconds."""
    return time.time_ns() // 1_000_000


monotonic = time.monotonic
