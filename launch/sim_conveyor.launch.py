"""Fast-dVLA conveyor picking in the PyBullet simulator: the robot graph with the sim node in
place of franka_ros2 and the camera.

    ros2 launch fast_dvla_ros sim_conveyor.launch.py
    ros2 launch fast_dvla_ros sim_conveyor.launch.py record:=true
    ros2 launch fast_dvla_ros sim_conveyor.launch.py --show-args
"""

from __future__ import annotations

import os
import sys

from launch.actions import DeclareLaunchArgument, EmitEvent, LogInfo, OpaqueFunction, RegisterEventHandler
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.launch_context import LaunchContext
from launch.launch_description import LaunchDescription
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from fast_dvla_ros.graph.topics import BY_KEY, SIM_NODE

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fast_dvla_common import (
    PACKAGE,
    bag_recorder,
    is_true,
    overrides,
    policy_and_executor_nodes,
    policy_executor_arguments,
)


def simulator(context: LaunchContext) -> list:
    """The conveyor_sim node (for an OpaqueFunction: episodes/seed overrides need resolved values), and the
    end of the launch when it exits.

    With ``episodes`` > 0 the simulator exits 0 after the last one; the policy and the executor would
    then wait forever for images and joint states that no longer come, so its exit shuts the whole
    launch down (SIGINT to the others, a recorder included, which closes its bag). A simulator that
    dies does the same: there is nothing left to control.
    """
    sim = Node(
        package=PACKAGE,
        executable="sim_node",
        name=SIM_NODE,
        namespace=LaunchConfiguration("namespace"),
        parameters=[
            LaunchConfiguration("params_file"),
            overrides(context, {"episodes": int, "seed": int}),
            # a dry run never commands the arm: an episode waiting for the first command would never start
            {"wait_for_first_command": False} if is_true(context, "dry_run") else {},
        ],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
        output="screen",
        emulate_tty=True,
        condition=IfCondition(LaunchConfiguration("start_sim")),
    )
    end = RegisterEventHandler(
        OnProcessExit(
            target_action=sim,
            on_exit=lambda event, _context: [
                LogInfo(msg=f"{SIM_NODE} exited with code {event.returncode}: shutting the launch down"),
                EmitEvent(event=Shutdown(reason=f"{SIM_NODE} finished")),
            ],
        )
    )
    return [sim, end]


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
    # Panda names and limits, the simulator's camera size. The simulator keeps its own private names (it
    # also announces each episode's task and reset); the policy/executor topic defaults point at them.
    shared_args = policy_executor_arguments(params_file="sim_conveyor.yaml", graph="sim")
    return LaunchDescription(
        [
            *sim_args,
            *shared_args,
            OpaqueFunction(function=simulator),
            OpaqueFunction(function=policy_and_executor_nodes),
            OpaqueFunction(function=bag_recorder, args=[[BY_KEY["episode_outcome"].sim]]),
        ]
    )
