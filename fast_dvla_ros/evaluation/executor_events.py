"""Executor underruns, watchdog trips, rejections and time per state, from ExecutorStatus.

Why from counters rather than from single messages: status messages can be lost (the recorder or
the network drops one), but a monotonic counter still tells how many events happened and, to
within one status period, when. Counters are relative to the first recorded status, because the
executor may have been running before the bag started. A counter that goes down means the
executor restarted; the increments after the restart are counted from zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fast_dvla_ros.evaluation.series import StatusSeries

STATE_NAMES = {0: "waiting_for_joint_state", 1: "waiting_for_chunk", 2: "executing", 3: "holding"}
COUNTERS = ("underruns", "watchdog_trips", "chunks_rejected", "steps_dropped_stale", "clamped_values")


@dataclass(frozen=True)
class CounterEvent:
    """A counter grew by ``delta`` between the previous status and the one at ``time_s``."""

    counter: str
    time_s: float
    delta: int
    last_event: str


@dataclass(frozen=True)
class UnderrunRun:
    """Consecutive status ticks that each added underruns: one stall of the command stream."""

    start_s: float
    end_s: float
    underruns: int


@dataclass
class ExecutorEvents:
    """Totals, increments and state occupancy."""

    totals: dict[str, int]
    events: list[CounterEvent]
    state_fraction: dict[str, float]
    restarts: int
    underrun_runs: list[UnderrunRun]
    end_s: float

    def times(self, counter: str) -> list[float]:
        """Times of every increment of ``counter`` (repeated for a delta > 1)."""
        return [e.time_s for e in self.events if e.counter == counter for _ in range(e.delta)]


def _increments(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Per-sample increments of a monotonic counter, treating a decrease as a restart."""
    steps = np.diff(values.astype(np.int64))
    restarts = int(np.sum(steps < 0))
    # After a restart the counter restarted at 0: its new value is the increment.
    steps = np.where(steps < 0, values[1:], steps)
    return steps, restarts


def executor_events(status: StatusSeries) -> ExecutorEvents:
    """Analyse one executor's status series."""
    events: list[CounterEvent] = []
    totals: dict[str, int] = {}
    restarts = 0
    for name in COUNTERS:
        steps, r = _increments(getattr(status, name))
        restarts = max(restarts, r)
        totals[name] = int(steps.sum())
        for i in np.flatnonzero(steps > 0):
            events.append(CounterEvent(name, float(status.time_s[i + 1]), int(steps[i]), status.last_event[i + 1]))
    events.sort(key=lambda e: (e.time_s, e.counter))
    # Time in each state: each status holds until the next one.
    dwell = np.diff(status.time_s, append=status.time_s[-1])
    total = float(dwell.sum())
    fractions = {}
    for code, label in STATE_NAMES.items():
        fractions[label] = float(dwell[status.state == code].sum() / total) if total > 0 else float("nan")
    return ExecutorEvents(
        totals=totals,
        events=events,
        state_fraction=fractions,
        restarts=restarts,
        underrun_runs=underrun_runs(events, status.time_s),
        end_s=float(status.time_s[-1]),
    )


def underrun_runs(events: list[CounterEvent], status_times_s: np.ndarray) -> list[UnderrunRun]:
    """Merge underrun increments of adjacent status ticks (within 1.5 median periods) into runs."""
    times = [e for e in events if e.counter == "underruns"]
    if not times:
        return []
    period = float(np.median(np.diff(status_times_s))) if status_times_s.size > 1 else 0.0
    runs: list[UnderrunRun] = []
    start = end = times[0].time_s
    count = times[0].delta
    for e in times[1:]:
        if e.time_s - end <= 1.5 * period:
            end, count = e.time_s, count + e.delta
        else:
            runs.append(UnderrunRun(start, end, count))
            start = end = e.time_s
            count = e.delta
    runs.append(UnderrunRun(start, end, count))
    return runs
