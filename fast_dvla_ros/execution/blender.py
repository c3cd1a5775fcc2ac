"""Chunk buffer and blender: turns overlapping action chunks into one continuous joint plan.

Time convention (msg/ActionChunk.msg, fast_dvla_ros/core/actuation.py): step ``i`` of a chunk stamped
``t0`` is meant for ``t0 + (i + 1/2) * step_period``, the middle of the control step over which the
demonstrations held it. Steps that already lie in the past when the chunk is added are
dropped (counted), and the plan is evaluated by linear interpolation between step times, so the
policy's stamp grid never has to line up with the executor's 30 Hz ticks.

Blend modes and their trade-off:

* ``latest`` - the newest chunk replaces the plan. Most reactive (a new observation acts at
  once) but every switch-over can bend the trajectory; the plan is anchored at the currently
  commanded position so the switch is at least continuous in position.
* ``temporal_ensemble`` - ACT-style: every stored chunk that covers time t votes with weight
  ``exp(-m * i)``, i = 0 for the oldest chunk. ``m > 0`` favours OLDER predictions (ACT's choice,
  smoothest, but reacts to a change in the scene only after several chunks), ``m < 0`` favours
  newer ones, ``m = 0`` is a plain mean. Smooth at the price of latency and of averaging two
  different grasp plans into a path that belongs to neither (mode averaging).
* ``rtc_freeze`` - real-time-chunking style: the first ``freeze_steps`` steps after now were
  already sent to the controller (committed), so the new chunk takes the previous plan's values
  there; the rest is cross-faded linearly from the old plan to the new chunk over
  ``crossfade_steps``. Continuous like the ensemble, reactive like ``latest`` after the fade,
  but it assumes the inference delay is at most ``freeze_steps`` steps.
* ``action_prefix`` - latency-compensated decoding: the policy decoded the chunk *after* committing its
  first ``prefix_steps`` steps from this plan (the steps the arm runs while the chunk is decoded), so
  those steps keep the plan's own values (exactly, not their quantised copy) and the chunk's decoded
  steps take over right after them, with no blending: the chunk was built to continue the plan. A chunk
  without a prefix (the first of an episode) is taken like ``latest``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fast_dvla_ros.core.actuation import step_times

BLEND_MODES = ("latest", "temporal_ensemble", "rtc_freeze", "action_prefix")


@dataclass
class Chunk:
    """One decoded chunk in executor units: ``positions`` [H, J] (rad), ``gripper`` [H] (m)."""

    stamp: float  # observation time (s)
    step_period: float  # s
    positions: np.ndarray
    gripper: np.ndarray
    sequence_id: int = 0
    prefix_steps: int = 0  # leading steps copied from the executor's plan (ActionChunk.prefix_steps)

    @property
    def horizon(self) -> int:
        return int(self.positions.shape[0])

    def step_times(self) -> np.ndarray:
        return step_times(self.stamp, self.horizon, self.step_period)


@dataclass
class _Segment:
    """A stored plan piece: sample times [K] and values [K, J+1] (joints then gripper)."""

    times: np.ndarray
    values: np.ndarray
    sequence_id: int

    def covers(self, t: float) -> bool:
        return bool(self.times[0] <= t <= self.times[-1])

    def at(self, t: float) -> np.ndarray:
        """Linear interpolation of every column at ``t``, held constant outside the times: ``np.interp``'s
        result per column, computed once for the row (one np.interp per column was most of a 30 Hz tick)."""
        times = self.times
        if t <= times[0] or len(times) == 1:
            return self.values[0].copy()
        if t >= times[-1]:
            return self.values[-1].copy()
        i = int(np.searchsorted(times, t, side="right")) - 1  # times[i] <= t < times[i + 1]
        t0, v0 = times[i], self.values[i]
        slope = (self.values[i + 1] - v0) / (times[i + 1] - t0)
        return slope * (t - t0) + v0


@dataclass
class AddResult:
    accepted: bool
    steps_dropped: int
    reason: str = ""


@dataclass
class ChunkBlender:
    """Stores chunks, blends them by ``mode`` and answers "where should the arm be at time t"."""

    mode: str = "temporal_ensemble"
    ensemble_m: float = 0.1
    freeze_steps: int = 2
    crossfade_steps: int = 3
    _segments: list[_Segment] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.mode not in BLEND_MODES:
            raise ValueError(f"blend mode must be one of {BLEND_MODES}, got {self.mode!r}")
        if not math.isfinite(self.ensemble_m):
            raise ValueError("ensemble_m must be finite")
        if self.freeze_steps < 0 or self.crossfade_steps < 0:
            raise ValueError("freeze_steps and crossfade_steps must be >= 0")

    # ------------------------------------------------------------------ input
    def add(self, chunk: Chunk, now: float, anchor: np.ndarray | None = None) -> AddResult:
        """Add a (validated) chunk at time ``now``; ``anchor`` = position+gripper commanded right now.

        The anchor makes every switch-over continuous in position: the new plan starts where the
        arm is being commanded, not where the policy believed it was at observation time.
        """
        times = chunk.step_times()
        values = np.concatenate([chunk.positions, chunk.gripper[:, None]], axis=1).astype(np.float64)
        if self.mode == "action_prefix" and self._segments and chunk.prefix_steps > 0:
            for k in range(min(chunk.prefix_steps, chunk.horizon)):
                values[k] = self.sample(float(times[k]))  # the plan the prefix was copied from, exactly
            # and it starts where the plan is now: the last tick's command (the usual anchor) belongs to the
            # tick's time, and placed at "now" it would put a velocity step into a seam that has none
            anchor = self.sample(now)
        future = times > now
        dropped = int(np.count_nonzero(~future))
        if not np.any(future):
            return AddResult(False, dropped, f"chunk {chunk.sequence_id}: all {dropped} steps already in the past")
        times, values = times[future], values[future]
        self.prune(now)
        if self.mode == "rtc_freeze" and self._segments:
            values = self._rtc_merge(times, values, now, chunk.step_period)
        if anchor is not None and self.mode != "temporal_ensemble":
            anchor = np.asarray(anchor, dtype=np.float64).reshape(-1)
            times = np.concatenate([[now], times])
            values = np.concatenate([anchor[None, :], values], axis=0)
        segment = _Segment(times, values, chunk.sequence_id)
        if self.mode == "temporal_ensemble":
            self._segments.append(segment)
        else:
            self._segments = [segment]
        return AddResult(True, dropped)

    def _rtc_merge(self, times: np.ndarray, values: np.ndarray, now: float, dt: float) -> np.ndarray:
        old = self._segments[-1]
        merged = values.copy()
        freeze_until = now + self.freeze_steps * dt + 1e-9
        fade_start = max(freeze_until, float(times[0]) - dt)
        for k, t in enumerate(times):
            if t > old.times[-1]:
                break  # the old plan says nothing here: the new chunk stands alone
            prev = old.at(float(t))
            if t <= freeze_until:
                merged[k] = prev
            elif self.crossfade_steps > 0:
                alpha = min(1.0, (t - fade_start) / (self.crossfade_steps * dt))
                merged[k] = (1.0 - alpha) * prev + alpha * values[k]
        return merged

    def clear(self) -> None:
        self._segments.clear()

    def prune(self, now: float) -> None:
        """Forget plan pieces that ended before ``now`` (keep the newest so a hold value remains)."""
        if len(self._segments) > 1:
            keep = [s for s in self._segments[:-1] if s.times[-1] >= now]
            self._segments = [*keep, self._segments[-1]]

    # ------------------------------------------------------------------ output
    @property
    def empty(self) -> bool:
        return not self._segments

    def end_time(self) -> float:
        """Last planned time (-inf without a plan)."""
        return max((float(s.times[-1]) for s in self._segments), default=-math.inf)

    def steps_remaining(self, now: float) -> int:
        if not self._segments:
            return 0
        return int(np.count_nonzero(self._segments[-1].times > now))

    def sample(self, t: float) -> np.ndarray | None:
        """Planned [joints..., gripper] at time t; holds the last value past the end; None without a plan."""
        if not self._segments:
            return None
        if self.mode == "temporal_ensemble":
            covering = [s for s in self._segments if s.covers(t)]
            if covering:
                # i = 0 is the oldest covering chunk: weight exp(-m*i) (ACT).
                w = np.exp(-self.ensemble_m * np.arange(len(covering), dtype=np.float64))
                vals = np.stack([s.at(t) for s in covering])
                return (w[:, None] * vals).sum(axis=0) / w.sum()
        newest = self._segments[-1]
        if t < newest.times[0]:
            # Before the newest chunk's first step: the newest older piece that covers t, else its first value.
            for s in reversed(self._segments[:-1]):
                if s.covers(t):
                    return s.at(t)
            return newest.values[0].copy()
        return newest.at(min(t, float(newest.times[-1])))

    def upcoming(self, now: float, dt: float, n_points: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Plan at ``now + k*dt`` for k = 0..n_points: (times_from_now [n+1], values [n+1, J+1])."""
        if not self._segments or n_points < 1 or dt <= 0:
            return None
        offsets = dt * np.arange(0, n_points + 1, dtype=np.float64)
        vals = np.stack([self.sample(now + o) for o in offsets])
        return offsets, vals


def finite_difference_velocities(positions: np.ndarray, dt: float, end_at_rest: bool) -> np.ndarray:
    """Velocities [K, J] for points spaced ``dt`` apart: central differences, then a light [1,2,1]/4 smoothing.

    Central differences keep the JTC's cubic spline from overshooting at each knot; the smoothing
    removes the tick-to-tick velocity flicker a quantized policy produces. With ``end_at_rest`` the
    last point's velocity is zero so the controller comes to a smooth stop where the plan ends.
    """
    p = np.asarray(positions, dtype=np.float64)
    k = p.shape[0]
    if k < 2:
        return np.zeros_like(p)
    v = np.gradient(p, dt, axis=0)
    if k >= 3:
        padded = np.concatenate([v[:1], v, v[-1:]], axis=0)
        v = 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
    if end_at_rest:
        v[-1] = 0.0
    return v
