"""Observation guard of the policy node: only fresh, well-formed observations reach the decoder.

A chunk decoded from a stale image is worse than no chunk: it tells the arm where the block WAS.
So an image or joint state older than ``max_age`` yields no chunk (the executor's watchdog then
holds the arm), and malformed images are rejected with a reason instead of being reshaped into
garbage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# encoding -> (channels, convert to RGB)
_ENCODINGS = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "bgra8": 4}
MAX_IMAGE_SIDE = 4096


class ObservationError(ValueError):
    """An observation that must not be decoded; the message says why."""


def decode_raw_image(
    encoding: str, height: int, width: int, step: int, data: bytes | bytearray | memoryview
) -> np.ndarray:
    """sensor_msgs/Image fields -> RGB uint8 [H, W, 3]; ObservationError on anything inconsistent."""
    enc = encoding.lower()
    if enc not in _ENCODINGS:
        raise ObservationError(f"unsupported image encoding {encoding!r} (use one of {sorted(_ENCODINGS)})")
    ch = _ENCODINGS[enc]
    if not (0 < height <= MAX_IMAGE_SIDE and 0 < width <= MAX_IMAGE_SIDE):
        raise ObservationError(f"image size {width}x{height} out of range")
    row = width * ch
    if step < row:
        raise ObservationError(f"image step {step} smaller than width*channels {row}")
    buf = np.frombuffer(bytes(data) if not isinstance(data, bytes) else data, dtype=np.uint8)
    if buf.size < step * (height - 1) + row:
        raise ObservationError(f"image data truncated: {buf.size} bytes for {width}x{height} {encoding} (step {step})")
    rows = np.lib.stride_tricks.as_strided(buf, shape=(height, row), strides=(step, 1))
    img = rows.reshape(height, width, ch)
    # Always a fresh, writable array: the message buffer is read-only and torch warns on such arrays.
    if enc == "mono8":
        return np.repeat(img, 3, axis=2)
    if enc in ("bgr8", "bgra8"):
        return np.array(img[..., 2::-1], copy=True, order="C")
    return np.array(img[..., :3], copy=True, order="C")


def pick_joints(names: Sequence[str], positions: Sequence[float], wanted: Sequence[str]) -> np.ndarray:
    """Positions of ``wanted`` joints by name, any order; extra joints ignored; missing or NaN -> error."""
    names = list(names)
    pos = list(positions)
    if len(pos) < len(names):
        raise ObservationError(f"joint state has {len(names)} names but {len(pos)} positions")
    index = {n: i for i, n in enumerate(names)}
    missing = [w for w in wanted if w not in index]
    if missing:
        raise ObservationError(f"joint state lacks joints {missing}")
    q = np.array([float(pos[index[w]]) for w in wanted], dtype=np.float64)
    if not np.all(np.isfinite(q)):
        raise ObservationError("joint state contains NaN or inf")
    return q


# How far outside the joint position limits a measurement may lie and still be believed (rad). A real arm
# stops at its limits (franka_description's numbers are the hardware's), and the simulated Panda presses
# a few milliradians past them under load; a reading further out is a wrong joint order, a unit or
# calibration error, or another robot's message, and must not become the pose the arm is anchored to.
JOINT_LIMIT_MARGIN_RAD = 0.05


def check_within_limits(
    q: np.ndarray,
    names: Sequence[str],
    lower: np.ndarray,
    upper: np.ndarray,
    margin: float = JOINT_LIMIT_MARGIN_RAD,
) -> None:
    """ObservationError naming the first joint whose (finite) position lies outside [lower, upper] +- margin."""
    q = np.asarray(q, dtype=np.float64)
    bad = np.flatnonzero((q < np.asarray(lower) - margin) | (q > np.asarray(upper) + margin))
    if bad.size:
        i = int(bad[0])
        raise ObservationError(
            f"implausible joint state: {names[i]} = {q[i]:.3f} rad is outside its limits "
            f"[{float(lower[i]):.4f}, {float(upper[i]):.4f}] (wrong robot type, joint order or units?)"
        )


def is_fresh(stamp: float, now: float, max_age_s: float) -> bool:
    """True when ``stamp`` is at most ``max_age_s`` old (and not more than that in the future)."""
    if not (math.isfinite(stamp) and math.isfinite(now)):
        return False
    return abs(now - stamp) <= max_age_s
