"""Small standalone ROS 2 programs that tests start as separate processes."""
