"""Executor node as a real process over DDS: refuses without a joint state, streams a chunk safely,
clamps and reports out-of-limit chunks, rejects NaN chunks, and holds when chunks stop (watchdog)."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from sensor_msgs.msg import JointState
from std_msgs.msg import Float64
from trajectory_msgs.msg import JointTrajectory

from fast_dvla_ros.execution import load_joint_limits
from fast_dvla_ros.msg import ActionChunk, ExecutorStatus
from fast_dvla_ros.nodes.conversions import sec_to_duration, sec_to_time
from fast_dvla_ros.nodes.qos import CHUNK_QOS, COMMAND_QOS, SENSOR_QOS, STATUS_QOS
from ros_peers.testing import NodeProcess, Probe, check_commands_safe

LIMITS = load_joint_limits("panda")
NAMES = list(LIMITS.joint_names)
HOME = np.array([0.0, -0.5, 0.0, -2.3, 0.0, 1.8, -0.785])
VSCALE = 0.5
RATE = 30.0
_NS = f"/executor_test{os.getpid()}"  # per-run topic prefix: no cross-talk with any other graph
TRAJ, GRIP, STATUS, CHUNK, JS = (f"{_NS}/{t}" for t in ("traj", "gripper", "status", "chunk", "joint_states"))


def assert_commands_safe(trajs: list[JointTrajectory], start: np.ndarray) -> None:
    assert trajs
    check_commands_safe(trajs, NAMES, LIMITS.lower, LIMITS.upper, LIMITS.velocity * VSCALE, RATE)
    vmax = LIMITS.velocity * VSCALE
    assert np.all(np.abs(np.array(trajs[0].points[0].positions) - start) <= vmax * 3 / RATE + 1e-6)


def make_chunk(stamp: float, q: np.ndarray, seq: int, names: list[str] = NAMES) -> ActionChunk:
    q = np.atleast_2d(q)
    h = q.shape[0]
    msg = ActionChunk()
    msg.header.stamp = sec_to_time(stamp)
    msg.sequence_id = seq
    msg.action_kind = ActionChunk.ACTION_KIND_JOINT_POSITION
    msg.joint_names = names
    msg.step_period = sec_to_duration(1.0 / RATE)
    msg.horizon = h
    msg.actions = [float(x) for x in q.reshape(-1)]
    msg.gripper = [0.03] * h
    msg.decoder = "test"
    msg.checkpoint = "test"
    return msg


@pytest.fixture
def rig():
    node = NodeProcess(
        "executor_node",
        ["-p", "chunk_timeout_s:=0.4", "-p", f"velocity_scale:={VSCALE}", "-p", "blend_mode:=latest",
         "-r", f"~/joint_trajectory:={TRAJ}", "-r", f"~/gripper_command:={GRIP}",
         "-r", f"~/action_chunk:={CHUNK}", "-r", f"~/joint_states:={JS}", "-r", f"~/status:={STATUS}"],
        name="executor_under_test",
    )  # fmt: skip
    probe = Probe()
    probe.record(JointTrajectory, TRAJ, COMMAND_QOS)
    probe.record(Float64, GRIP, COMMAND_QOS)
    probe.record(ExecutorStatus, STATUS, STATUS_QOS)
    chunk_pub = probe.node.create_publisher(ActionChunk, CHUNK, CHUNK_QOS)
    js_pub = probe.node.create_publisher(JointState, JS, SENSOR_QOS)
    yield node, probe, chunk_pub, js_pub
    code, out = node.stop()
    probe.close()
    assert code == 0, out
    assert "Traceback" not in out, out


def _joint_state(probe: Probe, q: np.ndarray) -> JointState:
    js = JointState()
    js.header.stamp = probe.node.get_clock().now().to_msg()
    js.name = [*NAMES, "panda_finger_joint1", "panda_finger_joint2"]  # extra joints are ignored
    js.position = [*map(float, q), 0.04, 0.04]
    return js


def _latest_status(probe: Probe) -> ExecutorStatus | None:
    s = probe.got(STATUS)
    return s[-1] if s else None


def test_executor_refuses_then_streams_clamps_and_holds(rig) -> None:
    node, probe, chunk_pub, js_pub = rig
    assert probe.wait_for(lambda: _latest_status(probe) is not None, 15.0), node.output
    # 1) no joint state, and a NaN joint state: refuses to move (no trajectory at all).
    js_pub.publish(_joint_state(probe, np.full(7, np.nan)))
    chunk_pub.publish(make_chunk(probe.now(), np.tile(HOME, (8, 1)), 1))
    time.sleep(0.5)
    assert _latest_status(probe).state == ExecutorStatus.STATE_WAITING_FOR_JOINT_STATE
    assert not probe.got(TRAJ)
    # 2) valid state, then a chunk far away and partly beyond the limits: clamped, reported, rate limited.
    stopped = threading.Event()

    def feed_states() -> None:
        # A perfectly tracking arm: it is where the newest trajectory's first point says.
        while not stopped.is_set():
            trajs = probe.got(TRAJ)
            js_pub.publish(_joint_state(probe, np.array(trajs[-1].points[0].positions) if trajs else HOME))
            time.sleep(1 / 60)

    feeder = threading.Thread(target=feed_states, daemon=True)
    feeder.start()
    try:
        assert probe.wait_for(lambda: _latest_status(probe).state == ExecutorStatus.STATE_WAITING_FOR_CHUNK, 5.0)
        target = np.tile(HOME, (30, 1))
        target[:, 0] = 4.0  # beyond +2.8973
        target[:, 3] = -1.5
        streaming = threading.Event()
        streaming.set()

        def stream_chunks() -> None:  # a policy at 10 Hz
            seq = 2
            while streaming.is_set():
                chunk_pub.publish(make_chunk(probe.now(), target, seq))
                seq += 1
                time.sleep(0.1)

        streamer = threading.Thread(target=stream_chunks, daemon=True)
        streamer.start()
        assert probe.wait_for(lambda: len(probe.got(TRAJ)) >= 10, 5.0), (
            [(m.state, m.chunks_received, m.last_event) for m in probe.got(STATUS)[-3:]],
            node.output[-1500:],
        )
        assert probe.wait_for(lambda: _latest_status(probe).state == ExecutorStatus.STATE_EXECUTING, 5.0)
        assert probe.wait_for(lambda: _latest_status(probe).clamped_values > 0, 2.0)
        assert any("clamped" in m.last_event for m in probe.got(STATUS))  # the chunk clamp was reported
        # 3) a NaN chunk and a chunk with wrong joint names are rejected whole.
        bad = target.copy()
        bad[2, 1] = np.nan
        chunk_pub.publish(make_chunk(probe.now(), bad, 1000))
        chunk_pub.publish(make_chunk(probe.now(), target, 1001, names=[*NAMES[:6], "elbow"]))
        assert probe.wait_for(lambda: _latest_status(probe).chunks_rejected >= 2, 3.0)
        assert _latest_status(probe).last_sequence_id < 1000
        streaming.clear()
        streamer.join()
        # 4) no more chunks: the watchdog holds the last safe position with zero velocity.
        assert probe.wait_for(lambda: _latest_status(probe).state == ExecutorStatus.STATE_HOLDING, 3.0)
        time.sleep(0.2)
        hold = probe.got(TRAJ)[-1]
        assert all(v == 0.0 for p in hold.points for v in p.velocities)
        assert _latest_status(probe).watchdog_trips == 1
    finally:
        stopped.set()
        feeder.join()
    trajs = probe.got(TRAJ)
    assert_commands_safe(trajs, HOME)
    grips = [m.data for m in probe.got(GRIP)]
    assert grips and all(0.0 <= g <= 0.08 for g in grips)


def test_bad_parameters_exit_nonzero_with_a_message() -> None:
    node = NodeProcess("executor_node", ["-p", "blend_mode:=average"])
    code = node.wait(30.0)
    out = node.output
    if code is None:
        node.stop()
    assert code == 2, out
    assert "blend mode" in out and "Traceback" not in out


def test_realtime_priority_is_applied_or_refused_with_a_warning() -> None:
    """SCHED_FIFO where the process may have it (root in CI), a warning and normal scheduling where not."""
    node = NodeProcess("executor_node", ["-p", "realtime_priority:=20"])
    try:
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline and "SCHED_FIFO priority 20" not in node.output \
                and "not applied" not in node.output:
            time.sleep(0.2)
        assert node.alive(), node.output
        out = node.output
        assert ("SCHED_FIFO priority 20" in out) != ("realtime_priority 20 not applied" in out), out
    finally:
        code, out = node.stop()
    assert code == 0 and "Traceback" not in out, out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_ends_the_node_in_order_with_exit_code_0(sig: signal.Signals) -> None:
    """Ctrl-C and launch's SIGTERM end the spin, and the teardown runs whole (runner.run_node sets a flag
    instead of letting rclpy raise KeyboardInterrupt wherever the main thread is)."""
    node = NodeProcess("executor_node", [])
    try:
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline and "executing chunks" not in node.output:
            time.sleep(0.2)
        assert node.alive() and "executing chunks" in node.output, node.output
        node.proc.send_signal(sig)
        code = node.wait(10.0)
    finally:
        if node.alive():
            node.stop()
    assert code == 0 and "Traceback" not in node.output, (code, node.output)


def test_every_parameter_is_read_only_and_set_is_refused_with_the_reason() -> None:
    """Parameters are read once at start-up; `ros2 param set` must not report success for a value never used."""
    import rclpy
    from rclpy.parameter import Parameter

    from fast_dvla_ros.nodes.executor_node import ExecutorNode

    rclpy.init()  # ExecutorNode() uses the default context
    try:
        node = ExecutorNode()
        try:
            ours = [n for n in node._parameters if n != "use_sim_time"]
            assert ours and all(node.describe_parameter(n).read_only for n in ours)
            result = node.set_parameters([Parameter("blend_mode", value="bogus")])[0]
            assert not result.successful and result.reason == "Trying to set a read-only parameter: blend_mode."
            assert node.get_parameter("blend_mode").value == "temporal_ensemble"
            assert "read-only while the node runs" in node.describe_parameter("velocity_scale").description
            # what it declares is its table (fast_dvla_ros/graph/parameters.py), defaults and ranges included
            from fast_dvla_ros.graph.parameters import EXECUTOR_PARAMETERS

            assert [n for n in ours if n != "start_type_description_service"] == [p.name for p in EXECUTOR_PARAMETERS]
            for p in EXECUTOR_PARAMETERS:
                d = node.describe_parameter(p.name)
                assert d.description.startswith(p.description), p.name
                ranges = [(r.from_value, r.to_value) for r in (*d.integer_range, *d.floating_point_range)]
                assert ranges == ([p.range] if p.range else []), p.name
                assert node.get_parameter(p.name).value == p.ros_default, p.name
        finally:
            node.destroy_node()
    finally:
        rclpy.try_shutdown()
