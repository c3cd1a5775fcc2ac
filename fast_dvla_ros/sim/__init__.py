"""PyBullet conveyor-picking simulator and its scripted expert (no ROS imports here)."""
