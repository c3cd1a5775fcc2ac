"""launch_pytest: sim_conveyor.launch.py, as colcon installs it, brings up a working loop and shuts down cleanly.

Runs against a colcon install space of this checkout (one build per session, conftest.py
``colcon_install``) with the ROS 2 launch stack that ``make test`` installs from ../shared/ros2-cli;
without that stack the module skips and says how to get it. By hand, as docs/LAUNCH.md shows:

    ../shared/ros2-cli/install.sh .venv && make colcon && source build/colcon_ws/install/setup.bash
    .venv/bin/python -m pytest test/test_launch_sim.py -v

What it checks, from a subscriber in the test process over real DDS:
  * ActionChunks flow from the policy, with consecutive sequence ids mostly intact;
  * the executor ticks at its configured rate: ExecutorStatus, published once per tick (median period
    within 15 %; no statistics on single periods: the machine may be loaded). Its JointTrajectory
    commands come at least as often: one per tick plus one per accepted chunk (``command_on_chunk``),
    so their rate is not the tick rate;
  * on shutdown (SIGINT from launch) every process exits with code 0 within 2 s and prints no Python
    traceback (launch escalates to SIGTERM after 5 s).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import numpy as np
import pytest
import yaml

from ros_peers.launch_stack import launch_stack_missing

_missing = launch_stack_missing()
if _missing:
    pytest.skip(_missing, allow_module_level=True)

import launch_pytest  # noqa: E402
import rclpy  # noqa: E402
from ament_index_python.packages import get_package_share_directory  # noqa: E402
from launch.actions import IncludeLaunchDescription, RegisterEventHandler  # noqa: E402
from launch.event_handlers import OnProcessExit, OnProcessIO, OnShutdown  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

import launch  # noqa: E402
from fast_dvla_ros.msg import ActionChunk, ExecutorStatus  # noqa: E402
from fast_dvla_ros.nodes.qos import CHUNK_QOS, COMMAND_QOS, STATUS_QOS  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.launch_stack]

CHUNK_TOPIC = "/fast_dvla/action_chunk"
COMMAND_TOPIC = "/conveyor_sim/joint_trajectory"
STATUS_TOPIC = "/chunk_executor/status"
OBSERVE_S = 15.0
STARTUP_TIMEOUT_S = 120.0  # model load + warm-up + PyBullet start on a loaded 2-core CI machine
EXIT_WITHIN_S = 2.0

exits: dict[str, tuple[int, float]] = {}  # process name -> (exit code, monotonic time)
output: dict[str, str] = {}
shutdown_at: list[float] = []


def configured_rate_hz(params_file: str) -> float:
    """The executor's control rate in the parameter file the launch file loads."""
    params = yaml.safe_load(open(params_file).read())  # noqa: SIM115 - read once
    executor = next(v["ros__parameters"] for k, v in params.items() if k.endswith("chunk_executor"))
    return float(executor["control_rate_hz"])


def _params_file() -> str:
    return os.path.join(get_package_share_directory("fast_dvla_ros"), "config", "sim_conveyor.yaml")


@pytest.fixture(scope="module", autouse=True)
def sourced(launch_env: dict[str, str]) -> Iterator[None]:
    """launch_pytest runs the launch in this process: put the install space on its paths for this module."""
    saved = dict(os.environ)
    os.environ.update(launch_env)
    yield
    os.environ.clear()
    os.environ.update(saved)


@launch_pytest.fixture
def launch_description(launch_env: dict[str, str]) -> launch.LaunchDescription:
    def remember_exit(event: object, _context: object) -> None:
        exits[event.action.name] = (event.returncode, time.monotonic())

    def remember_output(event: object) -> None:  # OnProcessIO handlers take the event only
        output[event.action.name] = output.get(event.action.name, "") + event.text.decode(errors="replace")

    def remember_shutdown(_event: object, _context: object) -> None:
        shutdown_at.append(time.monotonic())

    share = get_package_share_directory("fast_dvla_ros")  # the install space: launch_env put it first
    assert share.startswith(str(launch_env["AMENT_PREFIX_PATH"].split(os.pathsep)[0])), share
    return launch.LaunchDescription(
        [
            RegisterEventHandler(OnProcessExit(on_exit=remember_exit)),
            RegisterEventHandler(OnProcessIO(on_stdout=remember_output, on_stderr=remember_output)),
            RegisterEventHandler(OnShutdown(on_shutdown=remember_shutdown)),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(os.path.join(share, "launch", "sim_conveyor.launch.py")),
                launch_arguments={"record": "false"}.items(),
            ),
            launch_pytest.actions.ReadyToTest(),
        ]
    )


@pytest.mark.launch(fixture=launch_description)
def test_chunks_and_commands_flow_at_the_configured_rate() -> Iterator[None]:
    context = Context()
    rclpy.init(context=context)
    node = Node("launch_test_listener", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    chunks: list[int] = []
    status_times: list[float] = []
    command_times: list[float] = []
    node.create_subscription(ActionChunk, CHUNK_TOPIC, lambda m: chunks.append(m.sequence_id), CHUNK_QOS)
    node.create_subscription(JointTrajectory, COMMAND_TOPIC, lambda _m: command_times.append(time.monotonic()),
                             COMMAND_QOS)  # fmt: skip
    node.create_subscription(ExecutorStatus, STATUS_TOPIC, lambda _m: status_times.append(time.monotonic()),
                             STATUS_QOS)  # fmt: skip
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not (chunks and command_times) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        assert chunks, f"no ActionChunk on {CHUNK_TOPIC} within {STARTUP_TIMEOUT_S} s; output: {_tails()}"
        assert command_times, f"no JointTrajectory on {COMMAND_TOPIC}; output: {_tails()}"
        chunks.clear()
        status_times.clear()
        command_times.clear()
        end = time.monotonic() + OBSERVE_S
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown(context=context)

    rate = configured_rate_hz(_params_file())
    assert len(status_times) >= 0.8 * rate * OBSERVE_S, f"{len(status_times)} statuses in {OBSERVE_S} s"
    assert np.median(np.diff(status_times)) == pytest.approx(1.0 / rate, rel=0.15)
    assert len(command_times) >= 0.8 * rate * OBSERVE_S, f"{len(command_times)} commands in {OBSERVE_S} s"
    assert len(chunks) >= OBSERVE_S  # at least one chunk per second (CPU decoding on a loaded machine)
    ids = np.array(chunks)
    assert np.all(np.diff(ids) > 0), "sequence ids must increase"
    assert np.mean(np.diff(ids) == 1) > 0.9, "more than 10 % of chunks lost between policy and test"
    yield
    # after the launch service shut everything down (SIGINT to every process)
    assert shutdown_at, "no shutdown observed"
    names = sorted(exits)
    assert {n.rsplit("-", 1)[0] for n in names} >= {"sim_node", "policy_node", "executor_node"}, names
    bad = {name: code for name, (code, _) in exits.items() if code != 0}
    assert not bad, f"processes did not exit cleanly: {bad}; output: {_tails()}"
    after = {name: round(at - shutdown_at[0], 2) for name, (_, at) in exits.items()}
    slow = {name: s for name, s in after.items() if s > EXIT_WITHIN_S}
    assert not slow, f"processes took longer than {EXIT_WITHIN_S} s after SIGINT to exit: {slow}"
    tracebacks = [name for name, text in output.items() if "Traceback" in text]
    assert not tracebacks, f"tracebacks from {tracebacks}: {[output[n][-2000:] for n in tracebacks]}"


def _tails() -> dict[str, str]:
    return {name: text[-1500:] for name, text in output.items()}
