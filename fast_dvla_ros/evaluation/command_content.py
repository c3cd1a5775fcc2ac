"""What the commands carried: points per message, velocities, and steps between messages.

Why: a JointTrajectoryController streams smoothly only when each message carries upcoming points
with velocities (it fits splines); one position per message at 30 Hz makes stop-and-go motion or
trips the Franka's discontinuity reflexes. The step between consecutive messages' first points,
divided by their interval, is the joint speed the arm is asked for; spikes mark jumps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fast_dvla_ros.evaluation.series import CommandShape


@dataclass
class CommandContent:
    """Summary of the command messages."""

    mean_points: float
    with_velocities: float  # fraction of messages whose first point has velocities
    max_step_rad: float  # largest change of any joint between consecutive first points
    max_speed_rad_s: float  # the same divided by the receive interval (gaps excluded)
    worst_step_time_s: float


def command_content(times_s: np.ndarray, shapes: list[CommandShape], max_interval_s: float) -> CommandContent | None:
    """``max_interval_s``: intervals longer than this (gaps) are left out of the speed estimate."""
    if not shapes:
        return None
    nan = float("nan")
    widths = {len(s.first_positions) for s in shapes if s.points}
    steps = speeds = np.array([])
    if len(widths) == 1 and widths != {0}:
        usable = [(t, s) for t, s in zip(times_s, shapes, strict=True) if s.points]
        t = np.array([u[0] for u in usable])
        q = np.array([u[1].first_positions for u in usable])
        steps = np.abs(np.diff(q, axis=0)).max(axis=1) if len(q) > 1 else np.array([])
        dt = np.diff(t)
        keep = (dt > 0) & (dt <= max_interval_s)
        speeds = steps[keep] / dt[keep]
    worst = int(np.argmax(steps)) if steps.size else None
    return CommandContent(
        mean_points=float(np.mean([s.points for s in shapes])),
        with_velocities=float(np.mean([s.has_velocities for s in shapes])),
        max_step_rad=float(steps.max()) if steps.size else nan,
        max_speed_rad_s=float(speeds.max()) if speeds.size else nan,
        worst_step_time_s=float(t[worst + 1]) if worst is not None else nan,
    )
