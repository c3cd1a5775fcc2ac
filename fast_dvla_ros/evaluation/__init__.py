"""``fast-dvla-eval``: timing, safety and outcome report of a recorded run, from its bag alone.

No ROS import anywhere in here: a bag copied off the robot is evaluated on any laptop.
"""
