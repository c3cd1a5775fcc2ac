"""Real-time evaluation mode: the loop's asynchrony on a simulated clock (fast_dvla_ros/evaluation/realtime.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pybullet")

from fast_dvla_ros.core.policy import Policy, PolicyResult
from fast_dvla_ros.evaluation.realtime import RealtimeSettings, run_realtime

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy.load(ROOT / "models" / "student_distilled", decoder="pipelined", n=1)


def _settings(decode_s: float) -> RealtimeSettings:
    return RealtimeSettings.from_params_file(
        ROOT / "config" / "sim_conveyor.yaml", decode_latency_s=decode_s, sim={"episode_time_limit": 1.5}
    )


def test_settings_come_from_the_loop_s_parameter_file() -> None:
    s = RealtimeSettings.from_params_file(ROOT / "config" / "sim_conveyor.yaml")
    assert s.camera_hz == 30.0 and s.physics_hz == 60.0 and s.control_hz == 30.0
    assert s.velocity_scale == 0.9 and s.blend_mode == "temporal_ensemble" and s.command_on_chunk
    assert s.sim["episode_time_limit"] == 10.0 and s.reset_settle_s == 0.1


def test_slow_decodes_act_late_and_a_decode_running_across_a_reset_is_dropped(policy: Policy) -> None:
    outcomes, stats = run_realtime(policy, [5, 6], _settings(0.150))
    assert [o["seed"] for o in outcomes] == [5, 6]
    # a 150 ms decoder is always busy: at the reset it is decoding a frame of the old episode
    assert stats.chunks_dropped_reset == 1
    assert min(stats.decode) == max(stats.decode) == pytest.approx(0.150)
    # every command acts on an observation at least one decode old
    assert min(stats.obs_to_command) >= 0.150
    # the decoder, free again, takes the newest frame: between 0 and one frame period old (+ rendering, transport)
    ages = np.asarray(stats.camera_age)
    assert ages.min() >= 0.005 - 1e-9 and ages.max() <= 0.005 + 1 / 30 + 1e-9 and np.median(ages) > 0.01


def test_a_fast_decoder_takes_each_frame_as_it_arrives_and_runs_are_reproducible(policy: Policy) -> None:
    first, stats = run_realtime(policy, [7], _settings(0.020))
    # 20 ms < the 33 ms frame period: a frame waits only for its rendering and transport
    assert float(np.median(stats.camera_age)) == pytest.approx(0.005, abs=1e-3)
    # obs -> command: decode + chunk delivery (+ the executor sends at once, command_on_chunk)
    assert float(np.median(stats.obs_to_command)) == pytest.approx(0.005 + 0.020 + 0.004, abs=2e-3)
    again, _ = run_realtime(policy, [7], _settings(0.020))
    assert first == again  # a fixed decode time makes the replay deterministic: usable for A/B comparisons


def _arm_at_first_chunk(policy: Policy, settle_s: float) -> float:
    """Episodes 5 and 6 with the reset reaching the executor 30 ms late: how far the arm is from the reset pose
    when episode 6's first chunk arrives (only stale commands can have moved it)."""
    from fast_dvla_ros.evaluation.realtime import RealtimeLoop
    from fast_dvla_ros.sim import scene

    s = RealtimeSettings.from_params_file(
        ROOT / "config" / "sim_conveyor.yaml", decode_latency_s=0.150, sim={"episode_time_limit": 4.0}
    )  # 4 s: episode 5 ends with the arm far from home, moving
    s.sensor_delivery_s, s.reset_settle_s = 0.030, settle_s
    loop = RealtimeLoop(policy, s)
    seen: dict[int, float] = {}
    on_chunk = loop._on_chunk

    def first_chunk(result: PolicyResult, stamp: float, seq: int) -> None:
        if loop._seed not in seen:
            q = np.asarray(loop.env.observe()["joint_pos"])
            seen[loop._seed] = float(np.abs(q - np.asarray(scene.HOME_JOINTS)).max())
        on_chunk(result, stamp, seq)

    loop._on_chunk = first_chunk
    try:
        loop.run_episode(5)
        loop.run_episode(6)
    finally:
        loop.close()
    return seen[6]


def test_commands_sent_before_the_executor_hears_of_a_reset_are_ignored(policy: Policy) -> None:
    # without the simulator's settling time the previous episode's last commands move the reset arm (0.029 rad)
    assert _arm_at_first_chunk(policy, settle_s=0.0) > 0.01
    assert _arm_at_first_chunk(policy, settle_s=0.1) < 1e-3
