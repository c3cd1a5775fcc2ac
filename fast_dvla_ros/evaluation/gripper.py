"""Gripper open/close events from the executor's gripper width commands.

A command stream repeats the same width at the control rate; what matters is when it changes
between open and closed. A hysteresis band around the midpoint of the seen range avoids counting
a noisy width near the threshold as many events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Fraction of the width range on each side of the midpoint that does not change the state.
HYSTERESIS = 0.2


@dataclass(frozen=True)
class GripperEvent:
    """The commanded gripper closed (``close``) or opened (``open``) at ``time_s``."""

    time_s: float
    kind: str
    width_m: float


def gripper_events(times_s: np.ndarray, widths_m: np.ndarray, max_width_m: float = 0.08) -> list[GripperEvent]:
    """Open/close transitions. Widths are metres, 0 = closed; ``max_width_m`` the fully open width."""
    if len(times_s) == 0:
        return []
    mid = max_width_m / 2
    band = HYSTERESIS * max_width_m
    events = []
    state = "closed" if widths_m[0] < mid else "open"
    for t, w in zip(times_s, widths_m, strict=True):
        if not np.isfinite(w):
            continue
        if state == "open" and w < mid - band:
            state = "closed"
            events.append(GripperEvent(float(t), "close", float(w)))
        elif state == "closed" and w > mid + band:
            state = "open"
            events.append(GripperEvent(float(t), "open", float(w)))
    return events


def changes_per_episode(events: list[GripperEvent], episodes: list[tuple[float, float]]) -> list[int]:
    """Open/close events inside each episode, ``episodes`` = (start, end) times in the events' clock.

    What a real Franka Hand is asked to do: each change is a franka_gripper goal (0.5-1 s on the hand).
    A pick needs two (close on the block, open over the bin); a retry two more.
    """
    return [sum(1 for e in events if start < e.time_s <= end) for start, end in episodes]
