"""Parameter descriptors with ranges, shared by the nodes (so `ros2 param describe` explains every one).

The parameters themselves are tables (fast_dvla_ros/graph/parameters.py); ``declare_all`` declares one.

Every parameter the nodes read only in their constructor is declared ``read_only``: rclpy then refuses
``ros2 param set`` with "Trying to set a read-only parameter: <name>" instead of answering "Set parameter
successful" and reporting a value the running node never uses (``decoder bogus`` would be accepted while
the node went on with the pipelined decoder). Changing one means restarting the node (or the launch).
"""

from __future__ import annotations

from collections.abc import Iterable

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

from fast_dvla_ros.graph.parameters import NodeParameter

STARTUP_ONLY = " (read at start-up: read-only while the node runs)"


def describe(
    text: str,
    lo: float | None = None,
    hi: float | None = None,
    integer: bool = False,
    *,
    read_only: bool = True,
) -> ParameterDescriptor:
    """A descriptor with ``text`` and, when both bounds are given, a range that rclpy enforces on set.

    ``read_only`` (the default: every parameter of these nodes is read once, at start-up) makes rclpy
    refuse changes after declaration; a parameter the node applies at run time passes False.
    """
    d = ParameterDescriptor(description=text + (STARTUP_ONLY if read_only else ""), read_only=read_only)
    if lo is not None and hi is not None:
        if integer:
            d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
        else:
            d.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
    return d


def declare_all(node: Node, table: Iterable[NodeParameter]) -> None:
    """Declare every parameter of ``table`` on ``node`` with its default, description and range."""
    for p in table:
        lo, hi = p.range or (None, None)
        node.declare_parameter(p.name, p.ros_default, describe(p.description, lo, hi, p.integer, read_only=p.read_only))
