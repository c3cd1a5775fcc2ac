"""The gripper as an actuator (no ROS): open/closed decisions with hysteresis and dwell, one franka_gripper
goal at a time, failures reported once; the executor core's robot-error stop and recovery; dry-run planning
from the measured pose; robot-state error reasons."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fast_dvla_ros.execution import ChunkBlender, ExecutorCore, ExecutorState, ReceivedChunk, load_joint_limits
from fast_dvla_ros.execution.gripper import (
    GRASP,
    HOMING,
    MOVE,
    GripperDecider,
    GripperGoalTracker,
    GripperSettings,
)
from fast_dvla_ros.execution.robot_state import robot_error_reason

LIMITS = load_joint_limits("panda")
NAMES = list(LIMITS.joint_names)
HOME = np.array([0.0, -0.5, 0.0, -2.3, 0.0, 1.8, -0.785])
DT = 1.0 / 30.0


# ---------------------------------------------------------------- decisions
def test_decider_hysteresis_ignores_a_width_hovering_in_the_band() -> None:
    d = GripperDecider(GripperSettings(close_below_m=0.03, open_above_m=0.05, min_dwell_s=0.0))
    assert d.decide(0.08, 0.0) is False and d.width() == 0.08
    for i, w in enumerate([0.045, 0.035, 0.049, 0.031, 0.04]):  # all inside the band: no change
        assert d.decide(w, 0.1 * (i + 1)) is False
    assert d.decide(0.029, 1.0) is True and d.width() == 0.0
    assert d.decide(0.049, 1.1) is True
    assert d.decide(0.051, 1.2) is False
    assert d.changes == 2


def test_decider_dwell_holds_each_decision_then_follows_the_latest() -> None:
    d = GripperDecider(GripperSettings(min_dwell_s=0.3))
    d.decide(0.08, 0.0)
    assert d.decide(0.0, 0.35) is True  # dwell since the first decision passed: a real grasp is not delayed
    # A policy flipping every tick (the chatter seen in loop bags): at most one change per dwell.
    t, flips = 0.35, 0
    last = True
    while t < 2.35:
        t += DT
        now = d.decide(0.08 if round(t / DT) % 2 else 0.0, t)
        flips += now != last
        last = now
    assert flips <= int(2.0 / 0.3) + 1
    assert d.changes == 1 + flips


def test_decider_reset_decides_afresh_without_dwell() -> None:
    d = GripperDecider(GripperSettings(min_dwell_s=5.0))
    d.decide(0.0, 0.0)
    d.reset()
    assert d.closed is None and d.width() is None
    assert d.decide(0.08, 0.1) is False  # the first width of an epoch: no dwell, no change counted
    assert d.changes == 0


@pytest.mark.parametrize(
    "kw", [{"close_below_m": 0.06, "open_above_m": 0.05}, {"min_dwell_s": -1.0}, {"closed_width_m": 0.09}]
)
def test_settings_refuse_inconsistent_values(kw: dict) -> None:
    with pytest.raises(ValueError):
        GripperSettings(**kw)


def test_settings_from_executor_parameters() -> None:
    s = GripperSettings.from_params({"gripper_min_dwell_s": 0.5, "gripper_max_width": 0.07, "unrelated": 1})
    assert s.min_dwell_s == 0.5 and s.open_width_m == 0.07 and s.close_below_m == GripperSettings().close_below_m


# ---------------------------------------------------------------- one goal at a time
def test_tracker_one_goal_in_flight_then_the_latest_decision() -> None:
    t = GripperGoalTracker(timeout_s=3.0)
    g1 = t.next_goal(True, 0.0)
    assert g1 is not None and g1.kind == GRASP
    assert t.next_goal(False, 0.1) is None  # decision changed while the grasp runs: it waits
    assert t.next_goal(True, 0.2) is None
    assert t.result(g1.token, True, "") is None
    assert t.next_goal(True, 0.9) is None  # already closed: nothing to send
    g2 = t.next_goal(False, 1.0)
    assert g2 is not None and g2.kind == MOVE
    assert t.goals_sent == 2 and t.failures == 0


def test_tracker_failed_grasp_reported_once_and_not_retried() -> None:
    t = GripperGoalTracker()
    g = t.next_goal(True, 0.0)
    event = t.result(g.token, False, "object not within epsilon")
    assert event and "grasp failed" in event and "epsilon" in event
    assert t.failures == 1
    assert t.next_goal(True, 0.5) is None  # grasping again on nothing fails again: wait for a new decision
    assert t.next_goal(False, 0.6).kind == MOVE


def test_tracker_timeout_gives_up_ignores_the_late_result_and_resends() -> None:
    t = GripperGoalTracker(timeout_s=1.0)
    g = t.next_goal(True, 0.0)
    assert t.check_timeout(0.9) is None
    late = t.check_timeout(1.1)
    assert late is g and t.failures == 1 and t.in_flight is None
    assert t.result(g.token, True, "") is None  # the result of a goal given up on changes nothing
    g2 = t.next_goal(True, 1.2)  # where the fingers are is unknown: the latest decision is sent again
    assert g2 is not None and g2.kind == GRASP and g2.token != g.token


def test_tracker_homing_first() -> None:
    t = GripperGoalTracker()
    h = t.homing(0.0)
    assert h.kind == HOMING and t.next_goal(False, 0.1) is None
    t.result(h.token, True, "")
    assert t.next_goal(False, 0.2) is None  # homing ends with the fingers open
    assert t.next_goal(True, 0.3).kind == GRASP


# ---------------------------------------------------------------- executor core
def _core(**kw) -> ExecutorCore:
    core = ExecutorCore(LIMITS, blender=ChunkBlender("latest"), control_period=DT, velocity_scale=0.5, **kw)
    core.update_joint_state(NAMES, HOME, 0.0)
    return core


def _chunk(core: ExecutorCore, now: float, gripper: float, q: np.ndarray = HOME, h: int = 16) -> bool:
    return core.add_chunk(now, ReceivedChunk(
        joint_names=NAMES, actions=np.tile(q, h), gripper=np.full(h, gripper), horizon=h,
        step_period=DT, stamp=now, sequence_id=int(now * 1000), action_kind="joint_position",
    ))  # fmt: skip


def test_core_sends_decided_widths_only() -> None:
    core = _core(gripper=GripperSettings(min_dwell_s=0.2))
    widths = []
    for k in range(60):
        now = k * DT
        core.update_joint_state(NAMES, HOME, now)
        _chunk(core, now, 0.0 if k % 2 else 0.08)  # the policy flips every chunk
        widths.append(core.tick(now).gripper)
    assert set(widths) <= {0.0, 0.08}
    assert core.counters.gripper_changes <= 2.0 / 0.2 + 1
    assert core.counters.gripper_changes == sum(a != b for a, b in itertools.pairwise(widths))


def test_core_robot_error_stops_streaming_until_recover_then_holds_at_the_new_pose() -> None:
    core = _core()
    _chunk(core, 0.0, 0.08, HOME + 0.05)
    assert core.tick(0.0).positions is not None
    core.set_robot_error("robot mode 'reflex', errors: joint_reflex", 0.05)
    for k in range(5):
        cmd = core.tick(0.1 + k * DT)
        assert cmd.state == ExecutorState.ROBOT_ERROR and cmd.positions is None and cmd.gripper is None
    _chunk(core, 0.2, 0.08)  # a chunk arriving during the error
    assert core.tick(0.25).positions is None  # still nothing streams
    assert "reflex" in core.counters.last_event
    moved = HOME + 0.3  # the arm was pushed during the reflex
    core.recover(0.4)
    assert core.tick(0.41).positions is None  # waits for a joint state measured after the recovery
    core.update_joint_state(NAMES, HOME, 0.42, stamp=0.39)  # measured before it: ignored
    assert core.tick(0.43).positions is None
    core.update_joint_state(NAMES, moved, 0.45, stamp=0.45)
    cmd = core.tick(0.46)
    assert cmd.state == ExecutorState.WAITING_FOR_CHUNK
    np.testing.assert_allclose(cmd.positions, np.repeat(moved[None], cmd.positions.shape[0], axis=0))
    assert not _chunk(core, 0.3, 0.08)  # observed before the recovery: superseded
    assert core.counters.chunks_superseded == 1


def test_core_dry_run_plans_from_the_measured_pose_and_never_reanchors() -> None:
    core = _core(follow_measured=True)
    target = HOME + 0.6
    vmax = LIMITS.velocity * 0.5
    for k in range(90):  # the arm never moves in a dry run; the plan asks for 0.6 rad
        now = k * DT
        core.update_joint_state(NAMES, HOME, now)
        _chunk(core, now, 0.08, target)
        cmd = core.tick(now)
        assert cmd.positions is not None
        assert np.all(np.abs(cmd.positions[0] - HOME) <= vmax * 2 * DT + 1e-9)  # one step from the real arm
    assert "re-anchored" not in core.counters.last_event and core.counters.chunks_superseded == 0


# ---------------------------------------------------------------- robot state
def test_robot_error_reason() -> None:
    assert robot_error_reason(2, {"joint_reflex": False}) is None
    assert robot_error_reason(0, {}) is None  # 'other': before the first state read
    r = robot_error_reason(4, {"joint_reflex": True, "cartesian_reflex": False})
    assert r == "robot mode 'reflex', errors: joint_reflex"
    assert "user stopped" in robot_error_reason(5, {})
    assert "power_limit_violation" in robot_error_reason(2, {"power_limit_violation": True})
