"""Fast-dVLA conveyor picking in the PyBullet simulator: the robot graph with the sim node in
place of franka_ros2 and the camera.

    ros2 launch fast_dvla_ros sim_conveyor.launch.py
    ros2 launch fast_dvla_ros sim_conveyor.launch.py record:=true
    ros2 launch fast_dvla_ros sim_conveyor.launch.py --show-args
"""

from __future__ import annotations

import os
import sys

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.launch_context import LaunchContext
from launch.launch_description import LaunchDescription
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fast_dvla_common import (
    PACKAGE,
    bag_recorder,
    overrides,
    policy_and_executor_nodes,
    policy_executor_arguments,
)

SIM_NODE = "conveyor_sim"


def simulator(context: LaunchContext) -> list[Node]:
    """The conveyor_sim node (for an OpaqueFunction: episodes/seed overrides need resolved values)."""
    return [
        Node(
            package=PACKAGE,
            executable="sim_node",
            name=SIM_NODE,
            namespace=LaunchConfiguration("namespace"),
            parameters=[LaunchConfiguration("params_file"), overrides(context, {"episodes": int, "seed": int})],
            arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
            output="screen",
            emulate_tty=True,
            condition=IfCondition(LaunchConfiguration("start_sim")),
        )
    ]


def generate_launch_description() -> LaunchDescription:
    """Simulator graph: conveyor_sim + policy + executor (+ bag)."""
    sim_args = [
        DeclareLaunchArgument(
            "start_sim",
            default_value="true",
            description="Run the simulator node here (false: it runs elsewhere, same ROS_DOMAIN_ID)",
        ),
        DeclareLaunchArgument(
            "episodes", default_value="", description="Episodes the simulator runs (empty: the number in params_file)"
        ),
        DeclareLaunchArgument(
            "seed", default_value="", description="Seed of the first simulated episode (empty: params_file)"
        ),
    ]
    shared_args = policy_executor_arguments(
        params_file="sim_conveyor.yaml",  # Panda names and limits, the simulator's camera size
        image_topic=f"{SIM_NODE}/image",
        policy_joint_states=f"{SIM_NODE}/joint_states",
        executor_joint_states=f"{SIM_NODE}/joint_states",
        trajectory_topic=f"{SIM_NODE}/joint_trajectory",
        gripper_topic=f"{SIM_NODE}/gripper_command",
        instruction_topic=f"{SIM_NODE}/instruction",  # the simulator announces each episode's task
        episode_start_topic=f"{SIM_NODE}/episode_start",  # and each reset
    )
    # The simulator keeps its own private names; the policy/executor defaults above point at them.
    return LaunchDescription(
        [
            *sim_args,
            *shared_args,
            OpaqueFunction(function=simulator),
            OpaqueFunction(function=policy_and_executor_nodes),
            OpaqueFunction(function=bag_recorder, args=[[f"{SIM_NODE}/episode_outcome"]]),
        ]
    )
