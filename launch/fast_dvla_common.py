"""Pieces shared by conveyor_picking.launch.py (robot) and sim_conveyor.launch.py (simulator).

Not a launch file itself (``ros2 launch`` lists only ``*.launch.py``); the two launch files import
it from their own folder. Both graphs run the same policy and executor nodes with the same
parameter file; they differ only in what produces images and joint states and consumes commands.

Topic wiring: the nodes use private ``~/`` names (CONTRACTS.md), remapped here to the ``*_topic``
arguments. Their defaults for each graph, types, QoS and endpoints are one table,
fast_dvla_ros/graph/topics.py (docs/LAUNCH.md prints it); test/test_launch_static.py checks that the
remappings below are the ones it lists. Relative topic names resolve inside the ``namespace`` argument,
like the robot's own topics.
"""

from __future__ import annotations

from launch.actions import DeclareLaunchArgument, ExecuteProcess, LogInfo
from launch.conditions import IfCondition
from launch.launch_context import LaunchContext
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from fast_dvla_ros.bag.record_command import record_command, ros2_bag_available, timestamped_bag_dir
from fast_dvla_ros.core.decoder_options import DecoderSpecError, parse_decoder_spec
from fast_dvla_ros.graph.topics import BY_KEY, EXECUTOR_NODE, POLICY_NODE, launch_defaults

PACKAGE = "fast_dvla_ros"


def default_params_file(name: str) -> PathJoinSubstitution:
    """config/<name> as installed in share/fast_dvla_ros."""
    return PathJoinSubstitution([FindPackageShare(PACKAGE), "config", name])


def policy_executor_arguments(*, params_file: str, graph: str) -> list[DeclareLaunchArgument]:
    """Arguments of the policy/executor half; the topic defaults are ``graph``'s ("robot" or "sim")."""
    topics = launch_defaults(graph)
    return [
        DeclareLaunchArgument(
            "namespace",
            default_value="",
            description="ROS namespace of every node started here (and of relative topic names below)",
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=default_params_file(params_file),
            description="Parameter file of the policy, executor (and simulator) nodes",
        ),
        DeclareLaunchArgument(
            "start_policy",
            default_value="true",
            description="Run the policy node here (false: it runs on another machine, same ROS_DOMAIN_ID)",
        ),
        DeclareLaunchArgument(
            "start_executor",
            default_value="true",
            description="Run the executor node here (false: it runs on another machine, same ROS_DOMAIN_ID)",
        ),
        DeclareLaunchArgument(
            "image_topic",
            default_value=topics["image_topic"],
            description="sensor_msgs/Image the policy sees (its .../compressed twin is used when published)",
        ),
        DeclareLaunchArgument(
            "policy_joint_states_topic",
            default_value=topics["policy_joint_states_topic"],
            description="JointState with arm and gripper for the policy's proprioception",
        ),
        DeclareLaunchArgument(
            "executor_joint_states_topic",
            default_value=topics["executor_joint_states_topic"],
            description="JointState of the arm for the executor (the fastest source available)",
        ),
        DeclareLaunchArgument(
            "instruction_topic",
            default_value=topics["instruction_topic"],
            description="std_msgs/String task instruction (transient local: publish it once)",
        ),
        DeclareLaunchArgument(
            "episode_start_topic",
            default_value=topics["episode_start_topic"],
            description="fast_dvla_ros/EpisodeStart: the scene was reset (policy and executor drop older data)",
        ),
        DeclareLaunchArgument(
            "action_chunk_topic",
            default_value=topics["action_chunk_topic"],
            description="ActionChunk topic between policy and executor (must match on both machines)",
        ),
        DeclareLaunchArgument(
            "plan_topic",
            default_value=topics["plan_topic"],
            description="ActionChunk: the executor's plan, from which the policy takes a chunk's action prefix",
        ),
        DeclareLaunchArgument(
            "trajectory_topic",
            default_value=topics["trajectory_topic"],
            description="trajectory_msgs/JointTrajectory the executor streams to",
        ),
        DeclareLaunchArgument(
            "gripper_command_topic",
            default_value=topics["gripper_command_topic"],
            description="std_msgs/Float64 gripper width command (m) of the executor",
        ),
        DeclareLaunchArgument("log_level", default_value="info", description="Log level of the fast_dvla_ros nodes"),
        DeclareLaunchArgument(
            "record",
            default_value="false",
            description="Record the run as an MCAP bag in <bag_dir>/fast_dvla_<UTC time> (ros2 bag record where "
            "installed, else fast-dvla-record); read it with fast-dvla-eval",
        ),
        DeclareLaunchArgument(
            "bag_dir", default_value="bags", description="Folder that receives one timestamped bag per launch"
        ),
        DeclareLaunchArgument(
            "record_images",
            default_value="false",
            description="Also record the camera images (large: about 2 MB/s at 30 Hz and 128 px)",
        ),
        DeclareLaunchArgument(
            "checkpoint",
            default_value="",
            description="Policy checkpoint folder (empty: the one in params_file)",
        ),
        DeclareLaunchArgument(
            "decoder",
            default_value="",
            description="Policy decoder spec NAME[:key=value,...], e.g. pipelined:n=2, checked against the "
            "decoder registry before any node starts (empty: params_file's; '' there = the checkpoint's decoder)",
        ),
        DeclareLaunchArgument(
            "blend_mode",
            default_value="",
            description="Executor chunk blending mode (empty: the one in params_file)",
        ),
        DeclareLaunchArgument(
            "action_prefix_steps",
            default_value="",
            description="Policy: longest action prefix from the executor's plan (-1: the checkpoint's, 0: off; "
            "empty: params_file's); pair with blend_mode:=action_prefix",
        ),
        DeclareLaunchArgument(
            "dry_run",
            default_value="false",
            description="Executor publishes its trajectory and gripper commands on chunk_executor/dry_run/* only "
            "(recorded with record:=true); the controller and the gripper are never commanded",
        ),
        DeclareLaunchArgument(
            "robot_state_topic",
            default_value=topics["robot_state_topic"],
            description="franka_msgs/FrankaRobotState the executor watches for reflexes and errors",
        ),
    ]


