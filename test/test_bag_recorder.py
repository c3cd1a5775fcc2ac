"""The MCAP recorder records real rclpy publishers over Fast DDS, and the bag reads back intact.

Publishers live in this process (default rclpy context); the recorder runs with its own context
and thread, as it does inside the demo. The bag is read back twice: with our reader (rosbags) and
with mcap_ros2, which knows nothing of this package, to prove the embedded definitions suffice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from mcap.reader import make_reader  # noqa: E402
from mcap_ros2.decoder import DecoderFactory  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from rosbags.interfaces import QosDurability, QosReliability  # noqa: E402
from rosbags.rosbag2 import Reader  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint  # noqa: E402

from fast_dvla_ros.bag.reader import read_messages  # noqa: E402
from fast_dvla_ros.bag.recorder import BagRecorder, RecorderError, TopicSpec  # noqa: E402
from fast_dvla_ros.msg import ActionChunk  # noqa: E402

pytestmark = pytest.mark.ros

N = 20
INSTRUCTION = "pick the red block from the belt"
TOPICS = {
    "instruction": "/fast_dvla_policy/instruction",
    "chunks": "/fast_dvla_policy/action_chunk",
    "commands": "/chunk_executor/joint_trajectory",
    "image": "/camera/color/image_raw",
}


def _chunk(i: int) -> ActionChunk:
    msg = ActionChunk()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1000 + i, 123_456_789
    msg.sequence_id = i
    msg.action_kind = ActionChunk.ACTION_KIND_JOINT_POSITION
    msg.joint_names = [f"panda_joint{j + 1}" for j in range(7)]
    msg.step_period.nanosec = 33_333_333
    msg.horizon = 8
    msg.actions = (np.arange(56, dtype=float) * 0.01 + i).tolist()
    msg.gripper = [0.08 - 0.001 * i] * 8
    msg.decoder = "pipelined"
    msg.checkpoint = "ckpt-test"
    msg.stats.latency_s = 0.01 * (i + 1)
    msg.stats.forward_passes = 3
    msg.stats.tokens_committed = 64
    return msg


def _image(i: int) -> Image:
    msg = Image()
    msg.header.frame_id = f"frame{i}"
    msg.height, msg.width, msg.encoding, msg.step = 4, 6, "rgb8", 18
    msg.data = bytes((i * 7 + k) % 256 for k in range(72))
    return msg


def _trajectory(i: int) -> JointTrajectory:
    msg = JointTrajectory()
    msg.joint_names = [f"panda_joint{j + 1}" for j in range(7)]
    msg.points = [JointTrajectoryPoint(positions=[0.1 * i] * 7, velocities=[0.0] * 7)]
    return msg


def _wait(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def publisher_node() -> Iterator[Node]:
    rclpy.init()
    node = Node("bag_test_publishers")
    yield node
    node.destroy_node()
    rclpy.try_shutdown()


def test_records_real_publishers_and_reads_back_intact(publisher_node: Node, tmp_path: Path) -> None:
    node = publisher_node
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    instruction_pub = node.create_publisher(String, TOPICS["instruction"], latched)
    instruction_pub.publish(String(data=INSTRUCTION))  # before the recorder exists: only durability saves it
    chunk_pub = node.create_publisher(ActionChunk, TOPICS["chunks"], 10)
    command_pub = node.create_publisher(JointTrajectory, TOPICS["commands"], 10)
    image_pub = node.create_publisher(Image, TOPICS["image"], qos_profile_sensor_data)

    bag = tmp_path / "bag"
    specs = [
        TopicSpec(TOPICS["instruction"]),  # type and QoS discovered from the publisher
        TopicSpec(TOPICS["chunks"], "fast_dvla_ros/msg/ActionChunk"),
        TopicSpec(TOPICS["commands"]),
        TopicSpec(TOPICS["image"]),
    ]
    with BagRecorder(bag, specs) as recorder:
        assert recorder.wait_for_subscriptions(len(specs), timeout_s=20), recorder.counts
        pubs = (chunk_pub, command_pub, image_pub)
        assert _wait(lambda: all(p.get_subscription_count() >= 1 for p in pubs), 20)
        time.sleep(0.3)  # let the best-effort reader finish matching the writer
        for i in range(N):
            chunk_pub.publish(_chunk(i))
            command_pub.publish(_trajectory(i))
            image_pub.publish(_image(i))
            time.sleep(0.01)
        complete = _wait(
            lambda: recorder.counts.get(TOPICS["chunks"]) == N and recorder.counts.get(TOPICS["commands"]) == N, 10
        )
        assert _wait(lambda: recorder.counts.get(TOPICS["instruction"]) == 1, 5)
    assert complete, recorder.counts
    assert not recorder.skipped

    # --- our reader (rosbags) --------------------------------------------------------------
    got: dict[str, list] = {name: [] for name in TOPICS.values()}
    times: list[int] = []
    for topic, log_ns, msg in read_messages(bag, TOPICS.values()):
        got[topic].append(msg)
        times.append(log_ns)
    assert times == sorted(times) and abs(times[0] * 1e-9 - time.time()) < 120
    assert [m.data for m in got[TOPICS["instruction"]]] == [INSTRUCTION]
    assert len(got[TOPICS["chunks"]]) == N
    for i, msg in enumerate(got[TOPICS["chunks"]]):
        sent = _chunk(i)
        assert msg.sequence_id == i and msg.header.stamp.sec == 1000 + i and msg.header.stamp.nanosec == 123_456_789
        assert list(msg.joint_names) == list(sent.joint_names)
        assert np.array_equal(msg.actions, np.asarray(sent.actions))
        assert np.array_equal(msg.gripper, np.asarray(sent.gripper))
        assert (msg.decoder, msg.checkpoint, msg.horizon) == ("pipelined", "ckpt-test", 8)
        assert msg.stats.latency_s == sent.stats.latency_s and msg.step_period.nanosec == 33_333_333
    assert [m.points[0].positions[0] for m in got[TOPICS["commands"]]] == pytest.approx([0.1 * i for i in range(N)])
    images = got[TOPICS["image"]]
    assert len(images) >= N // 2, "best effort on localhost lost more than half the images"
    for msg in images:
        i = int(msg.header.frame_id.removeprefix("frame"))
        assert bytes(msg.data) == bytes(_image(i).data) and msg.encoding == "rgb8"

    # --- QoS recorded per topic ------------------------------------------------------------
    with Reader(bag) as reader:
        qos = {c.topic: c.ext.offered_qos_profiles[0] for c in reader.connections}
    assert qos[TOPICS["image"]].reliability == QosReliability.BEST_EFFORT
    assert qos[TOPICS["instruction"]].durability == QosDurability.TRANSIENT_LOCAL
    assert qos[TOPICS["chunks"]].reliability == QosReliability.RELIABLE

    # --- an independent reader that only has the bag's embedded definitions ----------------
    mcap_file = next(bag.glob("*.mcap"))
    with mcap_file.open("rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        decoded = [m for _s, _c, _m, m in reader.iter_decoded_messages(topics=[TOPICS["chunks"]])]
    assert [m.sequence_id for m in decoded] == list(range(N))
    assert decoded[3].stats.latency_s == pytest.approx(0.04)
    assert list(decoded[3].actions) == pytest.approx(_chunk(3).actions)


def test_bad_specs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(RecorderError, match="absolute"):
        TopicSpec.parse("relative/topic")
    with pytest.raises(RecorderError, match="unknown QoS"):
        TopicSpec.parse("/a@sometimes")
    with pytest.raises(RecorderError, match="pkg/msg/Type"):
        TopicSpec.parse("/a:String")
    assert TopicSpec.parse("/a:std_msgs/msg/String@transient_local").msgtype == "std_msgs/msg/String"
    existing = tmp_path / "exists"
    existing.mkdir()
    with pytest.raises(RecorderError, match="exists already"):
        BagRecorder(existing, [TopicSpec("/a")])
    with pytest.raises(RecorderError, match="nothing to record"):
        BagRecorder(tmp_path / "new", [])


def test_cli_records_until_sigint(publisher_node: Node, tmp_path: Path) -> None:
    bag = tmp_path / "cli_bag"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fast_dvla_ros.bag.recorder", "--out", str(bag), "--topics", "/cli_chatter"],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        pub = publisher_node.create_publisher(String, "/cli_chatter", 10)
        assert _wait(lambda: pub.get_subscription_count() >= 1 or proc.poll() is not None, 30)
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.3)
        for i in range(10):
            pub.publish(String(data=f"hello {i}"))
            time.sleep(0.01)
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert [m.data for _t, _ns, m in read_messages(bag, ["/cli_chatter"])] == [f"hello {i}" for i in range(10)]
