"""Policy node shutdown: SIGINT in the middle of a decode that takes seconds ends the process within 2 s.

Its own module: the 4 s decodes must not share the CPU with test_nodes_policy.py's running rig.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from sensor_msgs.msg import Image, JointState

from fast_dvla_ros.msg import ActionChunk
from fast_dvla_ros.nodes.conversions import rgb_to_image
from fast_dvla_ros.nodes.qos import CHUNK_QOS, SENSOR_QOS
from ros_peers.testing import NodeProcess, Probe

_NS = f"/policy_sigint_test{os.getpid()}"
IMG, JS, CHUNK = (f"{_NS}/{t}" for t in ("image", "joint_states", "action_chunk"))
NAMES = [f"panda_joint{i}" for i in range(1, 8)]
HOME = [0.0, -0.5, 0.0, -2.3, 0.0, 1.8, -0.785]


@pytest.fixture(scope="module")
def slow_checkpoint(tmp_path_factory) -> str:
    """A tiny model with a 32-step horizon: 256 action tokens, so 256 bidirectional refinement forwards (~4 s)."""
    import dataclasses

    import torch

    from fast_dvla_ros.core.config import DVLAConfig
    from fast_dvla_ros.core.model import DVLA

    torch.manual_seed(0)
    model = DVLA(dataclasses.replace(DVLAConfig.preset("tiny"), horizon=32))
    model.set_proprio_stats(np.zeros(8), np.ones(8))
    return str(model.save_pretrained(tmp_path_factory.mktemp("ck") / "tiny_slow"))


def test_sigint_mid_decode_exits_within_2_s(slow_checkpoint: str) -> None:
    """A decode that takes seconds must not hold up Ctrl-C: launch sends SIGTERM 5 s after SIGINT, and a user
    expects the node gone at once. The running decode stops at its next forward pass (policy_node.py)."""
    node = NodeProcess(
        "policy_node",
        ["-p", f"checkpoint:={slow_checkpoint}", "-p", "decoder:=bidirectional:steps=256",
         "-p", "warmup:=false", "-p", "max_observation_age_s:=5.0",
         "-r", "/diagnostics:=/sigint_test/diag", "-r", f"~/image:={IMG}", "-r", f"~/joint_states:={JS}",
         "-r", f"~/action_chunk:={CHUNK}"],
        name="sigint_policy",
    )  # fmt: skip
    probe = Probe("sigint_probe")
    probe.record(ActionChunk, CHUNK, CHUNK_QOS)
    img_pub = probe.node.create_publisher(Image, IMG, SENSOR_QOS)
    js_pub = probe.node.create_publisher(JointState, JS, SENSOR_QOS)
    stop = threading.Event()

    def feed() -> None:
        rng = np.random.default_rng(1)
        while not stop.is_set():
            stamp = probe.node.get_clock().now().to_msg()
            img_pub.publish(rgb_to_image(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8), stamp))
            js = JointState(name=[*NAMES, "panda_finger_joint1", "panda_finger_joint2"], position=[*HOME, 0.02, 0.02])
            js.header.stamp = stamp
            js_pub.publish(js)
            time.sleep(0.05)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        # The first chunk proves decoding runs; the next decode starts at once on the next frame.
        assert probe.wait_for(lambda: len(probe.got(CHUNK)) >= 1, 120.0), node.output
        latency = probe.got(CHUNK)[0].stats.latency_s
        time.sleep(min(0.3, latency / 4))
        t0 = time.monotonic()
        code, out = node.stop(timeout=10.0)
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        feeder.join()
        probe.close()
    assert latency > 2.5, f"decode took only {latency:.2f} s: the test would not interrupt a decode"
    assert code == 0, out
    assert "Traceback" not in out, out
    assert elapsed < 2.0, f"exited {elapsed:.2f} s after SIGINT (decode {latency:.2f} s)"
    # the running decode was cancelled, not abandoned after close()'s join timeout
    assert "decode thread still running at shutdown" not in out, out
