"""Safety: limits tables, chunk validation (reject vs clamp), rate limiting, watchdog, observation guard."""

from __future__ import annotations

import numpy as np
import pytest

from fast_dvla_ros.execution import (
    ChunkRejected,
    ExecutorCore,
    ExecutorState,
    ObservationError,
    ReceivedChunk,
    SafetyFilter,
    Watchdog,
    decode_raw_image,
    is_fresh,
    load_joint_limits,
    pick_joints,
    validate_chunk,
)

PANDA = load_joint_limits("panda")
NAMES = list(PANDA.joint_names)
HOME = np.array([0.0, -0.5, 0.0, -2.3, 0.0, 1.8, -0.785])


def _fields(actions: np.ndarray, **kw: object) -> dict:
    h = actions.shape[0]
    f = dict(
        joint_names=NAMES,
        actions=actions.reshape(-1),
        gripper=np.full(h, 0.04),
        horizon=h,
        step_period=1 / 30,
        stamp=10.0,
        sequence_id=1,
        action_kind="joint_position",
    )
    f.update(kw)
    return f


def test_both_limit_tables_load_with_the_documented_numbers() -> None:
    fr3 = load_joint_limits("fr3")
    assert fr3.joint_names[0] == "fr3_joint1" and fr3.upper[3] == pytest.approx(-0.1518)
    assert fr3.velocity[4] == pytest.approx(5.26)
    assert PANDA.lower[5] == pytest.approx(-0.0175) and PANDA.velocity[0] == pytest.approx(2.175)
    with pytest.raises(ValueError, match="not found"):
        load_joint_limits("ur5")


def test_nan_chunk_is_rejected_whole() -> None:
    a = np.tile(HOME, (8, 1))
    a[3, 2] = np.nan
    with pytest.raises(ChunkRejected, match="NaN"):
        validate_chunk(limits=PANDA, now=10.0, **_fields(a))


@pytest.mark.parametrize(
    "change",
    [
        {"joint_names": [*NAMES[:6], "wrong_joint"]},
        {"joint_names": NAMES[:6]},
        {"horizon": 7},
        {"gripper": np.zeros(3)},
        {"step_period": 0.0},
        {"action_kind": "ee_delta"},
        {"stamp": 20.0},
    ],
)
def test_malformed_chunks_are_rejected(change: dict) -> None:
    with pytest.raises(ChunkRejected):
        validate_chunk(limits=PANDA, now=10.0, **_fields(np.tile(HOME, (8, 1)), **change))


def test_reordered_joints_are_mapped_and_out_of_limit_values_clamped() -> None:
    a = np.tile(HOME, (8, 1))
    a[:, 0] = 5.0  # beyond +2.8973
    perm = list(reversed(range(7)))
    chunk, report = validate_chunk(limits=PANDA, now=10.0, **_fields(a[:, perm], joint_names=[NAMES[i] for i in perm]))
    assert np.allclose(chunk.positions[:, 0], PANDA.upper[0])
    assert np.allclose(chunk.positions[:, 1:], a[:, 1:])
    assert report.count == 8 and "clamped" in report.event


def test_sub_millimetre_gripper_overhang_is_clamped_and_counted_but_not_an_event() -> None:
    a = np.tile(HOME, (8, 1))
    chunk, report = validate_chunk(limits=PANDA, now=10.0, **_fields(a, gripper=np.full(8, -0.0003)))
    assert np.all(chunk.gripper == 0.0) and report.count == 8 and not report.event
    _, report = validate_chunk(limits=PANDA, now=10.0, **_fields(a, gripper=np.full(8, -0.01)))
    assert report.count == 8 and "gripper 10.0 mm" in report.event


def test_rate_limit_bounds_every_step() -> None:
    f = SafetyFilter(PANDA, velocity_scale=0.5)
    pts = np.tile(HOME + 1.0, (5, 1))
    out, n = f.rate_limit(HOME, pts, 1 / 30)
    steps = np.abs(np.diff(np.concatenate([HOME[None], out]), axis=0))
    assert np.all(steps <= PANDA.velocity * 0.5 / 30 + 1e-12) and n > 0


def test_watchdog_trips_once_per_outage() -> None:
    w = Watchdog(0.5)
    assert not w.check(100.0)  # never fed: not a trip (nothing to hold yet)
    w.feed(0.0)
    assert not w.check(0.4)
    assert w.check(0.6) and w.check(0.7) and w.trips == 1
    w.feed(0.8)
    assert not w.check(0.9)
    assert w.check(2.0) and w.trips == 2


