"""Safety checks between the policy and the arm: chunk validation, limit clamping, rate limiting.

Why reject whole chunks: a NaN in one step means the decoder or the transport is broken, and the
remaining steps of that chunk are not trustworthy either. Values that are merely out of range are
clamped (and counted) instead, because the nearest feasible target is the safe reading of an
over-eager policy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fast_dvla_ros.execution.blender import Chunk
from fast_dvla_ros.execution.limits import JointLimits

JOINT_POSITION = "joint_position"

CLAMP_EVENT_TOLERANCE = 1e-3  # rad / m: clamps smaller than this are counted but not reported as events


class ChunkRejected(ValueError):
    """A chunk that must not reach the arm; the message says why."""


@dataclass(frozen=True)
class ReceivedChunk:
    """An ActionChunk as it arrives, before validation (fields as in msg/ActionChunk.msg, times in seconds)."""

    joint_names: Sequence[str]
    actions: Sequence[float]  # row-major horizon x len(joint_names)
    gripper: Sequence[float]  # horizon widths (m)
    horizon: int
    step_period: float
    stamp: float  # the observation's time; 0: "observed now"
    sequence_id: int
    action_kind: str = JOINT_POSITION
    prefix_steps: int = 0  # leading steps the policy copied from the executor's plan (latency compensation)

    def fields(self) -> dict[str, object]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass
class ClampReport:
    count: int = 0
    event: str = ""


def validate_chunk(
    *,
    joint_names: Sequence[str],
    actions: Sequence[float],
    gripper: Sequence[float],
    horizon: int,
    step_period: float,
    stamp: float,
    sequence_id: int,
    action_kind: str,
    limits: JointLimits,
    now: float,
    max_future_s: float = 1.0,
    prefix_steps: int = 0,
) -> tuple[Chunk, ClampReport]:
    """Check a received chunk and convert it to the limits' joint order; clamp out-of-range values.

    Raises ChunkRejected on wrong kind/names/sizes, NaN/inf anywhere, a non-positive step period or
    a stamp in the future (clock mismatch between machines). A zero stamp means "observed now".
    """
    if action_kind and action_kind != JOINT_POSITION:
        raise ChunkRejected(f"action_kind {action_kind!r} not supported (only {JOINT_POSITION!r})")
    names = list(joint_names)
    if len(set(names)) != len(names):
        raise ChunkRejected(f"duplicate joint names {names}")
    missing = [n for n in limits.joint_names if n not in names]
    if missing or len(names) != len(limits.joint_names):
        raise ChunkRejected(f"joint names {names} do not match the arm's {list(limits.joint_names)}")
    if horizon <= 0:
        raise ChunkRejected(f"horizon must be > 0, got {horizon}")
    a = np.asarray(actions, dtype=np.float64).reshape(-1)
    g = np.asarray(gripper, dtype=np.float64).reshape(-1)
    if a.size != horizon * len(names):
        raise ChunkRejected(f"actions has {a.size} values, expected horizon {horizon} x {len(names)} joints")
    if g.size != horizon:
        raise ChunkRejected(f"gripper has {g.size} values, expected {horizon}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(g))):
        raise ChunkRejected("chunk contains NaN or inf")
    if not (math.isfinite(step_period) and 0.0 < step_period <= 1.0):
        raise ChunkRejected(f"step_period {step_period} s out of (0, 1]")
    if not math.isfinite(stamp):
        raise ChunkRejected("non-finite stamp")
    if not 0 <= prefix_steps < horizon:
        raise ChunkRejected(f"prefix_steps {prefix_steps} out of [0, horizon {horizon})")
    if stamp == 0.0:
        stamp = now
    if stamp > now + max_future_s:
        raise ChunkRejected(f"stamp {stamp - now:.3f} s in the future (clocks out of sync?)")
    order = [names.index(n) for n in limits.joint_names]
    positions = a.reshape(horizon, len(names))[:, order]
    clamped_q = np.clip(positions, limits.lower, limits.upper)
    clamped_g = np.clip(g, 0.0, limits.gripper_width_max)
    n_q = int(np.count_nonzero(clamped_q != positions))
    n_g = int(np.count_nonzero(clamped_g != g))
    report = ClampReport(n_q + n_g)
    worst = np.max(np.abs(clamped_q - positions), initial=0.0)
    worst_g = np.max(np.abs(clamped_g - g), initial=0.0)
    # Every clamp is counted; only a material one is an event (a policy's tokenizer bins can overhang
    # the gripper's 0..max range by a fraction of a millimetre on every chunk - not worth a warning).
    if report.count and (worst > CLAMP_EVENT_TOLERANCE or worst_g > CLAMP_EVENT_TOLERANCE):
        report.event = (
            f"chunk {sequence_id}: clamped {n_q} joint and {n_g} gripper values to limits "
            f"(worst {worst:.3f} rad, gripper {1000 * worst_g:.1f} mm)"
        )
    return Chunk(stamp, float(step_period), clamped_q, clamped_g, int(sequence_id), int(prefix_steps)), report


class SafetyFilter:
    """Makes a planned point sequence feasible: position limits, then per-step velocity (rate) limits.

    ``velocity_scale`` (0..1] is the fraction of the rated joint speed the executor may use.
    """

    def __init__(self, limits: JointLimits, velocity_scale: float = 0.5) -> None:
        if not 0.0 < velocity_scale <= 1.0:
            raise ValueError(f"velocity_scale must be in (0, 1], got {velocity_scale}")
        self.limits = limits
        self.velocity_scale = float(velocity_scale)

    @property
    def vmax(self) -> np.ndarray:
        return self.limits.velocity * self.velocity_scale

    def clamp_position(self, q: np.ndarray) -> tuple[np.ndarray, int]:
        out = np.clip(q, self.limits.lower, self.limits.upper)
        return out, int(np.count_nonzero(out != q))

    def rate_limit(self, start: np.ndarray, points: np.ndarray, dt: float) -> tuple[np.ndarray, int]:
        """Each point within vmax*dt of the previous one (the first within vmax*dt of ``start``)."""
        step = self.vmax * dt
        out = np.empty_like(points)
        prev = np.asarray(start, dtype=np.float64)
        clamped = 0
        for k, p in enumerate(points):
            lim = np.clip(p, prev - step, prev + step)
            clamped += int(np.count_nonzero(np.abs(lim - p) > 1e-12))
            out[k] = lim
            prev = lim
        return out, clamped

    def clamp_velocity(self, v: np.ndarray) -> tuple[np.ndarray, int]:
        out = np.clip(v, -self.vmax, self.vmax)
        return out, int(np.count_nonzero(out != v))
