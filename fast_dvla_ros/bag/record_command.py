"""The recorder command line the launch files run for ``record:=true`` (no ROS import).

Which recorder: ``ros2 bag record -s mcap`` where rosbag2's CLI is installed (a ROS 2 install from
apt: the standard tool, C++, fastest), else the package's own ``fast_dvla_ros.bag.recorder`` (the
``fast-dvla-record`` CLI; rclpy + rosbags, also MCAP), which is what the venv of this repository
has: rosbag2 is C++ and on no Python registry. Both write a rosbag2 MCAP folder that
``fast-dvla-eval`` reads. The package's recorder runs under the launching interpreter
(``sys.executable -m``): a colcon install space has no console-script wrappers.

Why here and not inside the launch files: the folder naming, topic resolution, the choice of
recorder and image opt-in are logic worth testing, and ``launch`` is not installable everywhere;
the launch files only call :func:`record_command` with their resolved arguments.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

BAG_PREFIX = "fast_dvla"


def resolve_topic(name: str, namespace: str = "") -> str:
    """Absolute topic name as ROS resolves a relative ``name`` for a node in ``namespace``.

    ``ros2 bag record`` runs outside the nodes' namespace, so it must be given absolute names.
    Private (``~``) names cannot be resolved without a node name and are rejected.
    """
    name = name.strip()
    if not name or name.startswith("~"):
        raise ValueError(f"cannot record {name!r}: give an absolute or namespace-relative topic name")
    if name.startswith("/"):
        return name
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    return f"{ns}/{name}"


def timestamped_bag_dir(root: str | Path, now: datetime | None = None) -> Path:
    """``<root>/fast_dvla_YYYYmmdd_HHMMSS`` (UTC): one new folder per launch, never overwritten."""
    now = now or datetime.now(timezone.utc)
    return Path(root).expanduser() / now.strftime(f"{BAG_PREFIX}_%Y%m%d_%H%M%S")


def _resolved(topics: Iterable[str], namespace: str) -> list[str]:
    resolved: list[str] = []
    for topic in topics:
        absolute = resolve_topic(topic, namespace)
        if absolute not in resolved:
            resolved.append(absolute)
    if not resolved:
        raise ValueError("no topics to record")
    return resolved


def ros2_bag_available() -> bool:
    """True when ``ros2 bag`` works here: the ros2 CLI on PATH and rosbag2's ``ros2bag`` verb importable."""
    return shutil.which("ros2") is not None and importlib.util.find_spec("ros2bag") is not None


def record_command(out_dir: str | Path, topics: Iterable[str], namespace: str = "", *, ros2_bag: bool | None = None
                   ) -> list[str]:  # fmt: skip
    """``ros2 bag record`` where available (``ros2_bag`` None: detect), else the package's recorder."""
    use_ros2_bag = ros2_bag_available() if ros2_bag is None else ros2_bag
    if use_ros2_bag:
        return ros2_bag_record_command(out_dir, topics, namespace)
    return fast_dvla_record_command(out_dir, topics, namespace)


def fast_dvla_record_command(
    out_dir: str | Path, topics: Iterable[str], namespace: str = "", *, python: str = sys.executable
) -> list[str]:
    """``python -m fast_dvla_ros.bag.recorder --out DIR --topics /a /b ...`` (fast-dvla-record)."""
    recorder = [python, "-m", "fast_dvla_ros.bag.recorder"]
    return [*recorder, "--out", str(out_dir), "--topics", *_resolved(topics, namespace)]


def ros2_bag_record_command(
    out_dir: str | Path,
    topics: Iterable[str],
    namespace: str = "",
    *,
    storage: str = "mcap",
) -> list[str]:
    """``ros2 bag record -s mcap -o DIR /a /b ...`` with duplicates removed and names resolved."""
    return ["ros2", "bag", "record", "-s", storage, "-o", str(out_dir), *_resolved(topics, namespace)]
