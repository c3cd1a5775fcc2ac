"""Read a rosbag2 recording (folder or single ``.mcap``/``.db3`` file) without ROS.

Why a wrapper around rosbags' AnyReader: evaluation needs three things it does not give in one
call: a clear error for a path that is not a bag, our custom types when a bag lacks embedded
definitions, and messages of a few topics in log-time order with their receive time in ns.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag2 import ReaderError

from fast_dvla_ros.bag.typestore import typestore


class BagReadError(RuntimeError):
    """The path is missing, is not a rosbag2 recording, or holds undecodable messages."""


@dataclass(frozen=True)
class TopicEntry:
    """One topic of a bag: name, ROS type name (``pkg/msg/Type``) and message count."""

    name: str
    msgtype: str
    count: int


def _reader(path: Path) -> AnyReader:
    path = Path(path)
    if not path.exists():
        raise BagReadError(f"bag not found: {path}")
    if path.is_dir() and not (path / "metadata.yaml").exists():
        # ros2 bag record killed hard leaves a folder with only the .mcap: read that file.
        files = sorted(path.glob("*.mcap")) or sorted(path.glob("*.db3"))
        if len(files) != 1:
            raise BagReadError(f"{path} has no metadata.yaml and not exactly one .mcap/.db3 file")
        path = files[0]
    try:
        return AnyReader([path], default_typestore=typestore())
    except (AnyReaderError, ReaderError) as err:
        raise BagReadError(f"cannot open bag {path}: {err}") from err


def list_topics(path: Path | str) -> list[TopicEntry]:
    """Topics of the bag, sorted by name."""
    reader = _reader(Path(path))
    try:
        with reader:
            return sorted(
                (TopicEntry(name, info.msgtype or "", info.msgcount) for name, info in reader.topics.items()),
                key=lambda t: t.name,
            )
    except (AnyReaderError, ReaderError) as err:
        raise BagReadError(f"cannot read bag {path}: {err}") from err


def read_messages(path: Path | str, topics: Iterable[str]) -> Iterator[tuple[str, int, object]]:
    """Yield ``(topic, log_time_ns, message)`` of the given topics in log-time order.

    Messages are rosbags dataclasses with the same field names as the rclpy classes.
    """
    wanted = set(topics)
    reader = _reader(Path(path))
    try:
        with reader:
            connections = [c for c in reader.connections if c.topic in wanted]
            if not connections:
                return
            for connection, log_time, raw in reader.messages(connections=connections):
                yield connection.topic, log_time, reader.deserialize(raw, connection.msgtype)
    except (AnyReaderError, ReaderError) as err:
        raise BagReadError(f"cannot read bag {path}: {err}") from err
