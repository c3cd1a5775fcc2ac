"""Parameter descriptors with ranges, shared by the nodes (so `ros2 param describe` explains every one)."""

from __future__ import annotations

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor


def describe(text: str, lo: float | None = None, hi: float | None = None, integer: bool = False) -> ParameterDescriptor:
    """A descriptor with ``text`` and, when both bounds are given, a range that rclpy enforces on set."""
    d = ParameterDescriptor(description=text)
    if lo is not None and hi is not None:
        if integer:
            d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
        else:
            d.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
    return d
