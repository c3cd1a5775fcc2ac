"""PolicyRunner: which observation is decoded when, and what an episode start discards (no ROS)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fast_dvla_ros.core.policy import Policy
from fast_dvla_ros.core.policy_runner import PendingObservation, PolicyRunner

MODEL = Path(__file__).resolve().parents[1] / "models" / "student_distilled"
JOINTS = np.array([0.0, -0.5, 0.0, -2.3, 0.0, 1.8, -0.785, 0.08], dtype=np.float32)


class Clock:
    """The caller's time base (the node passes its ROS clock)."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy.load(MODEL, decoder="pipelined", n=1)


def _frame(value: int) -> np.ndarray:
    return np.full((96, 96, 3), value, dtype=np.uint8)


def _runner(policy: Policy, clock: Clock) -> PolicyRunner:
    return PolicyRunner(policy, action_rate_hz=30.0, max_age_s=0.5, instruction="pick", clock=clock)


def test_decodes_each_new_frame_once_with_the_newest_joint_state(policy: Policy) -> None:
    clock = Clock(10.0)
    r = _runner(policy, clock)
    assert r.wait_for_observation(timeout_s=0.0) is None  # nothing yet
    r.on_joints(JOINTS, 9.99)
    r.on_image(_frame(10), 9.995, token="stamp-a")
    pending = r.wait_for_observation(timeout_s=0.0)
    assert isinstance(pending, PendingObservation)
    assert pending.image_token == "stamp-a" and pending.age_s == pytest.approx(0.005)
    r.on_joints(JOINTS + 0.01, 10.01)  # a newer joint state alone is no reason to decode the same frame again
    assert r.wait_for_observation(timeout_s=0.0) is None
    r.on_image(_frame(20), 10.02)
    clock.t = 10.03
    pending = r.wait_for_observation(timeout_s=0.0)
    assert isinstance(pending, PendingObservation)
    assert np.allclose(pending.observation.proprio, JOINTS + 0.01)  # the newest joints at decode start
    result = r.decode(pending)
    assert result.actions.shape == (policy.horizon, 8) and np.all(np.isfinite(result.actions))


def test_episode_start_drops_older_frames_in_flight_and_the_decode_running_on_one(policy: Policy) -> None:
    clock = Clock(20.0)
    r = _runner(policy, clock)
    r.on_joints(JOINTS, 19.98)
    r.on_image(_frame(10), 19.99)
    running = r.wait_for_observation(timeout_s=0.0)  # a decode starts on the last pre-reset frame ...
    assert isinstance(running, PendingObservation)
    r.start_episode(20.0, instruction="pick the blue block")  # ... and the scene is reset meanwhile
    assert not r.still_current(running)  # its chunk must not be published
    assert r.instruction == "pick the blue block"
    assert not r.on_image(_frame(11), 19.995)  # a frame rendered before the reset, delivered after it
    assert not r.on_joints(JOINTS, 19.999)
    assert r.wait_for_observation(timeout_s=0.0) is None  # nothing of the new episode yet
    assert r.dropped_before_epoch == 3
    r.on_joints(JOINTS, 20.01)
    r.on_image(_frame(30), 20.02)
    clock.t = 20.03
    fresh = r.wait_for_observation(timeout_s=0.0)
    assert isinstance(fresh, PendingObservation) and r.still_current(fresh)


def test_frame_history_restarts_at_an_episode_start(policy: Policy) -> None:
    assert policy.num_frames == 2
    clock = Clock(30.0)
    r = _runner(policy, clock)
    r.on_joints(JOINTS, 29.0)
    for i in range(20):  # 20 frames at 30 Hz of the old episode
        r.on_image(_frame(100 + i), 29.0 + i / 30.0)
    r.start_episode(30.0)
    r.on_joints(JOINTS, 30.01)
    r.on_image(_frame(7), 30.02)
    pending = r.wait_for_observation(timeout_s=0.0)
    assert isinstance(pending, PendingObservation)
    # the previous frame is the new episode's first one (as in training), never one of the old episode
    assert pending.observation.previous_image is not None and int(pending.observation.previous_image[0, 0, 0]) == 7


def test_stale_observations_produce_no_decode(policy: Policy) -> None:
    clock = Clock(40.0)
    r = _runner(policy, clock)
    r.on_joints(JOINTS, 39.0)  # a joint state one second old: the arm's state is unknown
    r.on_image(_frame(1), 39.99)
    why = r.wait_for_observation(timeout_s=0.0)
    assert isinstance(why, str) and "stale" in why
    assert r.wait_for_observation(timeout_s=0.0) is None  # and no busy loop on the same frame
