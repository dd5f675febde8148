"""Progress of long loops as log lines: count, elapsed time and time left (no bars: logs are files).

    for ms in progress(paths, what="calibrate", logger=log):
        ...

After each item it logs `calibrate: 3/40 done, 12 s elapsed, about 148 s left` at INFO, at most once
every `EVERY_S` seconds (and always after the first and the last item), so a driver's step log shows
that a long step is moving and when it should end.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Iterator, Sized
from typing import TypeVar

__all__ = ["EVERY_S", "progress"]

EVERY_S = 10.0  # seconds between two progress lines of one loop

T = TypeVar("T")


def progress(items: Iterable[T], *, what: str, logger: logging.Logger, total: int | None = None,
             every_s: float = EVERY_S) -> Iterator[T]:
    """Yield `items`, logging the progress after each one (see the module docstring)."""
    if total is None and isinstance(items, Sized):
        total = len(items)
    t0 = time.monotonic()
    last = -math.inf
    for i, item in enumerate(items, 1):
        yield item
        now = time.monotonic()
        if i == 1 or i == total or now - last >= every_s:
            last, elapsed = now, now - t0
            if total:
                logger.info("%s: %d/%d done, %.0f s elapsed, about %.0f s left", what, i, total, elapsed,
                            elapsed / i * (total - i))
            else:
                logger.info("%s: %d done, %.0f s elapsed", what, i, elapsed)