def is_true(context: LaunchContext, name: str) -> bool:
    return LaunchConfiguration(name).perform(context).strip().lower() in ("true", "1", "yes")


def overrides(context: LaunchContext, params: dict[str, type]) -> dict[str, object]:
    """Parameters whose launch argument of the same name is set (non-empty), converted to their type.

    Empty means "keep params_file's value": a launch argument cannot be unset, and passing an
    empty string would override the file.
    """
    out: dict[str, object] = {}
    for name, kind in params.items():
        value = LaunchConfiguration(name).perform(context).strip()
        if value:
            out[name] = kind(value)
    return out


def policy_and_executor_nodes(
    context: LaunchContext,
    robot_policy_params: dict[str, object] | None = None,
    robot_executor_params: dict[str, object] | None = None,
    robot_executor_remaps: list[tuple[str, str]] | None = None,
) -> list[Node]:
    """The policy and executor nodes, each behind its start_* argument (for an OpaqueFunction).

    The ``robot_*`` extras come from the robot launch file (joint names and limits of the arm
    type, the franka_gripper bridge); the explicit launch-argument overrides win over them.
    """
    ns = LaunchConfiguration("namespace")
    params = LaunchConfiguration("params_file")
    policy_overrides = {
        **(robot_policy_params or {}),
        **overrides(context, {"checkpoint": str, "decoder": str, "action_prefix_steps": int}),
    }
    if "decoder" in policy_overrides:  # a typo stops the launch here, not seconds later in the node
        try:
            parse_decoder_spec(str(policy_overrides["decoder"]))
        except DecoderSpecError as exc:
            raise ValueError(f"launch argument decoder:={policy_overrides['decoder']}: {exc}") from None
    executor_overrides = {
        **(robot_executor_params or {}),
        **overrides(context, {"blend_mode": str}),
        "dry_run": is_true(context, "dry_run"),
    }
    log_args = ["--ros-args", "--log-level", LaunchConfiguration("log_level")]
    policy = Node(
        package=PACKAGE,
        executable="policy_node",
        name=POLICY_NODE,
        namespace=ns,
        parameters=[params, policy_overrides],
        remappings=[
            ("~/image", LaunchConfiguration("image_topic")),
            ("~/image/compressed", [LaunchConfiguration("image_topic"), "/compressed"]),
            ("~/joint_states", LaunchConfiguration("policy_joint_states_topic")),
            ("~/instruction", LaunchConfiguration("instruction_topic")),
            ("~/episode_start", LaunchConfiguration("episode_start_topic")),
            ("~/action_chunk", LaunchConfiguration("action_chunk_topic")),
            ("~/plan", LaunchConfiguration("plan_topic")),
        ],
        arguments=log_args,
        output="screen",
        emulate_tty=True,
        condition=IfCondition(LaunchConfiguration("start_policy")),
    )
    executor = Node(
        package=PACKAGE,
        executable="executor_node",
        name=EXECUTOR_NODE,
        namespace=ns,
        parameters=[params, executor_overrides],
        remappings=[
            ("~/action_chunk", LaunchConfiguration("action_chunk_topic")),
            ("~/joint_states", LaunchConfiguration("executor_joint_states_topic")),
            ("~/joint_trajectory", LaunchConfiguration("trajectory_topic")),
            ("~/gripper_command", LaunchConfiguration("gripper_command_topic")),
            ("~/episode_start", LaunchConfiguration("episode_start_topic")),
            ("~/robot_state", LaunchConfiguration("robot_state_topic")),
            ("~/plan", LaunchConfiguration("plan_topic")),
            *(robot_executor_remaps or []),
        ],
        arguments=log_args,
        output="screen",
        emulate_tty=True,
        condition=IfCondition(LaunchConfiguration("start_executor")),
    )
    return [policy, executor]


