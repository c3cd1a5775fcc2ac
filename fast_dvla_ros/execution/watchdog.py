"""Chunk watchdog: notices when the policy stops delivering and latches a hold until it recovers.

A policy process can die, hang in a decode, or lose the network. The executor must not keep
replaying a stale plan forever, so after ``timeout_s`` without a fresh chunk it holds the last safe
commanded position and counts one trip per outage.
"""

from __future__ import annotations

import math


class Watchdog:
    def __init__(self, timeout_s: float) -> None:
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"watchdog timeout must be > 0 s, got {timeout_s}")
        self.timeout_s = float(timeout_s)
        self.last_feed: float | None = None
        self.tripped = False
        self.trips = 0

    def restart(self) -> None:
        """A new episode: not fed yet, not tripped (the trip count stays: it counts outages since start)."""
        self.last_feed = None
        self.tripped = False

    def feed(self, now: float) -> None:
        self.last_feed = now
        self.tripped = False

    def age(self, now: float) -> float:
        return math.inf if self.last_feed is None else now - self.last_feed

    def check(self, now: float) -> bool:
        """True while starved (fed once, nothing since ``timeout_s``); a new outage counts a trip."""
        if self.last_feed is None:
            return False
        starved = now - self.last_feed > self.timeout_s
        if starved and not self.tripped:
            self.trips += 1
        self.tripped = starved
        return starved
