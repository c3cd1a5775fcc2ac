"""Which QoS the recorder subscribes a topic with (imports rclpy; used by the recorder only).

Why it matters: a RELIABLE subscription never matches a BEST_EFFORT publisher (camera drivers,
franka_robot_state_broadcaster), so it would record nothing; a VOLATILE subscription misses a
TRANSIENT_LOCAL message published before it started (the policy's instruction). Rules, in order:
an explicit choice; otherwise adapt to the QoS the topic's publishers offer (what ``ros2 bag
record`` does); otherwise a default by type and name.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

SENSOR_TYPES = frozenset(
    {
        "sensor_msgs/msg/Image",
        "sensor_msgs/msg/CompressedImage",
        "sensor_msgs/msg/PointCloud2",
        "sensor_msgs/msg/CameraInfo",
    }
)
# Generous queue: a recorder must not drop bursts while the writer flushes a chunk to disk.
RECORD_DEPTH = 100


class QosChoice(str, Enum):
    """How to subscribe one topic."""

    AUTO = "auto"
    RELIABLE = "reliable"
    BEST_EFFORT = "best_effort"
    TRANSIENT_LOCAL = "transient_local"


def profile_for(choice: QosChoice) -> QoSProfile:
    """The rclpy profile for an explicit choice."""
    if choice is QosChoice.BEST_EFFORT:
        return QoSProfile(
            depth=RECORD_DEPTH, reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE
        )
    if choice is QosChoice.TRANSIENT_LOCAL:
        return QoSProfile(
            depth=RECORD_DEPTH, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
    return QoSProfile(depth=RECORD_DEPTH, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)


def default_choice(topic: str, msgtype: str) -> QosChoice:
    """Default when no publisher is visible: sensor streams best effort, the instruction latched."""
    if msgtype in SENSOR_TYPES:
        return QosChoice.BEST_EFFORT
    if msgtype == "std_msgs/msg/String" and "instruction" in topic:
        return QosChoice.TRANSIENT_LOCAL
    return QosChoice.RELIABLE


def adapt_to_publishers(offered: Sequence[QoSProfile]) -> QosChoice | None:
    """The most demanding choice every publisher in ``offered`` can still serve (None: no publisher).

    Best effort if any publisher is best effort (else that one is never matched); transient
    local only if every publisher keeps history (a transient-local subscription ignores volatile
    publishers).
    """
    if not offered:
        return None
    if any(p.reliability == ReliabilityPolicy.BEST_EFFORT for p in offered):
        return QosChoice.BEST_EFFORT
    if all(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in offered):
        return QosChoice.TRANSIENT_LOCAL
    return QosChoice.RELIABLE


def choose(topic: str, msgtype: str, requested: QosChoice, offered: Sequence[QoSProfile]) -> QosChoice:
    """Apply the rules of the module docstring."""
    if requested is not QosChoice.AUTO:
        return requested
    return adapt_to_publishers(offered) or default_choice(topic, msgtype)


def to_bag_qos(profile: QoSProfile) -> Qos:
    """The profile as rosbags metadata, so ``ros2 bag play`` offers the same QoS on replay."""
    zero = QosTime(0, 0)
    return Qos(
        QosHistory.KEEP_LAST if profile.history != HistoryPolicy.KEEP_ALL else QosHistory.KEEP_ALL,
        int(profile.depth),
        QosReliability.BEST_EFFORT if profile.reliability == ReliabilityPolicy.BEST_EFFORT else QosReliability.RELIABLE,
        QosDurability.TRANSIENT_LOCAL
        if profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
        else QosDurability.VOLATILE,
        zero,
        zero,
        QosLiveliness.AUTOMATIC,
        zero,
        False,
    )