def bag_recorder(context: LaunchContext, extra_topics: list[str]) -> list:
    """A recorder of the run's topics (for an OpaqueFunction; needs resolved arguments): ``ros2 bag record``
    where rosbag2 is installed, else the package's own MCAP recorder (fast-dvla-record)."""
    if not is_true(context, "record"):
        return []
    ns = LaunchConfiguration("namespace").perform(context)
    topics = [
        LaunchConfiguration(name).perform(context)
        for name in (
            "action_chunk_topic",
            "trajectory_topic",
            "gripper_command_topic",
            "instruction_topic",
            "episode_start_topic",
            "policy_joint_states_topic",
            "executor_joint_states_topic",
        )
    ]
    topics += [BY_KEY["status"].robot, BY_KEY["diagnostics"].robot, *extra_topics]
    if is_true(context, "dry_run"):  # what the executor would have sent: a dry-run bag evaluates like any other
        topics += [BY_KEY["dry_run_trajectory"].robot, BY_KEY["dry_run_gripper_command"].robot]
    if is_true(context, "record_images"):
        topics.append(LaunchConfiguration("image_topic").perform(context))
    out = timestamped_bag_dir(LaunchConfiguration("bag_dir").perform(context))
    out.parent.mkdir(parents=True, exist_ok=True)
    ros2_bag = ros2_bag_available()  # else the package's recorder (fast_dvla_ros/bag/record_command.py says why)
    cmd = record_command(out, topics, ns, ros2_bag=ros2_bag)
    return [
        LogInfo(
            msg=f"recording to {out} with {'ros2 bag record' if ros2_bag else 'fast-dvla-record'}; "
            f"evaluate with: fast-dvla-eval {out}"
        ),
        ExecuteProcess(cmd=cmd, name="bag_recorder", output="screen", sigterm_timeout="10"),
    ]
