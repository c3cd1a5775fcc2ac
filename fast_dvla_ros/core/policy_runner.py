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
* **Action prefix** (latency-compensated decoding, ``prefix_steps`` > 0). By the time a chunk reaches the
  executor, its first steps are past: they were run from the executor's plan while the chunk was decoded.
  The runner takes those steps from the plan (``on_plan``, a ``PlanTrack``) and hands them to the decoder as
  the chunk's committed first blocks, so the decoded rest continues what the arm is doing. How many: the
  steps whose time (``core/actuation.py``) falls before the chunk's expected arrival, which is the frame's
  age at the decode's start + the decode time (the 75th percentile of the last 30 decodes,
  ``observe_decode``) + ``prefix_margin_s``; at most ``prefix_steps``, never more than the plan covers, and
  none when the plan is unknown (an episode's first chunk) or the prefix falls outside the checkpoint's
  bins (the plan strayed from anything the policy decodes).
  The next decode starts as soon as a chunk is published, before the chunk reaches the executor and long
  before a plan that includes it comes back (the plan is published after each tick). So a published chunk
  enters the track at once, from its first decoded step on (``published``: what the executor's plan will be
  once it arrives), and plan messages that do not include it yet (their ``sequence_id``, the executor's last
  accepted chunk, is older) are ignored; for ``ack_timeout_s`` only, in case the executor dropped it.
  Without this every prefix was copied from the plan before the previous chunk, and the chunks, each
  continuing a stale plan, drifted apart by up to 0.5 rad within a second (measured in the real-time replay).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from fast_dvla_ros.core.actuation import STEP_PHASE, step_times
from fast_dvla_ros.core.frame_history import FrameHistory
from fast_dvla_ros.core.plan_track import PlanTrack
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
    prefix_steps: int = 0  # leading steps copied from the executor's plan (observation.action_prefix)

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
        prefix_steps: int = 0,
        prefix_margin_s: float = 0.005,
        ack_timeout_s: float = 0.1,
    ) -> None:
        """``clock``: the time base of the stamps (the node's ROS clock); ``min_period_s``: at most one
        decode start per this period (the control rate), however fast frames arrive; ``prefix_steps``: the
        longest action prefix to commit (0: off, -1: the checkpoint's; never more than the checkpoint's
        ``Policy.max_prefix_steps``)."""
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
        self.step_period = 1.0 / float(action_rate_hz)
        wanted = policy.max_prefix_steps if prefix_steps < 0 else int(prefix_steps)  # -1: the checkpoint's
        self.prefix_steps = max(0, min(wanted, policy.max_prefix_steps, policy.horizon - 1))
        self.prefix_margin_s = float(prefix_margin_s)
        self.plan = PlanTrack()
        self.ack_timeout_s = float(ack_timeout_s)
        self._unacknowledged: tuple[int, float] | None = None  # (sequence id, publish time) of our newest chunk
        self._latencies: deque[float] = deque(maxlen=30)
        self.prefixes_refused = 0  # prefixes outside the checkpoint's bins: decoded without one

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

    def on_plan(self, values: np.ndarray, stamp: float, step_period: float, sequence_id: int = 0) -> bool:
        """The executor's plan ([K, D] in the policy's action order, a chunk observed at ``stamp``) including
        chunks up to ``sequence_id``; False (not used) if from before the current episode, or if it does not
        include our newest published chunk yet (module doc)."""
        with self._cond:
            if stamp < self.epoch:
                return False
            if self._unacknowledged is not None:
                seq, at = self._unacknowledged
                if sequence_id < seq and stamp < at + self.ack_timeout_s:
                    return False
                self._unacknowledged = None
            self.plan.add(stamp, step_period, values)
            return True

    def published(self, pending: PendingObservation, result: PolicyResult, sequence_id: int) -> None:
        """Our chunk ``sequence_id`` (decoded from ``pending``) went out: it is the plan from its first decoded
        step on, until the executor's plan says otherwise."""
        if self.prefix_steps == 0:
            return
        with self._cond:
            if pending.image_stamp < self.epoch:
                return
            d = int(result.prefix_steps)
            actions = np.asarray(result.actions, dtype=np.float64)
            self.plan.add(pending.image_stamp + d * self.step_period, self.step_period, actions[d:])
            self._unacknowledged = (int(sequence_id), self.clock())

    def observe_decode(self, latency_s: float) -> None:
        """A decode's duration (the node measures it; the warm-up's counts too)."""
        if math.isfinite(latency_s) and latency_s >= 0:
            with self._cond:
                self._latencies.append(float(latency_s))

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
            self.plan.clear()  # the last episode's plan is not what the arm runs now
            self._unacknowledged = None
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
            prefix = self._action_prefix(image.stamp, now, joints.value)
        if prefix is not None:
            obs = replace(obs, action_prefix=prefix)
        self._next_start = time.monotonic() + self.min_period_s
        return PendingObservation(obs, image.stamp, joints.stamp, image.token, now,
                                  0 if prefix is None else len(prefix))

    def _action_prefix(self, stamp: float, now: float, proprio: np.ndarray) -> np.ndarray | None:
        """The plan's values at the steps of a chunk observed at ``stamp`` that will have run before it
        arrives (module doc); None for no prefix. Called with the lock held."""
        if self.prefix_steps == 0 or not self._latencies or self.plan.empty:
            return None
        arrival = (now - stamp) + float(np.quantile(list(self._latencies), 0.75)) + self.prefix_margin_s
        wanted = min(self.prefix_steps, max(0, math.ceil(arrival / self.step_period - STEP_PHASE)))
        times = step_times(stamp, wanted, self.step_period)
        d = self.plan.covered(times)
        if d == 0:
            return None
        prefix = self.plan.at(times[:d])
        if self.policy.prefix_bins(prefix, proprio)[1]:
            self.prefixes_refused += 1
            return None
        return prefix

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
