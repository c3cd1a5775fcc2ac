"""Conversions between ROS messages and the numpy types of the pure logic (no node state here)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from sensor_msgs.msg import CompressedImage, Image
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from fast_dvla_ros.execution.observation_guard import ObservationError, decode_raw_image

try:  # cv_bridge is optional: it is not on PyPI, so the numpy path is the one tested here
    from cv_bridge import CvBridge  # type: ignore[import-not-found]

    _BRIDGE: CvBridge | None = CvBridge()
except ImportError:
    _BRIDGE = None


def time_to_sec(t: Time) -> float:
    return float(t.sec) + 1e-9 * float(t.nanosec)


def sec_to_time(seconds: float) -> Time:
    ns = round(seconds * 1e9)
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def duration_to_sec(d: Duration) -> float:
    return float(d.sec) + 1e-9 * float(d.nanosec)


def sec_to_duration(seconds: float) -> Duration:
    ns = round(seconds * 1e9)
    return Duration(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def image_to_rgb(msg: Image) -> np.ndarray:
    """sensor_msgs/Image -> RGB uint8 [H, W, 3]; ObservationError when the message is inconsistent."""
    if msg.is_bigendian and msg.encoding not in ("rgb8", "bgr8", "mono8", "rgba8", "bgra8"):
        raise ObservationError("big-endian multi-byte images are not supported")
    if _BRIDGE is not None and msg.encoding in ("rgb8", "bgr8", "mono8"):
        # Validate sizes ourselves first: cv_bridge reshapes truncated buffers with an exception text only.
        decode_raw_image(msg.encoding, msg.height, msg.width, msg.step, msg.data)
        return np.ascontiguousarray(_BRIDGE.imgmsg_to_cv2(msg, desired_encoding="rgb8"))
    return decode_raw_image(msg.encoding, msg.height, msg.width, msg.step, msg.data)


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg/png) -> RGB uint8 [H, W, 3]."""
    import cv2

    buf = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if buf.size == 0:
        raise ObservationError("empty compressed image")
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ObservationError(f"cannot decode compressed image (format {msg.format!r})")
    return np.ascontiguousarray(bgr[..., ::-1])


def rgb_to_image(rgb: np.ndarray, stamp: Time, frame_id: str = "camera") -> Image:
    img = np.ascontiguousarray(rgb, dtype=np.uint8)
    msg = Image()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(img.shape[0]), int(img.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = int(img.shape[1] * 3)
    msg.data = img.tobytes()
    return msg


def trajectory_msg(
    joint_names: Sequence[str], times_from_start: np.ndarray, positions: np.ndarray, velocities: np.ndarray
) -> JointTrajectory:
    """JointTrajectory with header.stamp 0 ("start now" for a JTC) and points relative to now."""
    msg = JointTrajectory()
    msg.joint_names = list(joint_names)
    for t, q, v in zip(times_from_start, positions, velocities, strict=True):
        p = JointTrajectoryPoint()
        p.positions = [float(x) for x in q]
        p.velocities = [float(x) for x in v]
        p.time_from_start = sec_to_duration(float(t))
        msg.points.append(p)
    return msg
