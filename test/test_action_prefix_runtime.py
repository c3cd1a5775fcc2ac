"""Latency-compensated decoding at run time, free of ROS: the executor's plan, the policy's action prefix,
and the executor's ``action_prefix`` switch-over."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from test_core_policy_runner import Clock

from fast_dvla_ros.core.actuation import step_times
from fast_dvla_ros.core.plan_track import PlanTrack
from fast_dvla_ros.core.policy import Policy
from fast_dvla_ros.core.policy_runner import PendingObservation, PolicyRunner
from fast_dvla_ros.execution import ChunkRejected, ExecutorCore, ExecutorState, ReceivedChunk, load_joint_limits
from fast_dvla_ros.execution.blender import Chunk, ChunkBlender

MODEL = Path(__file__).resolve().parents[1] / "models" / "student_distilled"
PANDA = load_joint_limits("panda")
NAMES = list(PANDA.joint_names)
HOME = np.array([0.0, -0.5, 0.0, -2.3, 0.0, 1.8, -0.785])
DT = 1 / 30


@pytest.fixture(scope="module")
def policy() -> Policy:
    p = Policy.load(MODEL, decoder="pipelined", n=1)
    # the runtime's rules, independent of what the shipped checkpoint was trained for
    p.contract = dataclasses.replace(p.contract, action_prefix_steps=4)
    return p


def _ramp(t0: float, h: int, speed: float = 0.3) -> np.ndarray:
    """A plan [h, 8] observed at t0: joint 1 moving at ``speed`` rad/s, the others at HOME, gripper open."""
    times = step_times(t0, h, DT)
    q = np.tile(HOME, (h, 1))
    q[:, 0] = speed * (times - 10.0)  # one ramp through t = 10 s, whichever tick's plan it is
    return np.concatenate([q, np.full((h, 1), 0.08)], axis=1)


def test_plan_track_keeps_what_was_planned_for_the_past_and_replaces_the_future() -> None:
    track = PlanTrack(keep_s=0.2)
    assert track.covered(np.array([1.0])) == 0
    track.add(1.0, DT, np.full((8, 2), 1.0))
    track.add(1.0 + DT, DT, np.full((8, 2), 2.0))  # the next tick's plan
    times = step_times(1.0, 3, DT)
    assert track.covered(times) == 3
    assert np.allclose(track.at(times[:1]), 1.0)  # planned before the newer message began
    assert np.allclose(track.at(times[1:]), 2.0)
    assert track.covered(step_times(1.0 + 8 * DT, 3, DT)) == 1  # beyond the newest plan's end: not covered
    track.add(2.0, DT, np.full((8, 2), 3.0))  # 0.2 s later: the old samples are forgotten
    assert track.covered(step_times(1.0, 1, DT)) == 0
    track.add(2.1, DT, np.full((8, 2), np.nan))  # malformed: ignored
    assert np.allclose(track.at(step_times(2.0, 1, DT)), 3.0)


def _runner(policy: Policy, clock: Clock, steps: int = 4) -> PolicyRunner:
    return PolicyRunner(policy, action_rate_hz=30.0, max_age_s=0.5, instruction="pick", clock=clock,
                        prefix_steps=steps)


def test_the_prefix_covers_the_steps_that_run_before_the_chunk_arrives(policy: Policy) -> None:
    clock = Clock(10.030)
    r = _runner(policy, clock)
    frame = np.full((96, 96, 3), 90, np.uint8)
    r.on_joints(np.append(HOME, 0.08).astype(np.float32), 9.995)
    r.on_image(frame, 10.0)
    pending = r.wait_for_observation(0.0)
    assert isinstance(pending, PendingObservation) and pending.prefix_steps == 0  # no plan, no latency yet
    for k in range(4):  # the executor's plan after each tick
        r.on_plan(_ramp(9.9 + k * DT, 8), 9.9 + k * DT, DT)
    r.observe_decode(0.060)
    r.on_image(frame, 10.0 + DT)
    clock.t = 10.0 + DT + 0.030
    pending = r.wait_for_observation(0.0)
    # arrival 30 ms (age) + 60 ms (decode) + 5 ms after the image: steps at 16.7, 50 and 83 ms are past by then
    assert isinstance(pending, PendingObservation) and pending.prefix_steps == 3
    assert np.allclose(pending.observation.action_prefix, _ramp(10.0 + DT, 3))
    result = r.decode(pending)
    assert result.prefix_steps == 3 and result.stats.tokens_committed == (policy.horizon - 3) * 8
    width = policy.model.action_tokenizer.bin_width
    assert np.all(np.abs(result.actions[:3] - pending.observation.action_prefix) <= width / 2 + 1e-6)
    r.observe_decode(0.300)  # slow decodes: the prefix grows, up to the longest allowed
    r.observe_decode(0.300)
    r.on_image(frame, 10.0 + 2 * DT)
    clock.t = 10.0 + 2 * DT + 0.001
    pending = r.wait_for_observation(0.0)
    assert isinstance(pending, PendingObservation) and pending.prefix_steps <= 4
    assert pending.prefix_steps == r.plan.covered(step_times(10.0 + 2 * DT, 4, DT))


def test_no_prefix_across_an_episode_start_off_the_bins_or_when_turned_off(policy: Policy) -> None:
    clock = Clock(10.03)
    frame = np.full((96, 96, 3), 90, np.uint8)
    r = _runner(policy, clock)
    r.observe_decode(0.06)
    r.on_plan(_ramp(10.0, 8), 10.0, DT)
    r.start_episode(10.01)
    assert r.plan.empty and not r.on_plan(_ramp(10.0, 8), 10.0, DT)  # the last episode's plan is gone
    r.on_joints(np.append(HOME, 0.08).astype(np.float32), 10.02)
    r.on_image(frame, 10.02)
    assert r.wait_for_observation(0.0).prefix_steps == 0
    far = _ramp(10.02, 8)
    far[:, 1] += 1.0  # 1 rad from the observed pose: outside the checkpoint's chunk-relative bins
    r.on_plan(far, 10.02, DT)
    r.on_image(frame, 10.05)
    clock.t = 10.06
    assert r.wait_for_observation(0.0).prefix_steps == 0 and r.prefixes_refused == 1
    assert _runner(policy, clock, steps=0).prefix_steps == 0
    shipped = Policy.load(MODEL, decoder="pipelined", n=1)
    assert _runner(shipped, clock, steps=4).prefix_steps == shipped.max_prefix_steps  # the checkpoint's cap


def test_action_prefix_mode_keeps_the_plan_for_the_prefix_and_switches_after_it() -> None:
    b = ChunkBlender("action_prefix")
    h = 8
    old = _ramp(0.0, h)
    b.add(Chunk(0.0, DT, old[:, :7], old[:, 7]), now=0.0)
    new = _ramp(0.0, h)
    new[:3, 0] += 0.002  # the prefix as the policy sent it: quantised copies of the plan
    new[3:, 0] += 0.05  # the decoded rest: its own idea from step 3 on
    b.add(Chunk(0.0, DT, new[:, :7], new[:, 7], sequence_id=1, prefix_steps=3), now=0.02)
    t = step_times(0.0, h, DT)
    assert b.sample(float(t[1]))[0] == pytest.approx(old[1, 0])  # exactly the old plan, not the copy
    assert b.sample(float(t[2]))[0] == pytest.approx(old[2, 0])
    assert b.sample(float(t[5]))[0] == pytest.approx(new[5, 0])  # the chunk right after, no blending
    b.add(Chunk(0.0, DT, new[:, :7], new[:, 7], sequence_id=2), now=0.03)  # no prefix: taken like latest
    assert b.sample(float(t[2]))[0] == pytest.approx(new[2, 0])


def _core(mode: str) -> ExecutorCore:
    core = ExecutorCore(PANDA, blender=ChunkBlender(mode), control_period=DT, velocity_scale=0.9)
    core.update_joint_state(NAMES, HOME, 0.0)
    core.tick(0.0)
    return core


def _received(a: np.ndarray, stamp: float, seq: int, prefix: int = 0) -> ReceivedChunk:
    return ReceivedChunk(joint_names=NAMES, actions=a[:, :7].reshape(-1), gripper=a[:, 7], horizon=len(a),
                         step_period=DT, stamp=stamp, sequence_id=seq, prefix_steps=prefix)


def test_executor_publishes_its_plan_and_measures_each_switch_over() -> None:
    core = _core("action_prefix")
    assert core.plan(0.0, 8) is None  # nothing planned yet
    first = _ramp(0.0, 8)
    first[:, 0] = HOME[0] + 0.3 * step_times(0.0, 8, DT)  # these two tests run near t = 0
    assert core.add_chunk(0.001, _received(first, 0.0, 1))
    assert np.isnan(core.counters.seam_velocity_jump)  # no plan before the first chunk
    core.update_joint_state(NAMES, HOME, DT)
    assert core.tick(DT).state == ExecutorState.EXECUTING
    plan = core.plan(DT, 8)
    assert plan.shape == (8, 8)
    assert np.allclose(plan, [core.blender.sample(float(t)) for t in step_times(DT, 8, DT)])
    # a chunk continuing the plan after a 2-step prefix: no velocity step at the seam
    cont = _ramp(2 * DT / 3, 8)
    cont[:, 0] = HOME[0] + 0.3 * step_times(2 * DT / 3, 8, DT)
    assert core.add_chunk(DT + 0.01, _received(cont, 2 * DT / 3, 2, prefix=2))
    smooth = core.counters.seam_velocity_jump
    turn = cont.copy()
    turn[2:, 0] = turn[1, 0]  # stops moving after its prefix
    core2 = _core("latest")
    core2.add_chunk(0.001, _received(first, 0.0, 1))
    core2.update_joint_state(NAMES, HOME, DT)
    core2.tick(DT)
    core2.add_chunk(DT + 0.01, _received(turn, 2 * DT / 3, 2))
    assert smooth < 0.05 < core2.counters.seam_velocity_jump
    with pytest.raises(ChunkRejected, match="prefix_steps"):
        from fast_dvla_ros.execution import validate_chunk

        validate_chunk(limits=PANDA, now=1.0, **{**_received(first, 0.9, 3, prefix=8).fields()})


def test_a_published_chunk_is_the_plan_until_the_executor_s_plan_includes_it(policy: Policy) -> None:
    clock = Clock(10.0)
    r = _runner(policy, clock)
    r.on_plan(_ramp(10.0, 8), 10.0, DT, sequence_id=4)
    frame = np.full((96, 96, 3), 90, np.uint8)
    r.on_joints(np.append(HOME, 0.08).astype(np.float32), 10.0)
    r.on_image(frame, 10.0)
    r.observe_decode(0.06)
    clock.t = 10.02
    pending = r.wait_for_observation(0.0)
    assert pending.prefix_steps == 3
    result = r.decode(pending)
    r.published(pending, result, sequence_id=5)
    t = step_times(10.0, 8, DT)
    assert np.allclose(r.plan.at(t[3:]), result.actions[3:])  # our chunk from its first decoded step on
    assert np.allclose(r.plan.at(t[:3]), _ramp(10.0, 3))  # the plan it continues, before that
    stale = _ramp(10.03, 8)
    stale[:, 2] += 0.3
    assert not r.on_plan(stale, 10.03, DT, sequence_id=4)  # published before chunk 5 reached the executor
    assert np.allclose(r.plan.at(t[3:]), result.actions[3:])
    assert r.on_plan(_ramp(10.06, 8), 10.06, DT, sequence_id=5)  # includes it: the executor's word again
    assert np.allclose(r.plan.at(step_times(10.06, 8, DT)), _ramp(10.06, 8))
    clock.t = 10.1
    r.published(pending, result, sequence_id=6)  # never acknowledged (dropped): after ack_timeout_s plans count again
    assert not r.on_plan(_ramp(10.15, 8), 10.15, DT, sequence_id=5)
    assert r.on_plan(_ramp(10.2, 8), 10.2, DT, sequence_id=5)
