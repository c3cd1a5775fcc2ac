"""Simulator node as a real process: camera and joint states with stamps, follows a JointTrajectory
like a JTC, publishes an EpisodeOutcome at the episode end and exits 0 after the last episode."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("pybullet")

from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from fast_dvla_ros.msg import EpisodeOutcome, EpisodeStart
from fast_dvla_ros.nodes.conversions import sec_to_duration, time_to_sec
from fast_dvla_ros.nodes.qos import COMMAND_QOS, LATCHED_QOS, SENSOR_QOS, STATUS_QOS
from ros_peers.testing import NodeProcess, Probe

P = f"/sim_test{os.getpid()}"  # per-run topic prefix: no cross-talk with any other graph
ARM = [f"panda_joint{i}" for i in range(1, 8)]


def test_sim_node_moves_the_arm_along_a_trajectory_and_ends_the_episode() -> None:
    node = NodeProcess(
        "sim_node",
        [
            "-p",
            "episodes:=1",
            "-p",
            "episode_time_limit_s:=3.0",
            "-p",
            "seed:=3",
            *(
                a
                for t in (
                    "image",
                    "joint_states",
                    "episode_outcome",
                    "instruction",
                    "joint_trajectory",
                    "gripper_command",
                )
                for a in ("-r", f"~/{t}:={P}/{t}")
            ),
        ],
    )
    probe = Probe("sim_probe")
    try:
        probe.record(Image, f"{P}/image", SENSOR_QOS)
        probe.record(JointState, f"{P}/joint_states", SENSOR_QOS)
        probe.record(EpisodeOutcome, f"{P}/episode_outcome", STATUS_QOS)
        probe.record(String, f"{P}/instruction", LATCHED_QOS)
        traj_pub = probe.node.create_publisher(JointTrajectory, f"{P}/joint_trajectory", COMMAND_QOS)
        grip_pub = probe.node.create_publisher(Float64, f"{P}/gripper_command", COMMAND_QOS)
        assert probe.wait_for(lambda: len(probe.got(f"{P}/joint_states")) > 5, 20.0), node.output
        js = probe.got(f"{P}/joint_states")[-1]
        assert list(js.name[:7]) == ARM and len(js.position) == 9
        q0 = np.array(js.position[:7])
        assert probe.wait_for(lambda: len(probe.got(f"{P}/image")) > 2, 5.0)
        img = probe.got(f"{P}/image")[-1]
        assert img.encoding == "rgb8" and img.height == img.width == 96 and len(img.data) == 96 * 96 * 3
        assert abs(time_to_sec(img.header.stamp) - probe.now()) < 1.0
        assert "block" in probe.got(f"{P}/instruction")[-1].data
        # Our publishers are discovered apart from our subscriptions: a command published before the node's
        # subscription has matched is dropped (volatile QoS), which a loaded CI machine showed once.
        assert probe.wait_for(lambda: traj_pub.get_subscription_count() > 0
                              and grip_pub.get_subscription_count() > 0, 10.0), node.output
        # Joint 1 by +0.3 rad over 1 s, as the executor would send it (points with velocities, stamp 0 = now).
        msg = JointTrajectory()
        msg.joint_names = ARM
        for k in range(1, 11):
            pt = JointTrajectoryPoint()
            s = k / 10
            q = q0.copy()
            q[0] += 0.3 * (3 * s**2 - 2 * s**3)
            v = np.zeros(7)
            v[0] = 0.3 * (6 * s - 6 * s**2)
            pt.positions, pt.velocities = q.tolist(), v.tolist()
            pt.time_from_start = sec_to_duration(0.1 * k)
            msg.points.append(pt)
        traj_pub.publish(msg)
        grip_pub.publish(Float64(data=0.02))
        time.sleep(1.6)
        q1 = np.array(probe.got(f"{P}/joint_states")[-1].position[:7])
        assert q1[0] - q0[0] == pytest.approx(0.3, abs=0.05)
        assert np.allclose(q1[1:], q0[1:], atol=0.05)
        # Joint-state rate and stamps.
        stamps = [time_to_sec(m.header.stamp) for m in probe.got(f"{P}/joint_states")[-30:]]
        assert np.median(np.diff(stamps)) < 1 / 25
        # The episode times out (3 s) -> outcome, then the node exits by itself with 0.
        assert probe.wait_for(lambda: probe.got(f"{P}/episode_outcome"), 10.0), node.output
        out = probe.got(f"{P}/episode_outcome")[0]
        assert out.episode == 0 and out.seed == 3 and not out.success and out.failure_cause == "timeout"
        assert out.duration_s == pytest.approx(3.0, abs=0.2) and out.control_steps == 1
        assert node.wait(10.0) == 0, node.output
    finally:
        code, output = node.stop()
        probe.close()
    assert code == 0 and "Traceback" not in output, output


def test_first_episode_waits_for_the_first_command_when_asked() -> None:
    """Cold start: the belt must not run while the policy is still loading (wait_for_first_command)."""
    prefix = f"{P}w"
    node = NodeProcess(
        "sim_node",
        [
            "-p", "episodes:=1", "-p", "episode_time_limit_s:=1.0", "-p", "wait_for_first_command:=true",
            *(
                a
                for t in ("image", "joint_states", "episode_outcome", "instruction", "joint_trajectory",
                          "gripper_command")
                for a in ("-r", f"~/{t}:={prefix}/{t}")
            ),
        ],
    )
    probe = Probe("sim_wait_probe")
    try:
        probe.record(JointState, f"{prefix}/joint_states", SENSOR_QOS)
        probe.record(EpisodeOutcome, f"{prefix}/episode_outcome", STATUS_QOS)
        traj_pub = probe.node.create_publisher(JointTrajectory, f"{prefix}/joint_trajectory", COMMAND_QOS)
        assert probe.wait_for(lambda: len(probe.got(f"{prefix}/joint_states")) > 5, 20.0), node.output
        # three times the episode's time limit without a command: still no outcome, sensors alive
        time.sleep(3.0)
        assert not probe.got(f"{prefix}/episode_outcome")
        seen = len(probe.got(f"{prefix}/joint_states"))
        assert probe.wait_for(lambda: len(probe.got(f"{prefix}/joint_states")) > seen + 5, 5.0)
        q0 = list(probe.got(f"{prefix}/joint_states")[-1].position[:7])
        msg = JointTrajectory()
        msg.joint_names = ARM
        pt = JointTrajectoryPoint()
        pt.positions, pt.velocities = q0, [0.0] * 7
        pt.time_from_start = sec_to_duration(0.5)
        msg.points.append(pt)
        traj_pub.publish(msg)
        # the first command starts the episode clock: it times out one simulated second later
        assert probe.wait_for(lambda: probe.got(f"{prefix}/episode_outcome"), 10.0), node.output
        out = probe.got(f"{prefix}/episode_outcome")[0]
        assert out.failure_cause == "timeout" and out.duration_s == pytest.approx(1.0, abs=0.2)
        assert node.wait(10.0) == 0, node.output
    finally:
        code, output = node.stop()
        probe.close()
    assert code == 0 and "Traceback" not in output, output


def _joint1_trajectory(q0: list[float], delta: float, duration: float) -> JointTrajectory:
    msg = JointTrajectory()
    msg.joint_names = ARM
    pt = JointTrajectoryPoint()
    q = list(q0)
    q[0] += delta
    pt.positions, pt.velocities = q, [0.0] * 7
    pt.time_from_start = sec_to_duration(duration)
    msg.points.append(pt)
    return msg


def test_commands_in_flight_at_a_reset_do_not_reach_the_new_scene() -> None:
    """The executor learns of a reset only when the EpisodeStart reaches it; what it sent until then was meant
    for the previous scene (reset_settle_s). Later commands are followed again."""
    prefix = f"{P}r"
    topics = ("joint_states", "episode_outcome", "episode_start", "joint_trajectory", "gripper_command")
    node = NodeProcess(
        "sim_node",
        [
            "-p", "episodes:=2", "-p", "episode_time_limit_s:=2.0", "-p", "reset_settle_s:=0.5",
            *(a for t in topics for a in ("-r", f"~/{t}:={prefix}/{t}")),
        ],
    )  # fmt: skip
    probe = Probe("sim_reset_probe")
    try:
        probe.record(JointState, f"{prefix}/joint_states", SENSOR_QOS)
        probe.record(EpisodeStart, f"{prefix}/episode_start", LATCHED_QOS)
        traj_pub = probe.node.create_publisher(JointTrajectory, f"{prefix}/joint_trajectory", COMMAND_QOS)
        grip_pub = probe.node.create_publisher(Float64, f"{prefix}/gripper_command", COMMAND_QOS)
        starts = lambda: [m.episode for m in probe.got(f"{prefix}/episode_start")]  # noqa: E731
        assert probe.wait_for(lambda: 1 in starts(), 20.0), node.output
        seen = time.monotonic()
        # sent at once, as an executor that has not heard of the reset yet would: a swing of joint 1 and a close
        q_reset = list(probe.got(f"{prefix}/joint_states")[-1].position[:7])
        traj_pub.publish(_joint1_trajectory(q_reset, 0.5, 0.2))
        grip_pub.publish(Float64(data=0.0))
        time.sleep(max(0.0, seen + 0.4 - time.monotonic()))
        js = probe.got(f"{prefix}/joint_states")[-1]
        assert abs(js.position[0] - q_reset[0]) < 0.01, (js.position[0], q_reset[0])
        assert js.position[7] + js.position[8] > 0.07  # the fingers stayed open
        # after the settling time the same command is followed
        time.sleep(max(0.0, seen + 0.6 - time.monotonic()))
        traj_pub.publish(_joint1_trajectory(q_reset, 0.5, 0.2))
        assert probe.wait_for(
            lambda: probe.got(f"{prefix}/joint_states")[-1].position[0] - q_reset[0] > 0.3, 1.0
        ), node.output
        assert node.wait(10.0) == 0, node.output
    finally:
        code, output = node.stop()
        probe.close()
    assert code == 0 and "Traceback" not in output, output
    assert "commands ignored while its reset settled" in output, output
