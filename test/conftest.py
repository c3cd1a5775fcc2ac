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
