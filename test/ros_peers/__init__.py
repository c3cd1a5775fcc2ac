"""Small standalone ROS 2 programs that tests start as separate processes, and the helpers that start
and probe them (``testing.py``)."""
