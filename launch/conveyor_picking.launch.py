"""Fast-dVLA conveyor picking on a real Franka arm (FR3 or FER/Panda) with franka_ros2.

Starts (each part switchable): franka_ros2's bringup with our JointTrajectoryController config,
the spawner of that controller, a camera driver, the policy and executor nodes, and optionally
``ros2 bag record``. See docs/LAUNCH.md for examples, including policy and executor on two
machines.

    ros2 launch fast_dvla_ros conveyor_picking.launch.py robot_ip:=172.16.0.2 robot_type:=fr3
    ros2 launch fast_dvla_ros conveyor_picking.launch.py --show-args
"""

from __future__ import annotations

import os
import sys

from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, LogInfo, OpaqueFunction
from launch.launch_context import LaunchContext
from launch.launch_description import LaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from fast_dvla_ros.franka_args import FrankaArgumentError, franka_launch_arguments
from fast_dvla_ros.graph.topics import CONTROLLER

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fast_dvla_common import (
    PACKAGE,
    bag_recorder,
    policy_and_executor_nodes,
    policy_executor_arguments,
)

# franka_ros2 robot types with a controller config here; joints are named <robot_type>_joint1..7
# (fer: the Panda in franka_ros2 2.x). Other types (fp3, fr3v2) need controllers_yaml:=<file>.
CONTROLLER_CONFIGS = {
    "fr3": "fr3_trajectory_controller.yaml",
    "fer": "panda_trajectory_controller.yaml",
    "panda": "panda_trajectory_controller.yaml",
}
# The joint limits table per robot type (config/joint_limits/), for the executor and the policy.
JOINT_LIMITS = {"fr3": "fr3", "fp3": "fr3", "fr3v2": "fr3", "fer": "panda", "panda": "panda"}


def robot_type_of(context: LaunchContext) -> str:
    """``robot_type`` (franka_ros2 >= 2.2) wins; else ``arm_id`` (older releases); default fr3."""
    robot_type = LaunchConfiguration("robot_type").perform(context).strip()
    arm_id = LaunchConfiguration("arm_id").perform(context).strip()
    return robot_type or arm_id or "fr3"


def robot_bringup(context: LaunchContext) -> list:
    """franka.launch.py with our controllers yaml, then the spawner of our trajectory controller."""
    if LaunchConfiguration("start_robot").perform(context).lower() != "true":
        return [LogInfo(msg="start_robot:=false: expecting franka_ros2 and our controller to run elsewhere")]
    robot_type = robot_type_of(context)
    config = LaunchConfiguration("controllers_yaml").perform(context)
    if not config:
        if robot_type not in CONTROLLER_CONFIGS:
            raise RuntimeError(
                f"unknown robot type {robot_type!r}; use one of {sorted(CONTROLLER_CONFIGS)} "
                "or pass controllers_yaml:=<file>"
            )
        config = PathJoinSubstitution([FindPackageShare(PACKAGE), "config", CONTROLLER_CONFIGS[robot_type]]).perform(
            context
        )
    namespace = LaunchConfiguration("namespace").perform(context)
    franka = PythonLaunchDescriptionSource(
        PathJoinSubstitution([FindPackageShare("franka_bringup"), "launch", "franka.launch.py"])
    )
    # Only what the installed release declares, under its spelling (fast_dvla_ros/franka_args.py says why).
    declared = [arg.name for arg in franka.get_launch_description(context).get_launch_arguments()]
    values = {
        "robot_ip": LaunchConfiguration("robot_ip").perform(context),
        "namespace": namespace,
        "use_fake_hardware": LaunchConfiguration("use_fake_hardware").perform(context),
        "fake_sensor_commands": LaunchConfiguration("fake_sensor_commands").perform(context),
        "load_gripper": LaunchConfiguration("load_gripper").perform(context),
        "controllers_yaml": config,
    }
    try:
        arguments = franka_launch_arguments(declared, robot_type, values)
    except FrankaArgumentError as exc:
        raise RuntimeError(f"franka_bringup: {exc}") from None
    bringup = IncludeLaunchDescription(franka, launch_arguments=arguments.items())
    spawner = Node(
        package="controller_manager",
        executable="spawner",
        namespace=namespace,
        arguments=[CONTROLLER, "--controller-manager-timeout", "60"],
        output="screen",
    )
    return [bringup, spawner]


