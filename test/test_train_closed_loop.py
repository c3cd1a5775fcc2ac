"""The closed-loop evaluation runs the shipped two-frame student in the real simulator (short episode)."""

from __future__ import annotations

import numpy as np
import torch

from fast_dvla_ros.core.policy import Policy
from fast_dvla_ros.train.closed_loop import PolicyDriver, evaluate


def test_evaluate_runs_a_short_episode_with_the_shipped_student() -> None:
    torch.set_num_threads(1)
    policy = Policy.load("models/student_distilled", decoder="pipelined")
    assert policy.num_frames == 2
    r = evaluate(policy, episodes=1, seed0=1000, execute_steps=4,
                 sim_overrides={"episode_time_limit": 1.0}, progress=False)
    assert r.episodes == 1 and r.chunks >= 7  # 30 steps / 4 per chunk
    assert r.per_episode[0]["steps"] == 30 and r.failure_causes == {"timeout": 1}
    assert 1 <= r.forwards_per_chunk <= 64 and r.latency_mean_ms > 0


def test_driver_gives_the_frame_ten_steps_back() -> None:
    frames = [{"image": np.full((8, 8, 3), k, np.uint8)} for k in range(20)]
    driver = PolicyDriver(Policy.load("models/student_distilled", decoder="pipelined"), 30.0)
    driver.reset(frames[0])
    for f in frames[1:15]:
        driver.stepped(f)
    assert driver.steps == 14
    assert driver.history.previous(driver.steps / 30)[0, 0, 0] == 4
