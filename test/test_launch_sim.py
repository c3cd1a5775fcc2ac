"""launch_pytest: sim_conveyor.launch.py brings up a working loop and shuts down cleanly.

Needs a ROS 2 install with ``launch``, ``launch_ros`` and ``launch_pytest`` (not installable in
the venv, so the module skips here) and the package built and sourced; see docs/LAUNCH.md:

    colcon build --packages-select fast_dvla_ros && source install/setup.bash
    python3 -m pytest src/fast_dvla_ros/test/test_launch_sim.py -v

What it checks, from a subscriber in the test process over real DDS:
  * ActionChunks flow from the policy, with consecutive sequence ids mostly intact;
  * JointTrajectory commands reach the simulator's topic at the executor's configured rate
    (median period within 15 %, no statistics on single periods: the machine may be loaded);
  * on shutdown every process exits with code 0 and prints no Python traceback.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

launch_pytest = pytest.importorskip("launch_pytest", reason="launch_pytest is not installed (needs a ROS 2 install)")
launch = pytest.importorskip("launch", reason="ROS 2 'launch' is not installed")
pytest.importorskip("launch_ros", reason="ROS 2 'launch_ros' is not installed")

import rclpy  # noqa: E402
from launch.actions import IncludeLaunchDescription, RegisterEventHandler  # noqa: E402
from launch.event_handlers import OnProcessExit, OnProcessIO  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from fast_dvla_ros.msg import ActionChunk  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILE = ROOT / "launch" / "sim_conveyor.launch.py"
PARAMS = ROOT / "config" / "sim_conveyor.yaml"
CHUNK_TOPIC = "/fast_dvla/action_chunk"
COMMAND_TOPIC = "/conveyor_sim/joint_trajectory"
OBSERVE_S = 20.0
STARTUP_TIMEOUT_S = 90.0  # model load + PyBullet start on a slow CI machine

exit_codes: dict[str, int] = {}
stderr_text: dict[str, str] = {}


def configured_rate_hz() -> float:
    """The executor's control rate from the parameter file the launch file loads (default 30 Hz)."""
    params = yaml.safe_load(PARAMS.read_text())
    executor = next((v["ros__parameters"] for k, v in params.items() if k.endswith("chunk_executor")), {})
    for key in ("control_rate_hz", "rate_hz", "control_rate"):
        if key in executor:
            return float(executor[key])
    return 30.0


@launch_pytest.fixture
def launch_description() -> launch.LaunchDescription:
    def remember_exit(event: object, _context: object) -> None:
        exit_codes[event.action.name] = event.returncode

    def remember_stderr(event: object, _context: object) -> None:
        stderr_text[event.action.name] = stderr_text.get(event.action.name, "") + event.text.decode(errors="replace")

    return launch.LaunchDescription(
        [
            RegisterEventHandler(OnProcessExit(on_exit=remember_exit)),
            RegisterEventHandler(OnProcessIO(on_stderr=remember_stderr)),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(str(LAUNCH_FILE)),
                launch_arguments={"params_file": str(PARAMS), "record": "false"}.items(),
            ),
            launch_pytest.actions.ReadyToTest(),
        ]
    )


@pytest.mark.launch(fixture=launch_description)
def test_chunks_and_commands_flow_at_the_configured_rate() -> Iterator[None]:
    rclpy.init()
    node = Node("launch_test_listener")
    chunks: list[int] = []
    command_times: list[float] = []
    reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(ActionChunk, CHUNK_TOPIC, lambda m: chunks.append(m.sequence_id), reliable)
    node.create_subscription(
        JointTrajectory, COMMAND_TOPIC, lambda _m: command_times.append(time.monotonic()), reliable
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not (chunks and command_times) and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        assert chunks, f"no ActionChunk on {CHUNK_TOPIC} within {STARTUP_TIMEOUT_S} s; stderr: {stderr_text}"
        assert command_times, f"no JointTrajectory on {COMMAND_TOPIC}; stderr: {stderr_text}"
        chunks.clear()
        command_times.clear()
        end = time.monotonic() + OBSERVE_S
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()

    rate = configured_rate_hz()
    periods = np.diff(command_times)
    assert len(command_times) >= 0.5 * rate * OBSERVE_S
    assert np.median(periods) == pytest.approx(1.0 / rate, rel=0.15)
    assert len(chunks) >= OBSERVE_S  # at least one chunk per second (CPU decoding on a loaded machine)
    ids = np.array(chunks)
    assert np.all(np.diff(ids) > 0), "sequence ids must increase"
    assert np.mean(np.diff(ids) == 1) > 0.9, "more than 10 % of chunks lost between policy and test"
    yield
    # after the launch service shut everything down (SIGINT)
    assert exit_codes, "no process exit was observed"
    bad = {name: code for name, code in exit_codes.items() if code != 0}
    assert not bad, f"processes did not exit cleanly: {bad}"
    tracebacks = [name for name, text in stderr_text.items() if "Traceback" in text]
    assert not tracebacks, f"tracebacks from {tracebacks}: {[stderr_text[n][-2000:] for n in tracebacks]}"
