"""``PlanTrack``: the executor's plan as the policy last heard it, the source of a chunk's action prefix.

The executor publishes its plan every tick as a chunk observed at the tick (``ExecutorCore.plan``, topic
``chunk_executor/plan``): the steps it is going to command next. Latency-compensated decoding needs the plan
at the steps of a chunk *observed earlier* (the image is 30-60 ms old when its decode starts), some of which
the executor has already commanded. So the track keeps what each message said about the times before the
next message began: a newer message replaces the samples from its first step on, older samples stay as
the record of what was planned for those times, and samples older than ``keep_s`` are forgotten.
"""

from __future__ import annotations

import numpy as np

from fast_dvla_ros.core.actuation import step_times


class PlanTrack:
    def __init__(self, keep_s: float = 1.0) -> None:
        self.keep_s = float(keep_s)
        self._times = np.zeros(0)
        self._values = np.zeros((0, 0))

    def clear(self) -> None:
        self._times, self._values = np.zeros(0), np.zeros((0, 0))

    @property
    def empty(self) -> bool:
        return self._times.size == 0

    def add(self, stamp: float, step_period: float, values: np.ndarray) -> None:
        """A plan message: ``values`` [K, D] for the steps of a chunk observed at ``stamp``."""
        v = np.asarray(values, dtype=np.float64)
        if v.ndim != 2 or v.shape[0] == 0 or not np.all(np.isfinite(v)) or not step_period > 0:
            return
        times = step_times(stamp, v.shape[0], step_period)
        if self._values.shape[1:] != v.shape[1:] and not self.empty:
            self.clear()  # another column layout: the old samples cannot be interpolated with the new
        keep = (self._times < times[0]) & (self._times >= times[0] - self.keep_s)
        self._times = np.concatenate([self._times[keep], times])
        self._values = np.concatenate([self._values[keep].reshape(-1, v.shape[1]), v])

    def covered(self, times: np.ndarray) -> int:
        """How many of ``times`` (ascending), from the first on, lie inside the track."""
        if self.empty:
            return 0
        inside = (np.asarray(times) >= self._times[0] - 1e-9) & (np.asarray(times) <= self._times[-1] + 1e-9)
        return int(np.cumprod(inside).sum())

    def at(self, times: np.ndarray) -> np.ndarray:
        """Linear interpolation [len(times), D] (times inside the track; see ``covered``)."""
        t = np.asarray(times, dtype=np.float64)
        return np.stack([np.interp(t, self._times, self._values[:, j]) for j in range(self._values.shape[1])], axis=1)
