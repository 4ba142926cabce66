"""Log lines that a hostile peer can trigger, at most one per key (an address, a file) per interval.

A flood of bad requests must not become a flood of log lines: the first line of a key is
written at once, the ones within the next ``interval_s`` are only counted, and the next line
written for that key says how many were held back. Time is passed in (``clock``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

DEFAULT_INTERVAL_S = 60.0  # one line per key a minute
MAX_KEYS = 4096  # keys remembered; past that, lines of new keys share one key
OTHER_KEYS = "other addresses"


class LogThrottle:
    """One log line per key per interval; held-back lines are counted in the next one."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = DEFAULT_INTERVAL_S,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self.clock = clock
        self.max_keys = max_keys
        self._keys: dict[str, tuple[float, int]] = {}  # key -> (last line written, held back)
        self.written = 0  # lines written
        self.held_back = 0  # lines counted, not written

    def log(
        self,
        level: int,
        key: str,
        message: str,
        *args: object,
        exc_info: BaseException | None = None,
    ) -> bool:
        """Write ``message % args`` (with ``exc_info``'s traceback only when given) unless
        ``key`` had a line within the interval; True when it was written."""
        now = self.clock()
        key = self._room_for(key, now)
        last = self._keys.get(key)
        if last is not None and now - last[0] < self.interval_s:
            self._keys[key] = (last[0], last[1] + 1)
            self.held_back += 1
            return False
        held = last[1] if last is not None else 0
        suffix = (
            f" ({held} more like it in the last {now - last[0]:.0f} s)" if last and held else ""
        )
        self.logger.log(level, message + suffix, *args, exc_info=exc_info)
        self._keys[key] = (now, 0)
        self.written += 1
        return True

    def _room_for(self, key: str, now: float) -> str:
        """``key``, or the shared key once ``max_keys`` keys are remembered and none is stale."""
        if key in self._keys or len(self._keys) < self.max_keys:
            return key
        stale = [k for k, (at, held) in self._keys.items() if now - at >= self.interval_s]
        for old in stale:  # their held-back counts are dropped with them (their line is due)
            del self._keys[old]
        return key if len(self._keys) < self.max_keys else OTHER_KEYS
