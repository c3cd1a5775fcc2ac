"""Chunk-to-chunk discontinuity at switch-over.

When a new chunk arrives the executor switches from the old plan to it. The jump it must
absorb (by blending, or the robot feels it) is the difference between the new chunk's value and
the old chunk's value for the same future timestep: the first step of the new chunk that is not
already in the past on arrival, compared with the old chunk's step meant for that same time.
Large jumps mean the policy changed its mind (or the two chunks disagree on where the arm is),
which is what block-causal decoding with a cached prefix must not make worse.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from fast_dvla_ros.evaluation.latency import Distribution
from fast_dvla_ros.evaluation.series import Chunk


@dataclass(frozen=True)
class Switch:
    """One switch-over between consecutive chunks."""

    time_s: float  # the timestep compared
    from_sequence: int
    to_sequence: int
    joint_jump_rad: float  # max |new - old| over joints
    worst_joint: int
    gripper_jump_m: float


@dataclass
class Discontinuity:
    """All switches and how many had no overlap (the old chunk ended before the new one started)."""

    switches: list[Switch]
    no_overlap: int
    joint_jump: Distribution

    def above(self, threshold_rad: float) -> list[Switch]:
        return [s for s in self.switches if s.joint_jump_rad > threshold_rad]


def _compare(old: Chunk, new: Chunk) -> Switch | None:
    dt = new.step_period_s
    if dt <= 0 or old.step_period_s <= 0 or old.actions.shape[1] != new.actions.shape[1]:
        return None
    horizon = new.actions.shape[0]
    first = max(0, math.ceil((new.arrival_s - new.stamp_s) / dt - 1 - 1e-9))
    if first >= horizon:
        return None  # the whole new chunk was stale on arrival
    when = new.step_time(first)
    j = round((when - old.stamp_s) / old.step_period_s) - 1
    if not 0 <= j < old.actions.shape[0] or abs(old.step_time(j) - when) > 0.5 * dt:
        return None
    diff = np.abs(new.actions[first] - old.actions[j])
    return Switch(
        time_s=when,
        from_sequence=old.sequence_id,
        to_sequence=new.sequence_id,
        joint_jump_rad=float(diff.max()),
        worst_joint=int(diff.argmax()),
        gripper_jump_m=float(abs(new.gripper[first] - old.gripper[j])),
    )


def discontinuity(chunks: list[Chunk]) -> Discontinuity:
    """Compare every chunk with the one received before it (arrival order)."""
    ordered = sorted(chunks, key=lambda c: c.arrival_s)
    switches, no_overlap = [], 0
    for old, new in itertools.pairwise(ordered):
        switch = _compare(old, new)
        if switch is None:
            no_overlap += 1
        else:
            switches.append(switch)
    return Discontinuity(switches, no_overlap, Distribution.of([s.joint_jump_rad for s in switches]))
