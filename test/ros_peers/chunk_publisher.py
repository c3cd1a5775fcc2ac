"""Publish a known ActionChunk repeatedly from its own process (for the DDS round-trip test).

Runs until SIGINT; exits 0 on a clean shutdown. The chunk's content is derived from
`expected_chunk_fields()` so the receiving test can compare every field.
"""

from __future__ import annotations

import sys

import rclpy
from builtin_interfaces.msg import Duration, Time
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from fast_dvla_ros.msg import ActionChunk, DecodeStats

TOPIC = "round_trip/action_chunk"


def expected_chunk_fields() -> dict:
    """The field values the publisher sends (plain Python, shared with the test)."""
    horizon, dim = 8, 7
    return {
        "stamp": (1_700_000_000, 123_456_789),
        "frame_id": "",
        "sequence_id": 2**40 + 7,
        "action_kind": ActionChunk.ACTION_KIND_JOINT_POSITION,
        "joint_names": [f"fr3_joint{i}" for i in range(1, dim + 1)],
        "step_period": (0, 33_333_333),
        "horizon": horizon,
        "actions": [round(0.001 * i - 0.2, 6) for i in range(horizon * dim)],
        "gripper": [0.08 if i < 4 else 0.0 for i in range(horizon)],
        "decoder": "pipelined",
        "checkpoint": "models/student_distilled",
        "stats": {"latency_s": 0.0125, "forward_passes": 9, "tokens_committed": 64,
                  "tokens_per_second": 5120.0, "tokens_per_forward": 64 / 9},
    }


def build_chunk() -> ActionChunk:
    f = expected_chunk_fields()
    msg = ActionChunk()
    msg.header.stamp = Time(sec=f["stamp"][0], nanosec=f["stamp"][1])
    msg.header.frame_id = f["frame_id"]
    msg.sequence_id = f["sequence_id"]
    msg.action_kind = f["action_kind"]
    msg.joint_names = f["joint_names"]
    msg.step_period = Duration(sec=f["step_period"][0], nanosec=f["step_period"][1])
    msg.horizon = f["horizon"]
    msg.actions = f["actions"]
    msg.gripper = f["gripper"]
    msg.decoder = f["decoder"]
    msg.checkpoint = f["checkpoint"]
    msg.stats = DecodeStats(**f["stats"])
    return msg


def main() -> int:
    rclpy.init()
    node = Node("round_trip_publisher")
    pub = node.create_publisher(ActionChunk, TOPIC, QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
    chunk = build_chunk()
    node.create_timer(0.05, lambda: pub.publish(chunk))
    print("publisher ready", flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
