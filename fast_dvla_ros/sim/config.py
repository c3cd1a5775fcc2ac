"""Configuration of the conveyor-picking simulation.

A plain dataclass (no ROS, no YAML dependency) so the same values can come from a ROS parameter
file, a training config or a test. ``SimConfig.from_dict`` rejects unknown keys: a typo in a
config file should fail loudly instead of silently running the defaults.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

# Physics and control rates are fixed by the task definition (docs/CONTRACTS.md): 240 Hz physics,
# 30 Hz control, 8 physics substeps per control step.
PHYSICS_HZ = 240
CONTROL_HZ = 30


@dataclass
class SimConfig:
    """Everything that varies between simulator set-ups.

    Ranges are ``(low, high)`` pairs sampled uniformly per episode from the episode seed.
    """

    # Belt speed (m/s) along +y. 0.03-0.08 m/s keeps the block catchable by a 2 rad/s arm.
    belt_speed_range: tuple[float, float] = (0.03, 0.08)
    # Block centre x (m, distance from the robot base) on the belt; the belt spans x 0.40..0.64.
    lateral_offset_range: tuple[float, float] = (0.46, 0.58)
    # Block spawn y (m) upstream of the arm; the belt ends at ``belt_end_y``.
    spawn_y_range: tuple[float, float] = (-0.34, -0.26)
    # Block yaw (rad) at spawn; the expert aligns its fingers with the block.
    block_yaw_range: tuple[float, float] = (-0.4, 0.4)
    # Pick a colour per episode from this list and name it in the instruction.
    block_colors: tuple[str, ...] = ("red", "green", "blue", "yellow")
    block_size: float = 0.04  # cube edge (m); the Panda hand opens to 0.08 m
    block_mass: float = 0.1  # kg
    image_size: int = 96  # square RGB side (px) of the scene camera
    episode_time_limit: float = 10.0  # s of simulated time, then truncated with cause "timeout"
    seed: int | None = None  # default seed for reset() when none is given
    terminate_on_success: bool = True

    def __post_init__(self) -> None:
        for name in ("belt_speed_range", "lateral_offset_range", "spawn_y_range", "block_yaw_range"):
            lo, hi = (float(v) for v in getattr(self, name))
            if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
                raise ValueError(f"{name} must be a finite (low, high) pair with low <= high, got {(lo, hi)}")
            setattr(self, name, (lo, hi))
        if self.belt_speed_range[0] < 0.0:
            raise ValueError("belt speed must be >= 0 (the belt runs along +y)")
        lo, hi = self.lateral_offset_range
        if lo < 0.42 or hi > 0.62:
            raise ValueError(f"lateral_offset_range {self.lateral_offset_range} leaves the belt (0.42..0.62 m)")
        if not self.block_colors:
            raise ValueError("block_colors must name at least one colour")
        self.block_colors = tuple(str(c) for c in self.block_colors)
        if not 0.01 <= self.block_size <= 0.07:
            raise ValueError(f"block_size {self.block_size} m does not fit the 0.08 m gripper")
        if self.block_mass <= 0.0:
            raise ValueError("block_mass must be positive")
        if not 16 <= int(self.image_size) <= 512:
            raise ValueError(f"image_size must be in 16..512 px, got {self.image_size}")
        self.image_size = int(self.image_size)
        if not self.episode_time_limit > 0.0:
            raise ValueError("episode_time_limit must be positive")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SimConfig:
        """Build from a plain dict (e.g. parsed YAML/JSON); unknown keys raise ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown SimConfig keys: {unknown}; known: {sorted(known)}")
        kwargs = dict(values)
        for key in ("belt_speed_range", "lateral_offset_range", "spawn_y_range", "block_yaw_range", "block_colors"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
