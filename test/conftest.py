"""Test-session setup shared by every test.

Each pytest run gets its own ROS_DOMAIN_ID and localhost-only discovery, so
parallel CI runs, developer runs and any robot on the lab network never see each
other's topics. Child processes started by tests inherit this environment.
"""

from __future__ import annotations

import os
import random

import pytest


def _isolate_ros_graph() -> None:
    # Domain IDs 0-101 are safe on Linux with the default port mapping; 0 is the
    # default everyone uses, so pick from 1..101, seeded by pid and time.
    rng = random.Random(os.getpid() ^ int.from_bytes(os.urandom(4), "little"))
    os.environ["ROS_DOMAIN_ID"] = str(rng.randint(1, 101))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # Jazzy and newer
    os.environ.pop("ROS_LOCALHOST_ONLY", None)  # deprecated in Jazzy; the range above replaces it
    os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")


_isolate_ros_graph()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long-running test, excluded from the default run")
    config.addinivalue_line("markers", "ros: needs rclpy and the generated messages")
    config.addinivalue_line("markers", "launch_stack: needs the ROS 2 launch stack (../shared/ros2-cli), colcon")


@pytest.fixture(scope="session")
def colcon_install(tmp_path_factory: pytest.TempPathFactory):
    """install/fast_dvla_ros of one colcon build of this checkout per session (ros_peers/launch_stack.py)."""
    from ros_peers.launch_stack import build_install_space

    return build_install_space(tmp_path_factory.mktemp("colcon_ws"))


@pytest.fixture(scope="session")
def launch_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment of a user who sourced the install space (for subprocesses; os.environ is left alone,
    so later tests keep running the source tree). Skips, saying why, without the launch stack, before
    building anything."""
    from ros_peers.launch_stack import install_env, launch_stack_missing

    reason = launch_stack_missing()
    if reason:
        pytest.skip(reason)
    return install_env(request.getfixturevalue("colcon_install"))