def test_executor_refuses_without_a_valid_joint_state_then_executes_and_holds() -> None:
    core = ExecutorCore(PANDA, watchdog_timeout_s=0.3)
    assert core.tick(0.0).positions is None and core.state == ExecutorState.WAITING_FOR_JOINT_STATE
    assert not core.update_joint_state(NAMES, [np.nan] * 7, 0.0)
    assert core.tick(0.03).state == ExecutorState.WAITING_FOR_JOINT_STATE
    assert core.update_joint_state([*NAMES, "panda_finger_joint1"], [*HOME, 0.02], 0.05)
    assert core.tick(0.06).state == ExecutorState.WAITING_FOR_CHUNK
    target = np.tile(HOME + 0.5, (8, 1))  # far away: must be rate limited
    assert core.add_chunk(0.07, ReceivedChunk(**_fields(target, stamp=0.07)))
    prev, last = HOME, 0.06
    vmax = PANDA.velocity * 0.5
    for k in range(1, 10):
        now = 0.07 + k / 30
        core.update_joint_state(NAMES, HOME, now)
        cmd = core.tick(now)
        assert cmd.state == ExecutorState.EXECUTING
        assert np.all(np.isfinite(cmd.positions)) and np.all(np.abs(cmd.velocities) <= vmax + 1e-9)
        # "now" moves at most v_max * elapsed, and every point of the trajectory at most v_max * dt from the last
        assert np.all(np.abs(core.q_ref - prev) <= vmax * (now - last) + 1e-9)
        assert np.all(np.abs(np.diff(np.vstack([core.q_ref, cmd.positions]), axis=0)) <= vmax / 30 + 1e-9)
        prev, last = core.q_ref, now
    core.update_joint_state(NAMES, HOME, 1.0)
    cmd = core.tick(1.0)  # no chunk for > 0.3 s
    assert cmd.state == ExecutorState.HOLDING and np.all(cmd.velocities == 0)
    assert np.allclose(cmd.positions, prev) and core.counters.watchdog_trips == 1


def test_observation_guard() -> None:
    img = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    assert np.array_equal(decode_raw_image("rgb8", 4, 5, 15, img.tobytes()), img)
    assert np.array_equal(decode_raw_image("bgr8", 4, 5, 15, img.tobytes()), img[..., ::-1])
    assert decode_raw_image("mono8", 4, 5, 5, bytes(20)).shape == (4, 5, 3)
    padded = np.zeros((4, 16), np.uint8)
    padded[:, :15] = img.reshape(4, 15)
    assert np.array_equal(decode_raw_image("rgb8", 4, 5, 16, padded.tobytes()), img)
    with pytest.raises(ObservationError, match="encoding"):
        decode_raw_image("32FC1", 4, 5, 20, bytes(80))
    with pytest.raises(ObservationError, match="truncated"):
        decode_raw_image("rgb8", 4, 5, 15, bytes(30))
    with pytest.raises(ObservationError, match="step"):
        decode_raw_image("rgb8", 4, 5, 10, bytes(60))
    q = pick_joints(["b", "x", "a"], [2.0, 9.0, 1.0], ["a", "b"])
    assert q.tolist() == [1.0, 2.0]
    with pytest.raises(ObservationError, match="lacks"):
        pick_joints(["a"], [1.0], ["a", "b"])
    with pytest.raises(ObservationError, match="NaN"):
        pick_joints(["a", "b"], [1.0, float("nan")], ["a", "b"])
    assert is_fresh(9.8, 10.0, 0.5) and not is_fresh(9.0, 10.0, 0.5)


def test_executor_reanchors_to_the_arm_when_it_is_far_from_the_command() -> None:
    core = ExecutorCore(PANDA, watchdog_timeout_s=0.5, reanchor_tolerance=0.3)
    core.update_joint_state(NAMES, HOME, 0.0)
    core.tick(0.0)
    assert core.add_chunk(0.01, ReceivedChunk(**_fields(np.tile(HOME + 0.2, (8, 1)), stamp=0.01)))
    assert core.tick(0.04).state == ExecutorState.EXECUTING
    moved = HOME.copy()
    moved[0] += 1.0  # e.g. the simulator reset the arm, or a collision pushed it
    core.update_joint_state(NAMES, moved, 0.05)
    cmd = core.tick(0.07)
    # the re-anchor tick commands a hold where the arm is (the controller must stop following the old plan)
    assert cmd.state == ExecutorState.WAITING_FOR_CHUNK and cmd.positions is not None
    assert np.allclose(cmd.positions, moved) and np.all(cmd.velocities == 0.0)
    assert np.allclose(core.q_ref, moved) and "re-anchored" in core.counters.last_event
    # a chunk decoded from an observation before the jump (in flight) is dropped, not blended
    assert not core.add_chunk(0.075, ReceivedChunk(**_fields(np.tile(HOME + 0.2, (8, 1)), stamp=0.04)))
    assert core.counters.chunks_superseded == 1
    # the next chunk is planned from where the arm really is
    assert core.add_chunk(0.08, ReceivedChunk(**_fields(np.tile(moved, (8, 1)), stamp=0.08)))
    cmd = core.tick(0.1)
    assert cmd.state == ExecutorState.EXECUTING and np.allclose(cmd.positions[0], moved, atol=1e-6)


def test_an_episode_start_before_anything_was_commanded_sends_nothing() -> None:
    # the latched EpisodeStart of the first episode reaches an executor that never commanded the arm: sending a
    # hold would start a cell that waits for the robot's first command while the policy still loads
    core = ExecutorCore(PANDA, watchdog_timeout_s=0.5)
    core.start_episode(stamp=1.0, now=1.5)
    core.update_joint_state(NAMES, HOME, 1.6, stamp=1.6)
    for t in (1.6, 1.7, 2.5):
        cmd = core.tick(t)
        assert cmd.state == ExecutorState.WAITING_FOR_CHUNK and cmd.positions is None


