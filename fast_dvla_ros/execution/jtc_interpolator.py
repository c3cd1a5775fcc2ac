"""What a joint_trajectory_controller does with a JointTrajectory, for the simulator's arm.

The executor talks to the real robot through a JTC; the simulator must react to the very same
messages the same way, or simulated success says nothing about the robot. Semantics reproduced:

* a new trajectory replaces the old one and starts from the CURRENT desired state (position and
  velocity), so replacing at 30 Hz is smooth;
* between points: cubic Hermite splines through the given positions and velocities (linear when the
  message has no velocities); after the last point the arm holds it;
* ``start`` = header.stamp, or now when the stamp is zero; a trajectory whose last point already
  lies in the past is rejected (as the JTC does).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


class TrajectoryRejected(ValueError):
    """The message cannot be followed; the message says why."""


class JtcInterpolator:
    def __init__(self, joint_names: Sequence[str], position: np.ndarray) -> None:
        self.joint_names = list(joint_names)
        self._times = np.array([0.0])
        self._q = np.asarray(position, dtype=np.float64).reshape(1, -1).copy()
        self._v = np.zeros_like(self._q)

    def reset(self, position: np.ndarray, now: float = 0.0) -> None:
        self._times = np.array([now])
        self._q = np.asarray(position, dtype=np.float64).reshape(1, -1).copy()
        self._v = np.zeros_like(self._q)

    def set_trajectory(
        self,
        now: float,
        start: float,
        joint_names: Sequence[str],
        times_from_start: Sequence[float],
        positions: Sequence[Sequence[float]],
        velocities: Sequence[Sequence[float]] | None,
    ) -> None:
        """Replace the active trajectory (TrajectoryRejected if unusable; the old one then stays)."""
        names = list(joint_names)
        if sorted(names) != sorted(self.joint_names):
            raise TrajectoryRejected(f"joint names {names} do not match {self.joint_names}")
        order = [names.index(n) for n in self.joint_names]
        t = np.asarray(times_from_start, dtype=np.float64)
        if t.size == 0:
            raise TrajectoryRejected("empty trajectory")
        q = np.asarray(positions, dtype=np.float64)
        if q.shape != (t.size, len(names)):
            raise TrajectoryRejected(f"positions shape {q.shape}, expected {(t.size, len(names))}")
        has_v = velocities is not None and all(len(v) == len(names) for v in velocities) and len(velocities) == t.size
        v = np.asarray(velocities, dtype=np.float64) if has_v else None
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(q)) and (v is None or np.all(np.isfinite(v)))):
            raise TrajectoryRejected("trajectory contains NaN or inf")
        if np.any(np.diff(t) <= 0) or t[0] < 0:
            raise TrajectoryRejected("time_from_start must be non-negative and strictly increasing")
        start = now if start == 0.0 or not math.isfinite(start) else start
        if start + t[-1] < now:
            raise TrajectoryRejected("trajectory ends in the past")
        q0, v0 = self.sample(now)
        q = q[:, order]
        if v is None:
            v = np.gradient(np.vstack([q0, q]), np.concatenate([[now], start + t]), axis=0)[1:]
            v[-1] = 0.0
        else:
            v = v[:, order]
        keep = start + t > now
        self._times = np.concatenate([[now], start + t[keep]])
        self._q = np.vstack([q0, q[keep]])
        self._v = np.vstack([v0, v[keep]])

    def sample(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Desired (position, velocity) at time t."""
        times = self._times
        if t <= times[0] or times.size == 1:
            return self._q[0].copy(), (self._v[0].copy() if t >= times[0] else np.zeros_like(self._q[0]))
        if t >= times[-1]:
            return self._q[-1].copy(), np.zeros_like(self._q[-1])
        k = int(np.searchsorted(times, t, side="right") - 1)
        h = times[k + 1] - times[k]
        s = (t - times[k]) / h
        q0, q1, v0, v1 = self._q[k], self._q[k + 1], self._v[k], self._v[k + 1]
        s2, s3 = s * s, s * s * s
        q = (2 * s3 - 3 * s2 + 1) * q0 + (s3 - 2 * s2 + s) * h * v0 + (-2 * s3 + 3 * s2) * q1 + (s3 - s2) * h * v1
        v = (6 * s2 - 6 * s) / h * q0 + (3 * s2 - 4 * s + 1) * v0 + (6 * s - 6 * s2) / h * q1 + (3 * s2 - 2 * s) * v1
        return q, v

    @property
    def end_time(self) -> float:
        return float(self._times[-1])
