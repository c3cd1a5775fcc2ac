"""Policy node as a real process over DDS (random-weight checkpoint: plumbing, not skill).

Good observations -> fully filled ActionChunks stamped with the observation time + diagnostics;
each kind of bad input -> no chunk while the node keeps running and recovers afterwards;
a missing or corrupt checkpoint -> exit code 2 with a one-line reason and no traceback.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory

from fast_dvla_ros.execution import load_joint_limits
from fast_dvla_ros.msg import ActionChunk, ExecutorStatus
from fast_dvla_ros.nodes.conversions import duration_to_sec, rgb_to_image
from fast_dvla_ros.nodes.qos import CHUNK_QOS, COMMAND_QOS, SENSOR_QOS, STATUS_QOS
from ros_peers.testing import NodeProcess, Probe, check_commands_safe, count_reanchors

_NS = f"/policy_test{os.getpid()}"  # per-run topic prefix: no cross-talk with any other graph
IMG, JS, CHUNK, TRAJ, STATUS = (f"{_NS}/{t}" for t in ("image", "joint_states", "action_chunk", "traj", "status"))
NAMES = [f"panda_joint{i}" for i in range(1, 8)]
HOME = [0.0, -0.5, 0.0, -2.3, 0.0, 1.8, -0.785]
MAX_AGE = 0.4


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    import torch

    from fast_dvla_ros.core.config import DVLAConfig
    from fast_dvla_ros.core.model import DVLA

    torch.manual_seed(0)
    model = DVLA(DVLAConfig.preset("tiny"))
    model.set_proprio_stats(np.zeros(8), np.ones(8))
    return str(model.save_pretrained(tmp_path_factory.mktemp("ck") / "tiny_random"))


class Feeder:
    """Publishes camera images and joint states at 20 Hz; ``mode`` selects what kind of input."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.mode = "good"
        self.sent_stamps: set[tuple[int, int]] = set()
        self.img_pub = probe.node.create_publisher(Image, IMG, SENSOR_QOS)
        self.js_pub = probe.node.create_publisher(JointState, JS, SENSOR_QOS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        rng = np.random.default_rng(0)
        while not self._stop.is_set():
            stamp = self.probe.node.get_clock().now().to_msg()
            mode = self.mode
            if mode != "no_camera":
                img = rgb_to_image(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8), stamp)
                if mode == "bad_encoding":
                    img.encoding = "32FC1"
                elif mode == "bad_size":
                    img.step = 10  # smaller than width * 3
                elif mode == "truncated":
                    img.data = bytes(img.data)[: len(img.data) // 2]
                else:
                    self.sent_stamps.add((stamp.sec, stamp.nanosec))
                self.img_pub.publish(img)
            js = JointState()
            js.header.stamp = stamp
            js.name = ["panda_finger_joint2", *reversed(NAMES), "panda_finger_joint1"]  # any order
            js.position = [0.02, *reversed(HOME), 0.02]
            if mode == "nan_joints":
                js.position[3] = float("nan")
            elif mode == "missing_joints":
                js.name, js.position = js.name[:-3], js.position[:-3]
            elif mode == "out_of_limits":  # finite, but panda_joint4 lives in [-3.0718, -0.0698]
                js.position[js.name.index("panda_joint4")] = 0.1
            self.js_pub.publish(js)
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def rig(checkpoint):
    node = NodeProcess(
        "policy_node",
        # 10 chunks/s leaves CPU for the executor and the test on a shared 2-core machine
        ["-p", f"checkpoint:={checkpoint}", "-p", f"max_observation_age_s:={MAX_AGE}", "-p", "control_rate_hz:=10.0",
         "-r", f"/diagnostics:={_NS}/diag",
         "-r", f"~/image:={IMG}", "-r", f"~/joint_states:={JS}", "-r", f"~/action_chunk:={CHUNK}"],
    )  # fmt: skip
    # The executor consumes the chunks, so every test also checks what would reach the robot.
    executor = NodeProcess(
        "executor_node",
        ["-p", "velocity_scale:=0.5", "-r", f"~/action_chunk:={CHUNK}", "-r", f"~/joint_states:={JS}",
         "-r", f"~/joint_trajectory:={TRAJ}", "-r", f"~/status:={STATUS}"],
        name="policy_rig_executor",  # own status topic: never mixed up with another graph's executor
    )  # fmt: skip
    probe = Probe("policy_probe")
    probe.record(ActionChunk, CHUNK, CHUNK_QOS)
    probe.record(DiagnosticArray, f"{_NS}/diag", STATUS_QOS)
    probe.record(JointTrajectory, TRAJ, COMMAND_QOS)
    probe.record(ExecutorStatus, STATUS, STATUS_QOS)
    feeder = Feeder(probe)
    yield node, probe, feeder
    feeder.close()
    results = [node.stop(), executor.stop()]
    probe.close()
    for code, out in results:
        assert code == 0, out
        assert "Traceback" not in out, out


def assert_commands_safe(probe: Probe) -> None:
    limits = load_joint_limits("panda")
    trajs = probe.got(TRAJ)
    check_commands_safe(
        trajs, NAMES, limits.lower, limits.upper, 0.5 * limits.velocity, 30.0,
        allowed_jumps=count_reanchors(probe.got(STATUS)),
    )  # fmt: skip


def test_chunks_flow_with_every_field_filled(rig) -> None:
    node, probe, feeder = rig
    feeder.mode = "good"
    assert probe.wait_for(lambda: len(probe.got(CHUNK)) >= 5, 60.0), node.output
    chunks = probe.got(CHUNK)
    for c in chunks:
        assert c.action_kind == ActionChunk.ACTION_KIND_JOINT_POSITION
        assert list(c.joint_names) == NAMES
        assert c.horizon == 8 and len(c.actions) == 8 * 7 and len(c.gripper) == 8
        assert duration_to_sec(c.step_period) == pytest.approx(1 / 30, abs=1e-6)
        assert c.decoder == "pipelined" and c.checkpoint == "tiny_random"
        assert np.all(np.isfinite(c.actions)) and np.all(np.isfinite(c.gripper))
        assert c.stats.tokens_committed == 64 and c.stats.forward_passes > 0 and c.stats.latency_s > 0
        # stamped with the OBSERVATION's exact time
        assert (c.header.stamp.sec, c.header.stamp.nanosec) in feeder.sent_stamps
    seqs = [c.sequence_id for c in chunks]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert probe.wait_for(lambda: len(probe.got(f"{_NS}/diag")) > 0, 5.0)
    keys = {kv.key for kv in probe.got(f"{_NS}/diag")[-1].status[0].values}
    assert {"latency_s", "tokens_per_second", "forward_passes"} <= keys


def _assert_no_chunks_then_recovers(rig, mode: str) -> None:
    node, probe, feeder = rig
    feeder.mode = "good"
    assert probe.wait_for(lambda: len(probe.got(CHUNK)) > 0, 60.0), node.output
    feeder.mode = mode
    time.sleep(MAX_AGE + 0.5)  # the last good observation goes stale
    probe.clear(CHUNK)
    time.sleep(1.0)
    assert probe.got(CHUNK) == [], f"{mode}: chunks decoded from bad or stale input"
    assert node.alive(), node.output
    # No chunks -> the executor's watchdog holds the arm.
    holding = probe.wait_for(lambda: probe.got(STATUS)[-1].state == ExecutorStatus.STATE_HOLDING, 3.0)
    st = probe.got(STATUS)
    assert holding, [
        (s.state, round(s.chunk_age_s, 2), s.last_sequence_id, s.chunks_received, s.last_event) for s in st[-6:]
    ]
    assert_commands_safe(probe)
    feeder.mode = "good"
    assert probe.wait_for(lambda: len(probe.got(CHUNK)) > 0, 10.0), f"no recovery after {mode}"


@pytest.mark.parametrize("mode", ["bad_encoding", "bad_size", "truncated"])
def test_bad_images_give_no_chunk(rig, mode: str) -> None:
    _assert_no_chunks_then_recovers(rig, mode)


@pytest.mark.parametrize("mode", ["nan_joints", "missing_joints", "out_of_limits"])
def test_bad_joint_states_give_no_chunk(rig, mode: str) -> None:
    _assert_no_chunks_then_recovers(rig, mode)
    if mode == "out_of_limits":  # ignored and reported, by name
        assert "implausible joint state: panda_joint4 = 0.100 rad" in rig[0].output


def test_camera_stops_stale_observation_gives_no_chunk(rig) -> None:
    _assert_no_chunks_then_recovers(rig, "no_camera")


@pytest.mark.parametrize("problem", ["missing", "corrupt"])
def test_bad_checkpoint_exits_nonzero_with_a_clear_message(tmp_path, problem: str) -> None:
    ck = tmp_path / "ck"
    if problem == "corrupt":
        ck.mkdir()
        (ck / "config.json").write_text("{not json")
        (ck / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    node = NodeProcess("policy_node", ["-p", f"checkpoint:={ck}"])
    code = node.wait(60.0)
    out = node.output
    if code is None:
        node.stop()
    assert code == 2, out
    assert ("checkpoint not found" if problem == "missing" else "cannot load checkpoint") in out
    assert "Traceback" not in out