def robot_policy_and_executor(context: LaunchContext) -> list:
    """Policy and executor set up for the arm type: joint names, joint limits, gripper bridge.

    config/conveyor_picking.yaml names the FR3's joints; other arms name theirs
    <robot_type>_joint1..7 (the same names as in their controller config), set here. With
    load_gripper the executor also sends franka_gripper grasp/move goals to ``franka_gripper/*`` in the
    same namespace (the executor's ``franka_gripper_ns`` parameter: Jazzy does not remap action names).
    """
    robot_type = robot_type_of(context)
    if robot_type not in JOINT_LIMITS:
        raise RuntimeError(f"unknown robot type {robot_type!r}; use one of {sorted(JOINT_LIMITS)}")
    prefix = "fer" if robot_type == "panda" else robot_type
    joints = [f"{prefix}_joint{i}" for i in range(1, 8)]
    with_gripper = LaunchConfiguration("load_gripper").perform(context).lower() == "true"
    return policy_and_executor_nodes(
        context,
        robot_policy_params={
            "joint_names": joints,
            "gripper_joint_names": [f"{prefix}_finger_joint1", f"{prefix}_finger_joint2"],
            "joint_limits": JOINT_LIMITS[robot_type],  # joint states outside these are implausible
        },
        robot_executor_params={
            "joint_names": joints,
            "joint_limits": JOINT_LIMITS[robot_type],
            "use_franka_gripper": with_gripper,
        },
    )


def camera_driver(context: LaunchContext) -> list:
    """Include ``<package>/launch/<file>`` from the ``camera`` argument, or nothing for ``none``."""
    camera = LaunchConfiguration("camera").perform(context).strip()
    if camera.lower() in ("", "none"):
        return [LogInfo(msg="camera:=none: expecting images on the image_topic from elsewhere")]
    package, _, launch_file = camera.partition("/")
    if not package or not launch_file:
        raise RuntimeError(f"camera:={camera!r} must read <package>/<launch file> or none")
    extra = {}
    for item in LaunchConfiguration("camera_args").perform(context).split():
        key, sep, value = item.partition(":=")
        if not sep:
            raise RuntimeError(f"camera_args item {item!r} must read name:=value")
        extra[key] = value
    return [
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare(package), "launch", launch_file])),
            launch_arguments=extra.items(),
        )
    ]


def generate_launch_description() -> LaunchDescription:
    """Robot graph: franka_ros2 + camera + policy + executor (+ bag)."""
    robot_args = [
        DeclareLaunchArgument(
            "robot_ip", default_value="172.16.0.2", description="Hostname or IP address of the robot's FCI"
        ),
        DeclareLaunchArgument(
            "robot_type",
            default_value="",
            description="Arm type for franka_ros2 >= 2.2: fr3, fp3, fr3v2 or fer (Panda); empty: use arm_id",
        ),
        DeclareLaunchArgument(
            "arm_id",
            default_value="",
            description="Same as robot_type, for franka_ros2 < 2.2 which calls it arm_id; empty with robot_type: fr3",
        ),
        DeclareLaunchArgument(
            "use_fake_hardware",
            default_value="false",
            description="franka_ros2 mock hardware (no robot; commands are echoed as states)",
        ),
        DeclareLaunchArgument(
            "fake_sensor_commands",
            default_value="false",
            description="With fake hardware: accept commands for sensor interfaces",
        ),
        DeclareLaunchArgument(
            "load_gripper", default_value="true", description="Start the franka_gripper node for the Franka Hand"
        ),
        DeclareLaunchArgument(
            "start_robot",
            default_value="true",
            description="Include franka_bringup and spawn our trajectory controller (false: already running)",
        ),
        DeclareLaunchArgument(
            "controllers_yaml",
            default_value="",
            description="ros2_control config for franka_bringup instead of ours "
            "(empty: config/fr3_ or panda_trajectory_controller.yaml by robot type)",
        ),
        DeclareLaunchArgument(
            "camera",
            default_value="realsense2_camera/rs_launch.py",
            description="Camera driver as <package>/<launch file>, or none",
        ),
        DeclareLaunchArgument(
            "camera_args",
            default_value="",
            description="Arguments for the camera launch file, space separated name:=value pairs",
        ),
    ]
    # FR3 names; the robot type overrides the arm-specific ones
    shared_args = policy_executor_arguments(params_file="conveyor_picking.yaml", graph="robot")
    return LaunchDescription(
        [
            *robot_args,
            *shared_args,
            OpaqueFunction(function=robot_bringup),
            OpaqueFunction(function=camera_driver),
            OpaqueFunction(function=robot_policy_and_executor),
            OpaqueFunction(function=bag_recorder, args=[[]]),
        ]
    )
