"""Rosbag2 (MCAP) recording and reading for fast_dvla_ros.

Only :mod:`fast_dvla_ros.bag.recorder` imports rclpy; the type store and the reader work
without ROS so that ``fast-dvla-eval`` runs on any machine that has the bag file.
"""
