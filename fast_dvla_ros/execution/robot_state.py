"""When the robot's own state says streaming must stop (franka_msgs/FrankaRobotState, no ROS imports).

A Franka stops on a reflex (a velocity or acceleration discontinuity, a collision, a limit) and then
ignores commands until libfranka's error recovery. The executor would otherwise stream into a
controller that no longer moves, and on recovery the arm would jump to wherever the stale plan had
got to. The node passes the message's ``robot_mode`` and ``current_errors`` flags here.
"""

from __future__ import annotations

from collections.abc import Mapping

# franka_msgs/FrankaRobotState ROBOT_MODE_* constants
ROBOT_MODE_NAMES = {
    0: "other",
    1: "idle",
    2: "move",
    3: "guiding",
    4: "reflex",
    5: "user stopped",
    6: "automatic error recovery",
}
# Modes in which the robot does not execute the controller's commands. "other" (0) is what the hardware
# interface reports before it has read a state, so it does not count as an error.
STOPPED_MODES = frozenset({3, 4, 5, 6})


def robot_error_reason(robot_mode: int, current_errors: Mapping[str, bool]) -> str | None:
    """A one-line reason when the robot stopped or reports errors, else None."""
    active = sorted(name for name, on in current_errors.items() if on)
    if robot_mode not in STOPPED_MODES and not active:
        return None
    mode = ROBOT_MODE_NAMES.get(int(robot_mode), f"mode {robot_mode}")
    return f"robot mode '{mode}'" + (f", errors: {', '.join(active)}" if active else "")
