"""Recent camera frames by time, so a two-frame policy gets the frame from ``gap_s`` ago.

Why in the caller and not inside ``Policy``: the policy stays stateless (batchable, restartable),
and only the caller knows the frames' clock (simulated steps in the evaluation, header stamps in
the ROS node) and when an episode starts over.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class FrameHistory:
    """Ring of (stamp, image) keeping a little more than ``gap_s`` of frames."""

    def __init__(self, gap_s: float, max_frames: int = 64) -> None:
        if not gap_s > 0.0:
            raise ValueError("gap_s must be positive")
        self.gap_s = float(gap_s)
        self._frames: deque[tuple[float, np.ndarray]] = deque(maxlen=max_frames)

    def clear(self) -> None:
        self._frames.clear()

    def push(self, stamp: float, image: np.ndarray) -> None:
        """Add a frame; a stamp older than the newest one (clock reset, new episode) starts over."""
        if self._frames and stamp < self._frames[-1][0]:
            self._frames.clear()
        self._frames.append((float(stamp), image))
        while len(self._frames) > 1 and self._frames[1][0] <= stamp - 2.0 * self.gap_s:
            self._frames.popleft()

    def previous(self, stamp: float) -> np.ndarray | None:
        """The newest frame taken at or before ``stamp - gap_s``; the oldest one while the history is
        shorter than the gap (as in training, where the chunk sampler clamps at the episode start);
        None when empty."""
        if not self._frames:
            return None
        target = stamp - self.gap_s + 1e-6
        chosen = self._frames[0][1]
        for t, image in self._frames:
            if t > target:
                break
            chosen = image
        return chosen
