"""``PolicyRunner``: what the policy node does between messages and decodes, free of ROS.

The node's callbacks hand it the newest camera frame, joint state and instruction; its decode thread
asks ``wait_for_observation`` for the next observation to decode, decodes it with ``decode`` and
publishes the result only while ``still_current`` says the observation belongs to the running episode.

Why these rules:

* **Decode on a new camera frame.** The image is what carries the block's motion; decoding the same
  frame again because a newer joint state arrived (60 Hz beside a 30 Hz camera) only adds camera age
  to every chunk and burns the CPU the next frame needs. The joint state used is the newest at the
  moment the decode starts.
* **Episodes (``start_episode``).** A reset opens a new epoch at its stamp: frames and joint states
  stamped before it are dropped (in flight or stored), the frame history of two-frame checkpoints
  starts over, and a decode that was running on a pre-reset observation is not published (such chunks
  would steer the first steps of the next episode from where the last one left the arm).
* **Freshness.** A frame or joint state older than ``max_age_s`` when the decode would start produces
  no chunk: the executor's watchdog then holds the arm (the safe reaction to a frozen camera).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fast_dvla_ros.core.frame_history import FrameHistory
from fast_dvla_ros.core.policy import Observation, Policy, PolicyResult


@dataclass
class Stamped:
    value: np.ndarray
    stamp: float
    token: object = None  # the caller's original stamp object (e.g. a ROS Time), returned untouched


@dataclass
class PendingObservation:
    """An observation taken for one decode."""

    observation: Observation
    image_stamp: float
    joints_stamp: float
    image_token: object
    taken_at: float  # the runner's clock when the decode was handed out

    @property
    def age_s(self) -> float:
        """How old the frame was when the decode started (camera age + the wait for the decoder)."""
        return self.taken_at - self.image_stamp


class PolicyRunner:
    def __init__(
        self,
        policy: Policy,
        *,
        action_rate_hz: float,
        max_age_s: float,
        instruction: str,
        clock: Callable[[], float] = time.time,
        min_period_s: float = 0.0,
    ) -> None:
        """``clock``: the time base of the stamps (the node's ROS clock); ``min_period_s``: at most one
        decode start per this period (the control rate), however fast frames arrive."""
        if not (math.isfinite(max_age_s) and max_age_s > 0):
            raise ValueError("max_age_s must be > 0")
        self.policy = policy
        self.clock = clock
        self.max_age_s = float(max_age_s)
        self.min_period_s = float(min_period_s)
        self.history = FrameHistory(policy.frame_gap_s(action_rate_hz)) if policy.num_frames == 2 else None
        self.instruction = instruction
        self.epoch = -math.inf
        self.episodes_started = 0
        self.dropped_before_epoch = 0  # frames/joint states/results from before the last episode start
        self._image: Stamped | None = None
        self._joints: Stamped | None = None
        self._last_used_image: float | None = None
        self._next_start = -math.inf
        self._cond = threading.Condition()

    # ------------------------------------------------------------------ inputs (any thread)
    def on_image(self, rgb: np.ndarray, stamp: float, token: object = None) -> bool:
        """Store the newest frame; False (dropped) if it was taken before the current episode began."""
        with self._cond:
            if stamp < self.epoch:
                self.dropped_before_epoch += 1
                return False
            if self._image is not None and stamp <= self._image.stamp:
                return False  # out of order or repeated: the newest frame stays
            self._image = Stamped(rgb, stamp, token)
            if self.history is not None:
                self.history.push(stamp, rgb)
            self._cond.notify_all()
            return True

    def on_joints(self, joints_and_width: np.ndarray, stamp: float) -> bool:
        """Store the newest joint state (7 joints + gripper width); False if from before the episode."""
        with self._cond:
            if stamp < self.epoch:
                self.dropped_before_epoch += 1
                return False
            self._joints = Stamped(np.asarray(joints_and_width, dtype=np.float32), stamp)
            self._cond.notify_all()
            return True

    def on_instruction(self, text: str) -> bool:
        """Set the task instruction; True if it changed."""
        with self._cond:
            changed = text != self.instruction
            self.instruction = text
            return changed

    def start_episode(self, stamp: float, instruction: str = "") -> None:
        """A new episode began at ``stamp``: forget everything observed before it."""
        with self._cond:
            self.epoch = max(self.epoch, stamp)
            self.episodes_started += 1
            if self._image is not None and self._image.stamp < self.epoch:
                self._image = None
            if self._joints is not None and self._joints.stamp < self.epoch:
                self._joints = None
            if self.history is not None:
                self.history.clear()
            if instruction:
                self.instruction = instruction
            self._cond.notify_all()

    def wake(self) -> None:
        """Wake a waiting ``wait_for_observation`` (shutdown)."""
        with self._cond:
            self._cond.notify_all()

    # ------------------------------------------------------------------ decode thread
    def wait_for_observation(self, timeout_s: float = 0.1) -> PendingObservation | str | None:
        """The next observation to decode, waiting up to ``timeout_s`` for a new frame.

        Returns None when there is nothing new, or a string saying why the newest one is not decoded
        (stale).
        """
        delay = self._next_start - time.monotonic()
        if delay > 0:
            time.sleep(min(delay, timeout_s))
        with self._cond:
            if not self._has_new_frame():
                self._cond.wait(timeout=timeout_s)
            if not self._has_new_frame():
                return None
            now = self.clock()
            image, joints = self._image, self._joints
            assert image is not None and joints is not None
            if not (now - image.stamp <= self.max_age_s and now - joints.stamp <= self.max_age_s):
                self._last_used_image = image.stamp  # wait for the next frame instead of spinning on this one
                return (
                    f"stale observation (image {now - image.stamp:.2f} s, joints {now - joints.stamp:.2f} s old,"
                    f" max {self.max_age_s} s): no chunk"
                )
            self._last_used_image = image.stamp
            previous = self.history.previous(image.stamp) if self.history is not None else None
            obs = Observation(image.value, joints.value, self.instruction, previous)
        self._next_start = time.monotonic() + self.min_period_s
        return PendingObservation(obs, image.stamp, joints.stamp, image.token, now)

    def _has_new_frame(self) -> bool:
        return (
            self._image is not None and self._joints is not None and self._image.stamp != self._last_used_image
        )

    def decode(self, pending: PendingObservation) -> PolicyResult:
        return self.policy.predict(pending.observation)

    def still_current(self, pending: PendingObservation) -> bool:
        """False if an episode started after the observation was taken (its chunk must not be published)."""
        with self._cond:
            if pending.image_stamp < self.epoch or pending.joints_stamp < self.epoch:
                self.dropped_before_epoch += 1
                return False
            return True
