"""One meaning of "step k of a chunk" (fast_dvla_ros/core/actuation.py) in the recorder, the evaluator, the
executor's trajectory points and the simulator's follower.

The demonstrations hold a_k as the motor target over [t0 + k dt, t0 + (k + 1) dt) (a zero-order hold);
everything that executes a chunk must command the same thing at the same time, or the policy acts on an
arm that lags what it was trained on (~10 steps longer episodes, measured in emulation).
"""

from __future__ import annotations

import numpy as np
import pytest

from fast_dvla_ros.core.actuation import STEP_PHASE, hold_sample_time, step_times
from fast_dvla_ros.evaluation.episodes import ChunkStepper
from fast_dvla_ros.execution import ChunkBlender, ExecutorCore, ReceivedChunk, load_joint_limits
from fast_dvla_ros.execution.jtc_interpolator import JtcInterpolator

DT = 1.0 / 30.0
LIMITS = load_joint_limits("panda")
NAMES = list(LIMITS.joint_names)
HOME = np.array([0.0, -0.5, 0.0, -2.3, 0.0, 1.8, -0.785])


def _ramp_chunk(h: int = 8, rate: float = 0.3) -> np.ndarray:
    """[h, 8] joint targets moving at ``rate`` rad/s on every joint (well inside the velocity limits), gripper 0.04."""
    q = HOME + rate * DT * (np.arange(h)[:, None] + 1.0)
    return np.concatenate([q, np.full((h, 1), 0.04)], axis=1)


def test_the_definition() -> None:
    assert STEP_PHASE == 0.5
    assert np.allclose(step_times(10.0, 3, DT), 10.0 + DT * np.array([0.5, 1.5, 2.5]))
    assert hold_sample_time(10.0, DT) == pytest.approx(10.0 + 0.5 * DT)


def test_recorder_holds_each_label_over_its_control_step() -> None:
    pytest.importorskip("pybullet")
    from fast_dvla_ros.sim.conveyor_env import ConveyorPickEnv, SimConfig
    from fast_dvla_ros.sim.expert import ScriptedExpert
    from fast_dvla_ros.train.demos import run_expert_episode

    held: list[np.ndarray] = []

    class ObservedEnv(ConveyorPickEnv):  # the real env; only looks at the motor target each step held
        def step(self, action):  # type: ignore[override]
            out = super().step(action)
            q, w = self.command
            held.append(np.r_[q, w])
            return out

    env = ObservedEnv(SimConfig(episode_time_limit=0.5))
    try:
        record = run_expert_episode(env, ScriptedExpert(), seed=3)
    finally:
        env.close()
    # label k, recorded beside observation k, is the target held over the step that starts at that observation
    assert len(held) == record.actions.shape[0] > 5
    assert np.allclose(np.asarray(held)[:, :7], record.actions[:, :7], atol=1e-6)


@pytest.mark.parametrize("blend", [None, "latest", "temporal_ensemble"])
def test_evaluator_executes_step_k_over_the_kth_control_step(blend: str | None) -> None:
    chunk = _ramp_chunk()
    stepper = ChunkStepper(execute_steps=8, dt=DT, blend=blend)
    stepper.reset(chunk[0] - 0.01)
    executed = np.asarray(stepper.actions(chunk, now=5.0))
    assert np.allclose(executed, chunk, atol=1e-9)
    # a chunk decoded from an observation 2 steps old: its first two steps went by while decoding
    stepper.reset(chunk[0] - 0.01)
    late = np.asarray(stepper.actions(chunk, now=5.0 + 2 * DT, stamp=5.0))
    assert np.allclose(late[:6], chunk[2:], atol=1e-9)


def test_executor_points_pass_through_step_k_at_its_mid_step_time() -> None:
    chunk = _ramp_chunk()
    t0 = 100.0
    core = ExecutorCore(LIMITS, blender=ChunkBlender("latest"), velocity_scale=1.0, n_points=8)
    core.update_joint_state(NAMES, HOME, t0, stamp=t0)
    core.tick(t0)
    now = t0 + 0.5 * DT  # a tick that falls on step 0's time: every point lands on a step time
    fields = dict(joint_names=NAMES, actions=chunk[:, :7].reshape(-1), gripper=chunk[:, 7], horizon=8,
                  step_period=DT, stamp=t0, sequence_id=1, action_kind="joint_position")
    # the executor anchors a 'latest' plan at what it commands now; anchor it on step 0 to compare cleanly
    core.q_ref = chunk[0, :7].copy()
    assert core.add_chunk(now, ReceivedChunk(**fields))
    cmd = core.tick(now)
    assert cmd.positions is not None and cmd.times_from_start is not None
    follower = JtcInterpolator(NAMES, chunk[0, :7])
    follower.reset(chunk[0, :7], now)
    follower.set_trajectory(now, now, NAMES, cmd.times_from_start, cmd.positions, cmd.velocities)
    for k in range(1, 7):
        q, _ = follower.sample(t0 + (k + STEP_PHASE) * DT)
        assert np.allclose(q, chunk[k, :7], atol=1e-6), k


def test_simulator_follower_commands_on_average_what_the_zero_order_hold_commanded() -> None:
    """Sampled every substep, the JTC spline through the mid-step points averages a_k over step k, as the
    demonstrations' hold did; the old convention (a_k at the end of step k) lagged it by half a step."""
    pytest.importorskip("pybullet")
    from fast_dvla_ros.sim.conveyor_env import ConveyorPickEnv, SimConfig

    chunk = _ramp_chunk(h=12)
    t0 = 0.0
    follower = JtcInterpolator(NAMES, chunk[0, :7])
    follower.reset(chunk[0, :7], t0)
    times = step_times(t0, 12, DT)
    vel = np.gradient(chunk[:, :7], DT, axis=0)
    follower.set_trajectory(t0, t0, NAMES, times - t0 + 1e-9, chunk[:, :7], vel)
    env = ConveyorPickEnv(SimConfig())
    try:
        env.reset(seed=0)
        for k in range(2, 10):
            targets: list[np.ndarray] = []

            def command(
                offset: float, start: float = t0 + k * DT, seen: list[np.ndarray] = targets
            ) -> tuple[np.ndarray, float]:
                q, _ = follower.sample(start + offset)
                seen.append(q)
                return q, 0.04

            env._pending_time = 0.0  # one control step = exactly 8 substeps here
            assert env.advance(DT, command=command) == 8
            mean = np.mean(targets, axis=0)
            assert np.allclose(mean, chunk[k, :7], atol=2e-4), k
            lag = np.abs(mean - chunk[k - 1, :7]).max()  # what a follower one step late would have commanded
            assert lag > 5 * np.abs(mean - chunk[k, :7]).max()
    finally:
        env.close()
