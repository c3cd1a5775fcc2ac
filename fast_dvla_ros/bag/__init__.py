"""Rosbag2 (MCAP) recording and reading for fast_dvla_ros.

Only :mod:`~fast_dvla_ros.bag.recorder` and its :mod:`~fast_dvla_ros.bag.topic_qos` import rclpy;
the type store, the reader and the ros2 bag command builder work without ROS, so that
``fast-dvla-eval`` runs on any machine that has the bag file.
"""
