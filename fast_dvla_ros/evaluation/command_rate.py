"""Command rate, jitter and gaps of the executor's JointTrajectory stream.

Why from receive times: the controller acts when a message arrives, and the executor may stamp
``header.stamp = 0`` ("start now"), so the bag's log time is the honest clock here. The nominal
period is the configured one when given, else the median interval (robust to the gaps we look for).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# An interval longer than this many nominal periods means at least one tick was missed.
GAP_FACTOR = 1.5


@dataclass(frozen=True)
class Gap:
    """A pause in the command stream: starts at the last command before it."""

    start_s: float
    duration_s: float
    missed_ticks: int


@dataclass
class CommandRateStats:
    """Summary of the command stream."""

    count: int
    nominal_period_s: float
    mean_rate_hz: float
    jitter_std_s: float  # std of (interval - nominal period) over intervals without a gap
    jitter_p99_abs_s: float
    jitter_max_abs_s: float
    gaps: list[Gap]
    intervals_s: np.ndarray
    rate_bins_s: np.ndarray  # left edges of 1 s bins
    rate_hz: np.ndarray  # commands per second in each bin

    @property
    def nominal_rate_hz(self) -> float:
        return 1.0 / self.nominal_period_s if self.nominal_period_s > 0 else float("nan")


def command_rate(times_s: np.ndarray, nominal_rate_hz: float | None = None, bin_s: float = 1.0) -> CommandRateStats:
    """Analyse command receive times (seconds, ascending)."""
    times = np.sort(np.asarray(times_s, dtype=float))
    intervals = np.diff(times)
    if times.size < 3:
        nan = float("nan")
        return CommandRateStats(times.size, nan, nan, nan, nan, nan, [], intervals, np.array([]), np.array([]))
    period = 1.0 / nominal_rate_hz if nominal_rate_hz else float(np.median(intervals))
    is_gap = intervals > GAP_FACTOR * period
    gaps = [
        Gap(float(times[i]), float(intervals[i]), round(float(intervals[i]) / period) - 1)
        for i in np.flatnonzero(is_gap)
    ]
    regular = intervals[~is_gap] - period
    if regular.size == 0:
        regular = np.array([np.nan])
    edges = np.arange(times[0], times[-1] + bin_s, bin_s)
    counts, _ = np.histogram(times, bins=edges)
    # The last bin is usually partial; scale it by its covered length so the plot does not dip.
    widths = np.minimum(edges[1:], times[-1] + period) - edges[:-1]
    rates = counts / np.maximum(widths, 1e-9)
    return CommandRateStats(
        count=int(times.size),
        nominal_period_s=period,
        mean_rate_hz=float((times.size - 1) / (times[-1] - times[0])),
        jitter_std_s=float(np.std(regular)),
        jitter_p99_abs_s=float(np.percentile(np.abs(regular), 99)),
        jitter_max_abs_s=float(np.max(np.abs(regular))),
        gaps=gaps,
        intervals_s=intervals,
        rate_bins_s=edges[:-1],
        rate_hz=rates,
    )
