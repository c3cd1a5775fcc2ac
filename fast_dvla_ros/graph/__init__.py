"""The ROS graph as data: each node's parameters and the topics between the nodes (no rclpy, no torch).

* ``parameters.py``: one table per node (name, default, description, range, read-only); the nodes
  declare from it (nodes/parameters.py ``declare_all``), docs/LAUNCH.md's parameter tables are printed
  from it, and the tests check the parameter files against it.
* ``topics.py``: every topic of the robot and the simulator graph (default names, message type, QoS
  profile, which node publishes and subscribes); the launch files take their topic argument defaults
  from it, the demo its remaps, docs/LAUNCH.md its topics table.
* ``markdown.py``: those docs sections, ``python -m fast_dvla_ros.graph --markdown`` (``--write`` updates
  docs/LAUNCH.md between its markers).
"""
