"""Smoke test: the scripted expert picks a moving block and drops it in the bin."""

from __future__ import annotations

import numpy as np

from fast_dvla_ros.sim import scene
from fast_dvla_ros.sim.conveyor_env import ConveyorPickEnv, SimConfig
from fast_dvla_ros.sim.expert import Phase, ScriptedExpert, grasp_yaw


def test_expert_picks_one_block():
    env = ConveyorPickEnv(SimConfig(image_size=16))
    expert = ScriptedExpert()
    try:
        obs, info = env.reset(seed=11)
        expert.reset(obs, info)
        phases, actions = [], []
        for _ in range(300):
            action = expert.act(obs, info)
            actions.append(action)
            phases.append(expert.phase)
            obs, reward, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        assert info["success"], info["failure_cause"]
        assert reward == 1.0 and info["grasped"]
        assert {Phase.DESCEND, Phase.CLOSE, Phase.LIFT, Phase.TRANSFER} <= set(phases)
        acts = np.asarray(actions)
        assert acts.shape[1] == 8 and np.all(np.isfinite(acts))
        # smooth: joint targets never jump more than the expert's joint speed bound per step
        assert np.max(np.abs(np.diff(acts[:, :7], axis=0))) <= expert.config.max_joint_speed / 30 + 1e-9
    finally:
        expert.close()
        env.close()


def test_grasp_yaw_folds_cube_symmetry():
    for yaw in np.linspace(-3, 3, 13):
        g = grasp_yaw(float(yaw))
        assert np.pi / 4 - 1e-9 <= g <= 3 * np.pi / 4 + 1e-9  # within pi/4 of the home yaw (pi/2)
        # the finger axis is a face normal of the block: difference is a multiple of pi/2
        k = (g - np.pi / 2 - yaw) / (np.pi / 2)
        assert abs(k - round(k)) < 1e-9


def test_opening_the_hand_mid_air_is_reported_as_dropped():
    env = ConveyorPickEnv(SimConfig(image_size=16))
    expert = ScriptedExpert()
    try:
        obs, info = env.reset(seed=2)
        expert.reset(obs, info)
        for _ in range(300):
            action = expert.act(obs, info)
            if expert.phase is Phase.TRANSFER and env.grasp_pose()[0][0] < 0.36:  # between belt and bin
                break
            obs, _, terminated, truncated, info = env.step(action)
            assert not (terminated or truncated), info["failure_cause"]
        assert info["grasped"]
        q, _ = env.command
        env.set_command(q, 0.08)  # let go over the floor
        for _ in range(60):
            env.advance(0.05)
            if env.episode_status().done:
                break
        status = env.episode_status()
        assert status.done and not status.success and status.failure_cause == "dropped"
    finally:
        expert.close()
        env.close()


def test_without_termination_the_expert_returns_home_and_success_stays_latched():
    env = ConveyorPickEnv(SimConfig(image_size=16, terminate_on_success=False, episode_time_limit=7.0))
    expert = ScriptedExpert()
    try:
        obs, info = env.reset(seed=4)
        expert.reset(obs, info)
        rewards = []
        for _ in range(400):
            obs, reward, terminated, truncated, info = env.step(expert.act(obs, info))
            rewards.append(reward)
            if terminated or truncated:
                break
        assert truncated and not terminated
        assert info["success"] and info["failure_cause"] == ""
        assert sum(rewards) == 1.0  # paid once, on the landing step
        assert expert.phase is Phase.RETREAT
        home, _ = expert._kin.forward(scene.HOME_JOINTS)
        assert np.linalg.norm(env.grasp_pose()[0] - home) < 0.03
    finally:
        expert.close()
        env.close()
