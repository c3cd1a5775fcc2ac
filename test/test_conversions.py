"""Message <-> numpy conversions: stamps, raw and compressed images, trajectories."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")

import cv2
from sensor_msgs.msg import CompressedImage

from fast_dvla_ros.execution import ObservationError
from fast_dvla_ros.nodes.conversions import (
    compressed_to_rgb,
    duration_to_sec,
    image_to_rgb,
    rgb_to_image,
    sec_to_duration,
    sec_to_time,
    time_to_sec,
    trajectory_msg,
)


def test_time_round_trip_keeps_nanoseconds() -> None:
    t = sec_to_time(1_700_000_000.123456789)
    assert t.sec == 1_700_000_000 and abs(t.nanosec - 123456789) < 300  # float64 resolution at 1.7e9 s
    assert time_to_sec(t) == pytest.approx(1_700_000_000.123456789, abs=1e-6)
    assert duration_to_sec(sec_to_duration(1 / 30)) == pytest.approx(1 / 30, abs=1e-9)


def test_raw_image_round_trip_and_bgr() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    msg = rgb_to_image(rgb, sec_to_time(5.0))
    assert msg.encoding == "rgb8" and msg.step == 27
    assert np.array_equal(image_to_rgb(msg), rgb)
    msg.encoding = "bgr8"
    assert np.array_equal(image_to_rgb(msg), rgb[..., ::-1])
    msg.data = bytes(msg.data)[:-1]
    with pytest.raises(ObservationError, match="truncated"):
        image_to_rgb(msg)


@pytest.mark.parametrize("fmt", [".png", ".jpg"])
def test_compressed_image(fmt: str) -> None:
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0] = 200  # red
    ok, buf = cv2.imencode(fmt, rgb[..., ::-1])
    assert ok
    out = compressed_to_rgb(CompressedImage(format=fmt[1:], data=buf.tobytes()))
    assert out.shape == (16, 16, 3) and abs(int(out[..., 0].mean()) - 200) < 5 and out[..., 2].mean() < 5
    with pytest.raises(ObservationError):
        compressed_to_rgb(CompressedImage(format="jpeg", data=b"not an image"))
    with pytest.raises(ObservationError):
        compressed_to_rgb(CompressedImage(format="jpeg", data=b""))


def test_trajectory_msg_has_zero_stamp_positions_and_velocities() -> None:
    q = np.arange(14, dtype=float).reshape(2, 7)
    msg = trajectory_msg([f"j{i}" for i in range(7)], np.array([0.1, 0.2]), q, np.zeros((2, 7)))
    assert msg.header.stamp.sec == 0 and msg.header.stamp.nanosec == 0
    assert [duration_to_sec(p.time_from_start) for p in msg.points] == pytest.approx([0.1, 0.2])
    assert list(msg.points[1].positions) == q[1].tolist() and len(msg.points[0].velocities) == 7
