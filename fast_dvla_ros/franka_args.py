"""What conveyor_picking.launch.py hands franka_bringup's ``franka.launch.py``, for the release installed.

franka_ros2 releases differ in the arguments franka.launch.py declares: the arm type is ``robot_type``
from v2.2.0 on (``arm_id`` before), and later releases add arguments (3.4.0: load_franka_robot_state_broadcaster).
Passing an argument a release does not declare is silently accepted by ``launch`` but does nothing, so a
typo or a renamed argument would go unnoticed on the robot. The launch file therefore reads the arguments
the installed franka.launch.py declares and passes only those, under the spelling that release uses; the
contract test (test/test_launch_static.py) checks this against the real files of Jazzy 3.4.0 and Humble
2.5.0. No ROS imports: the rules are tested without launch or franka_ros2.
"""

from __future__ import annotations

from collections.abc import Collection

# The arm type's name in franka.launch.py: v2.2.0 and newer, then older releases.
ROBOT_TYPE_SPELLINGS = ("robot_type", "arm_id")
# Without these the robot would run franka_bringup's own controllers, not our trajectory controller.
REQUIRED = ("robot_ip", "controllers_yaml")
# Passed when the release declares them (all of franka_ros2 >= 2.x does).
OPTIONAL = ("namespace", "use_fake_hardware", "fake_sensor_commands", "load_gripper")


class FrankaArgumentError(ValueError):
    """The installed franka.launch.py cannot run this package's robot graph (the message says why)."""


def franka_launch_arguments(declared: Collection[str], robot_type: str, values: dict[str, str]) -> dict[str, str]:
    """The arguments for franka.launch.py: the robot type under the spelling ``declared`` uses, plus every
    value of ``values`` whose name the release declares.

    ``values`` holds REQUIRED and OPTIONAL names. A required one the release does not declare raises
    FrankaArgumentError; an optional one is dropped only if it would change nothing (empty or 'false'),
    else FrankaArgumentError too (a user asking for a namespace must not silently get none).
    """
    names = set(declared)
    spelling = next((s for s in ROBOT_TYPE_SPELLINGS if s in names), None)
    if spelling is None:
        raise FrankaArgumentError(
            f"franka.launch.py declares neither of {list(ROBOT_TYPE_SPELLINGS)} (it declares {sorted(names)}): "
            "unsupported franka_ros2 release"
        )
    # franka_ros2 >= 2.2 calls the Panda "fer"; "panda" is this package's alias for it.
    out = {spelling: "fer" if spelling == "robot_type" and robot_type == "panda" else robot_type}
    for name in REQUIRED:
        if name not in names:
            raise FrankaArgumentError(
                f"franka.launch.py does not declare {name!r}: fast_dvla_ros needs a franka_ros2 release whose "
                f"bringup takes {', '.join(REQUIRED)} (2.x and newer)"
            )
        out[name] = values[name]
    for name in OPTIONAL:
        value = values.get(name, "")
        if name in names:
            out[name] = value
        elif value.strip().lower() not in ("", "false"):
            raise FrankaArgumentError(f"{name}:={value} is not supported by the installed franka.launch.py")
    return out
