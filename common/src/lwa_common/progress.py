"""Progress of long loops: a tqdm bar on a terminal, log lines otherwise (logs are files).

    for ms in progress(paths, what="calibrate", logger=log):
        ...

After each item it logs `calibrate: 3/40 done, 12 s elapsed, about 148 s left` at INFO, at most once
every `EVERY_S` seconds (and always after the first and the last item), so a driver's step log shows
that a long step is moving and when it should end. When stderr is a terminal (a user running one
tool by hand) a tqdm bar takes the place of those lines, and one line logs the total at the end.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Iterable, Iterator, Sized
from typing import TypeVar

__all__ = ["EVERY_S", "progress"]

EVERY_S = 10.0  # seconds between two progress lines of one loop

T = TypeVar("T")


def progress(items: Iterable[T], *, what: str, logger: logging.Logger, total: int | None = None,
             every_s: float = EVERY_S, bar: bool | None = None) -> Iterator[T]:
    """Yield `items`, logging the progress after each one (see the module docstring); `bar`: a tqdm
    bar on stderr instead of the lines (default: when stderr is a terminal)."""
    if total is None and isinstance(items, Sized):
        total = len(items)
    if bar is None:
        bar = sys.stderr.isatty()
    if bar:
        yield from _with_bar(items, what=what, logger=logger, total=total)
        return
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


def _with_bar(items: Iterable[T], *, what: str, logger: logging.Logger, total: int | None) -> Iterator[T]:
    from tqdm import tqdm

    t0 = time.monotonic()
    with tqdm(items, desc=what, total=total, file=sys.stderr) as bar:
        yield from bar
    logger.info("%s: %d done in %.0f s", what, bar.n, time.monotonic() - t0)
