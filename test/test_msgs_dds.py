"""Two-process round trip of ActionChunk over real rclpy + Fast DDS (no mocks)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.node import Node  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402

from fast_dvla_ros.msg import ActionChunk  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from ros_peers.chunk_publisher import TOPIC, expected_chunk_fields  # noqa: E402

pytestmark = pytest.mark.ros


def _start_publisher() -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        [sys.executable, "-m", "ros_peers.chunk_publisher"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_action_chunk_round_trip_between_processes() -> None:
    proc = _start_publisher()
    received: list[ActionChunk] = []
    rclpy.init()
    try:
        node = Node("round_trip_subscriber")
        node.create_subscription(
            ActionChunk, TOPIC, received.append, QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        )
        deadline = time.monotonic() + 30.0
        while not received and time.monotonic() < deadline and proc.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.1)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=15)

    assert received, f"no ActionChunk received over DDS; publisher stderr:\n{err}"
    assert proc.returncode == 0, f"publisher did not shut down cleanly (rc={proc.returncode}):\n{err}"
    assert "Traceback" not in err

    msg, f = received[0], expected_chunk_fields()
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == f["stamp"]
    assert msg.sequence_id == f["sequence_id"]
    assert msg.action_kind == f["action_kind"] == "joint_position"
    assert list(msg.joint_names) == f["joint_names"]
    assert (msg.step_period.sec, msg.step_period.nanosec) == f["step_period"]
    assert msg.horizon == f["horizon"]
    assert list(msg.actions) == pytest.approx(f["actions"], abs=0)
    assert len(msg.actions) == msg.horizon * len(msg.joint_names)
    assert list(msg.gripper) == f["gripper"]
    assert msg.decoder == f["decoder"] and msg.checkpoint == f["checkpoint"]
    for key, value in f["stats"].items():
        assert getattr(msg.stats, key) == pytest.approx(value, rel=1e-12)
