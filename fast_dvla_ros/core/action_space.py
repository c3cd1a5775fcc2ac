"""Action space description and the per-dimension uniform-bin action tokenizer.

One control step is one block of D tokens (one token per action dimension), which is the
block size the Fast-dVLA paper recommends (block size = action dimension).

Bins vs token ids: a bin index b is in [0, num_bins); its vocabulary token id is
``action_token_offset + b``. The tokenizer only ever deals in bin indices; the model adds the
offset when it embeds them (see ``fast_dvla_ros.core.vocab``). Keeping the two apart avoids the
classic off-by-one where bin 0 collides with a special token.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

ActionKind = Literal["joint_position", "joint_delta", "ee_delta"]
_KINDS = ("joint_position", "joint_delta", "ee_delta")

# Panda joint limits (rad) from franka_description + gripper width (m): the default 8-D action space.
PANDA_JOINT_LOW = (-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973)
PANDA_JOINT_HIGH = (2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973)
GRIPPER_MAX_WIDTH = 0.08


@dataclass
class ActionSpace:
    """Names, ranges and kind of each action dimension.

    ``low``/``high`` are the tokenizer's bin range: values outside are clipped (and counted).
    ``joint_delta``: every step of a chunk is a joint target *relative to the joint positions of the
    observation the chunk was decoded from* (chunk-relative, as openpi's delta actions); the gripper
    stays absolute. Tokens then carry the motion itself instead of a copy of the arm's state plus a
    few bins of motion, which is what a small policy otherwise learns to imitate (the copycat problem).
    """

    names: list[str]
    low: list[float]
    high: list[float]
    kind: ActionKind = "joint_position"
    gripper_index: int | None = None

    def __post_init__(self) -> None:
        n = len(self.names)
        if n == 0:
            raise ValueError("ActionSpace needs at least one dimension")
        if len(self.low) != n or len(self.high) != n:
            raise ValueError(f"names/low/high lengths differ: {n}, {len(self.low)}, {len(self.high)}")
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {self.kind!r}")
        lo, hi = np.asarray(self.low, float), np.asarray(self.high, float)
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise ValueError("action ranges must be finite")
        if np.any(hi <= lo):
            bad = [self.names[i] for i in np.nonzero(hi <= lo)[0]]
            raise ValueError(f"high must exceed low for every dimension; bad: {bad}")
        if self.gripper_index is not None and not 0 <= self.gripper_index < n:
            raise ValueError(f"gripper_index {self.gripper_index} out of range for {n} dimensions")
        self.low = [float(v) for v in self.low]
        self.high = [float(v) for v in self.high]

    @property
    def dim(self) -> int:
        return len(self.names)

    @property
    def joint_dims(self) -> list[int]:
        """Every dimension but the gripper's."""
        return [i for i in range(self.dim) if i != self.gripper_index]

    @property
    def relative_dims(self) -> list[int]:
        """Dimensions stored relative to the observed joint positions (the first ones of proprio)."""
        if self.kind != "joint_delta":
            return []
        return self.joint_dims

    def to_relative(self, actions: np.ndarray, proprio: np.ndarray) -> np.ndarray:
        """Absolute actions [B, H, D] -> this space's representation, given raw proprio [B, P]."""
        out = np.array(actions, dtype=np.float64, copy=True)
        rel = self.relative_dims
        if rel:
            out[..., rel] -= np.asarray(proprio, np.float64)[:, None, : len(rel)]
        return out

    def to_absolute(self, actions: np.ndarray, proprio: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_relative`: what the arm is commanded, in absolute joint positions.

        The gripper width is clipped to what a Franka hand can do, [0, GRIPPER_MAX_WIDTH]: the bin range
        carries a small margin around the data (its edge bins decode to -1.4 mm and 81.4 mm), and values
        the hardware cannot reach are not a decision of the policy. Without the clip every chunk reached
        the executor with a clamped gripper value and its clamp counter hid the real clamps.
        """
        out = np.array(actions, dtype=np.float64, copy=True)
        rel = self.relative_dims
        if rel:
            out[..., rel] += np.asarray(proprio, np.float64)[:, None, : len(rel)]
        if self.gripper_index is not None:
            g = self.gripper_index
            out[..., g] = np.clip(out[..., g], 0.0, GRIPPER_MAX_WIDTH)
        return out

    @classmethod
    def panda_default(cls, prefix: str = "panda_joint") -> ActionSpace:
        """7 absolute joint targets + gripper width, ranges = Panda joint limits (docs/CONTRACTS.md)."""
        names = [f"{prefix}{i}" for i in range(1, 8)] + ["gripper_width"]
        return cls(
            names=names,
            low=[*PANDA_JOINT_LOW, 0.0],
            high=[*PANDA_JOINT_HIGH, GRIPPER_MAX_WIDTH],
            kind="joint_position",
            gripper_index=7,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ActionSpace:
        return cls(**d)


@dataclass
class TokenizeReport:
    """How many values were clipped into range, per dimension (for logging bad data)."""

    clipped_per_dim: list[int] = field(default_factory=list)

    @property
    def clipped(self) -> int:
        return int(sum(self.clipped_per_dim))


class ActionTokenizer:
    """Uniform per-dimension binning of continuous actions into ``num_bins`` bins.

    Bin b covers [low + b*w, low + (b+1)*w) with w = (high-low)/num_bins and decodes to its centre,
    so the round-trip error is at most w/2 for in-range values. Out-of-range values are clipped to
    the edge bins (never wrapped) and counted in ``clip_count``.
    """

    def __init__(self, space: ActionSpace, num_bins: int = 256) -> None:
        if num_bins < 2:
            raise ValueError("num_bins must be >= 2")
        self.space = space
        self.num_bins = int(num_bins)
        self._low = np.asarray(space.low, np.float64)
        self._high = np.asarray(space.high, np.float64)
        self._width = (self._high - self._low) / self.num_bins
        self.clip_count = np.zeros(space.dim, np.int64)

    @property
    def dim(self) -> int:
        return self.space.dim

    @property
    def bin_width(self) -> np.ndarray:
        return self._width.copy()

    @classmethod
    def from_stats(
        cls,
        actions: np.ndarray,
        names: Sequence[str],
        num_bins: int = 256,
        method: Literal["minmax", "percentile"] = "minmax",
        percentiles: tuple[float, float] = (1.0, 99.0),
        margin: float = 0.0,
        kind: ActionKind = "joint_position",
        gripper_index: int | None = None,
    ) -> ActionTokenizer:
        """Fit bin ranges to a dataset of actions [N, D] (min/max or percentiles, plus a relative margin).

        Percentiles ignore outliers (they get clipped) so the bins are spent where the data is.
        Constant dimensions get a tiny range so every dimension stays valid.
        """
        a = np.asarray(actions, np.float64)
        if a.ndim != 2 or a.shape[1] != len(names) or a.shape[0] == 0:
            raise ValueError(f"actions must be [N>0, {len(names)}], got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError("actions contain NaN/inf")
        if method == "minmax":
            lo, hi = a.min(axis=0), a.max(axis=0)
        elif method == "percentile":
            lo, hi = np.percentile(a, percentiles[0], axis=0), np.percentile(a, percentiles[1], axis=0)
        else:
            raise ValueError(f"unknown method {method!r}")
        span = hi - lo
        pad = margin * span
        lo, hi = lo - pad, hi + pad
        degenerate = (hi - lo) < 1e-6
        lo = np.where(degenerate, lo - 1e-3, lo)
        hi = np.where(degenerate, hi + 1e-3, hi)
        space = ActionSpace(list(names), lo.tolist(), hi.tolist(), kind=kind, gripper_index=gripper_index)
        return cls(space, num_bins)

    def encode(self, actions: np.ndarray) -> np.ndarray:
        """Continuous actions [..., D] -> bin indices [..., D] (int64 in [0, num_bins)).

        NaN inputs map to the middle bin and are counted as clipped: a safe fallback for bad data.
        """
        a = np.asarray(actions, np.float64)
        if a.shape[-1] != self.dim:
            raise ValueError(f"last axis must be {self.dim}, got shape {a.shape}")
        nan = np.isnan(a)
        out_of_range = (a < self._low) | (a > self._high) | nan
        self.clip_count += out_of_range.reshape(-1, self.dim).sum(axis=0)
        a = np.where(nan, (self._low + self._high) / 2, a)
        a = np.clip(a, self._low, self._high)
        bins = np.floor((a - self._low) / self._width).astype(np.int64)
        return np.clip(bins, 0, self.num_bins - 1)

    def encode_with_report(self, actions: np.ndarray) -> tuple[np.ndarray, TokenizeReport]:
        before = self.clip_count.copy()
        bins = self.encode(actions)
        return bins, TokenizeReport((self.clip_count - before).tolist())

    def decode(self, bins: np.ndarray) -> np.ndarray:
        """Bin indices [..., D] -> bin centres [..., D] (float64). Indices are clipped into range."""
        b = np.asarray(bins)
        if b.shape[-1] != self.dim:
            raise ValueError(f"last axis must be {self.dim}, got shape {b.shape}")
        b = np.clip(b.astype(np.int64), 0, self.num_bins - 1)
        return self._low + (b + 0.5) * self._width

    def to_dict(self) -> dict:
        return {"num_bins": self.num_bins, "action_space": self.space.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> ActionTokenizer:
        return cls(ActionSpace.from_dict(d["action_space"]), int(d["num_bins"]))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> ActionTokenizer:
        return cls.from_dict(json.loads(Path(path).read_text()))