def test_episode_start_drops_pre_reset_chunks_and_holds_at_the_pose_measured_after_it() -> None:
    core = ExecutorCore(PANDA, watchdog_timeout_s=0.5, reanchor_tolerance=0.5)
    core.update_joint_state(NAMES, HOME, 0.0, stamp=0.0)
    core.tick(0.0)
    assert core.add_chunk(0.01, ReceivedChunk(**_fields(np.tile(HOME + 0.2, (8, 1)), gripper=np.zeros(8), stamp=0.01)))
    assert core.tick(0.04).state == ExecutorState.EXECUTING
    core.start_episode(stamp=1.0, now=1.002)
    reset_pose = HOME + np.array([0.1, 0, 0, 0, 0, 0, 0])  # within the re-anchor tolerance: only the signal helps
    # a joint state measured before the reset (in flight) is not taken as the new episode's pose
    assert not core.update_joint_state(NAMES, HOME + 0.3, 1.003, stamp=0.99)
    assert core.tick(1.004).positions is None  # no pose of this episode yet: nothing to hold at
    assert core.update_joint_state(NAMES, reset_pose, 1.010, stamp=1.009)
    cmd = core.tick(1.011)
    assert cmd.state == ExecutorState.WAITING_FOR_CHUNK
    assert np.allclose(cmd.positions, reset_pose) and np.all(cmd.velocities == 0.0)
    assert cmd.gripper is None  # the reset opened the gripper: the last episode's width must not be re-sent
    # the chunk decoded from the last image before the reset arrives after it: dropped
    assert not core.add_chunk(1.02, ReceivedChunk(**_fields(np.tile(HOME + 0.2, (8, 1)), stamp=0.98)))
    assert core.counters.chunks_superseded == 1
    assert core.tick(1.044).state == ExecutorState.WAITING_FOR_CHUNK  # still holding
    assert core.add_chunk(1.05, ReceivedChunk(**_fields(np.tile(reset_pose, (8, 1)), stamp=1.04)))
    cmd = core.tick(1.077)
    assert cmd.state == ExecutorState.EXECUTING and np.allclose(cmd.positions[0], reset_pose, atol=1e-6)


def test_executor_counts_sub_millimetre_clamps_without_an_empty_event() -> None:
    core = ExecutorCore(PANDA, watchdog_timeout_s=0.5)
    core.update_joint_state(NAMES, HOME, 10.0)
    a = np.tile(HOME, (8, 1))
    assert core.add_chunk(10.0, ReceivedChunk(**_fields(a, gripper=np.full(8, -0.0003))))
    assert core.counters.clamped_values == 8
    assert core.counters.events == []  # nothing to report (an empty event used to log blank warnings)


def test_a_finite_joint_state_outside_the_limits_is_ignored_and_reported_not_reanchored_to() -> None:
    core = ExecutorCore(PANDA, watchdog_timeout_s=0.5, reanchor_tolerance=0.3)
    assert core.update_joint_state(NAMES, HOME, 0.0)
    core.tick(0.0)
    assert core.add_chunk(0.01, ReceivedChunk(**_fields(np.tile(HOME, (8, 1)), stamp=0.01)))
    assert core.tick(0.04).state == ExecutorState.EXECUTING
    wrong = HOME.copy()
    wrong[3] = 0.1  # Panda joint 4 lives in [-3.0718, -0.0698]: finite, but no pose the arm can be in
    assert not core.update_joint_state(NAMES, wrong, 0.05)
    assert "implausible" in core.counters.last_event and "panda_joint4" in core.counters.last_event
    assert np.allclose(core.q_measured, HOME)
    cmd = core.tick(0.07)  # 2.4 rad "drift": with the reading believed, this tick would re-anchor
    assert cmd.state == ExecutorState.EXECUTING and "re-anchored" not in core.counters.last_event
    assert np.allclose(core.q_ref, HOME, atol=0.1)
    # a reading a few milliradians past a limit (an arm pressing on its stop) is still believed
    edge = HOME.copy()
    edge[3] = PANDA.upper[3] + 0.01
    assert core.update_joint_state(NAMES, edge, 0.08)


def test_limit_check_names_the_joint_and_allows_the_margin() -> None:
    from fast_dvla_ros.execution.observation_guard import JOINT_LIMIT_MARGIN_RAD, check_within_limits

    check_within_limits(PANDA.upper + 0.9 * JOINT_LIMIT_MARGIN_RAD, NAMES, PANDA.lower, PANDA.upper)
    expected = r"panda_joint6 = -0\.200 rad is outside its limits \[-0\.0175, 3\.7525\]"
    with pytest.raises(ObservationError, match=expected):
        check_within_limits(np.array([*HOME[:5], -0.2, HOME[6]]), NAMES, PANDA.lower, PANDA.upper)
