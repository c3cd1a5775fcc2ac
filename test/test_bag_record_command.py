"""The ``ros2 bag record`` command the launch files build for ``record:=true``."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from fast_dvla_ros.bag.record_command import (
    record_command,
    resolve_topic,
    ros2_bag_record_command,
    timestamped_bag_dir,
)


def test_topic_names_resolve_like_ros() -> None:
    assert resolve_topic("/abs/topic", "robot1") == "/abs/topic"
    assert resolve_topic("fast_dvla/action_chunk", "") == "/fast_dvla/action_chunk"
    assert resolve_topic("fast_dvla/action_chunk", "robot1") == "/robot1/fast_dvla/action_chunk"
    assert resolve_topic("franka/joint_states", "/left/") == "/left/franka/joint_states"
    with pytest.raises(ValueError, match="absolute or namespace-relative"):
        resolve_topic("~/status")
    with pytest.raises(ValueError):
        resolve_topic("  ")


def test_timestamped_folder_is_utc_and_under_root() -> None:
    when = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    assert timestamped_bag_dir("bags", when) == Path("bags/fast_dvla_20260304_050607")
    assert timestamped_bag_dir("~/runs").parent == Path("~/runs").expanduser()


def test_command_is_mcap_with_resolved_unique_topics() -> None:
    cmd = ros2_bag_record_command(
        "bags/x", ["fast_dvla/action_chunk", "/diagnostics", "chunk_executor/status", "fast_dvla/action_chunk"], "ns"
    )
    assert cmd == [
        "ros2", "bag", "record", "-s", "mcap", "-o", "bags/x",
        "/ns/fast_dvla/action_chunk", "/diagnostics", "/ns/chunk_executor/status",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="no topics"):
        ros2_bag_record_command("bags/x", [])


def test_without_rosbag2_the_package_recorder_runs_under_this_interpreter() -> None:
    topics = ["fast_dvla/action_chunk", "/diagnostics", "fast_dvla/action_chunk"]
    cmd = record_command("bags/x", topics, "ns", ros2_bag=False)
    assert cmd == [
        sys.executable, "-m", "fast_dvla_ros.bag.recorder", "--out", "bags/x",
        "--topics", "/ns/fast_dvla/action_chunk", "/diagnostics",
    ]  # fmt: skip
    assert record_command("bags/x", topics, "ns", ros2_bag=True) == ros2_bag_record_command("bags/x", topics, "ns")
    # and that command line is the recorder's own CLI (an unknown option would exit 2 before recording)
    from fast_dvla_ros.bag.recorder import _parser

    args = _parser().parse_args(cmd[3:])
    assert args.out == Path("bags/x") and args.topics == ["/ns/fast_dvla/action_chunk", "/diagnostics"]
