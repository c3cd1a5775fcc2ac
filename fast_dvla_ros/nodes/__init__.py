"""Thin rclpy shells around the pure logic: ``policy_node``, ``executor_node``, ``sim_node``.

Each module has ``main(argv: list[str] | None = None) -> int`` and runs as
``python -m fast_dvla_ros.nodes.<module> --ros-args ...``.
"""
