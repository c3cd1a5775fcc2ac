"""The topics of the robot and the simulator graph: default names, types, QoS, who publishes and subscribes.

The nodes use private ``~/`` names (docs/CONTRACTS.md); a topic with a launch ``argument`` is remapped to
its value. The launch files take those arguments' defaults from here (``launch_defaults``), the demo its
remaps (``remaps``), docs/LAUNCH.md its topics table (markdown.py); test/test_launch_static.py checks that
the launch files' remappings are the ones listed here.

Default names are relative, so they resolve inside the launch ``namespace`` like the robot's own topics.
In the simulator graph they are the simulator's own private names (``conveyor_sim/image`` is its
``~/image``): the simulator needs no remapping, the policy and the executor are pointed at it.
"""

from __future__ import annotations

from dataclasses import dataclass

POLICY_NODE = "fast_dvla_policy"
EXECUTOR_NODE = "chunk_executor"
SIM_NODE = "conveyor_sim"
CONTROLLER = "fast_dvla_trajectory_controller"  # the JointTrajectoryController the robot launch spawns
GRAPHS = ("robot", "sim")


@dataclass(frozen=True)
class Endpoint:
    """A publisher or subscription of one of our nodes, by its private name."""

    node: str
    name: str


@dataclass(frozen=True)
class Topic:
    """One topic. ``robot``/``sim``: its default name in that graph (None: not in it).

    ``argument``: the launch argument that renames it ('' = a fixed name); ``suffix``: named
    ``<argument's value><suffix>`` (the compressed twin of the image). ``qos``: the profile's name in
    nodes/qos.py. ``note``: who else is on it (drivers, controllers), or when it is used.
    """

    key: str
    msg_type: str
    qos: str
    robot: str | None
    sim: str | None
    publishers: tuple[Endpoint, ...] = ()
    subscribers: tuple[Endpoint, ...] = ()
    argument: str = ""
    suffix: str = ""
    note: str = ""

    def name(self, graph: str) -> str | None:
        if graph not in GRAPHS:
            raise ValueError(f"graph must be one of {GRAPHS}, got {graph!r}")
        return self.robot if graph == "robot" else self.sim


E = Endpoint
_POLICY_IN = E(POLICY_NODE, "~/episode_start")
_EXECUTOR_IN = E(EXECUTOR_NODE, "~/episode_start")

TOPICS: tuple[Topic, ...] = (
    Topic("image", "sensor_msgs/msg/Image", "SENSOR_QOS", "/camera/camera/color/image_raw", f"{SIM_NODE}/image",
          (E(SIM_NODE, "~/image"),), (E(POLICY_NODE, "~/image"),), argument="image_topic",
          note="on the robot: the camera driver; realsense2_camera >= 4.54 names"),
    Topic("image_compressed", "sensor_msgs/msg/CompressedImage", "SENSOR_QOS",
          "/camera/camera/color/image_raw/compressed", f"{SIM_NODE}/image/compressed",
          (), (E(POLICY_NODE, "~/image/compressed"),), argument="image_topic", suffix="/compressed",
          note="on the robot: the camera driver's image_transport twin, where published"),
    Topic("policy_joint_states", "sensor_msgs/msg/JointState", "SENSOR_QOS", "joint_states",
          f"{SIM_NODE}/joint_states", (E(SIM_NODE, "~/joint_states"),), (E(POLICY_NODE, "~/joint_states"),),
          argument="policy_joint_states_topic", note="on the robot: arm + gripper, merged by franka_bringup at 30 Hz"),
    Topic("executor_joint_states", "sensor_msgs/msg/JointState", "SENSOR_QOS", "franka/joint_states",
          f"{SIM_NODE}/joint_states", (E(SIM_NODE, "~/joint_states"),), (E(EXECUTOR_NODE, "~/joint_states"),),
          argument="executor_joint_states_topic", note="on the robot: the arm alone, straight from the broadcaster"),
    Topic("instruction", "std_msgs/msg/String", "LATCHED_QOS", "fast_dvla/instruction", f"{SIM_NODE}/instruction",
          (E(SIM_NODE, "~/instruction"),), (E(POLICY_NODE, "~/instruction"),), argument="instruction_topic",
          note="on the robot: the operator or a task manager"),
    Topic("episode_start", "fast_dvla_ros/msg/EpisodeStart", "LATCHED_QOS", "fast_dvla/episode_start",
          f"{SIM_NODE}/episode_start", (E(SIM_NODE, "~/episode_start"),), (_POLICY_IN, _EXECUTOR_IN),
          argument="episode_start_topic", note="on the robot: whatever resets the cell"),
    Topic("action_chunk", "fast_dvla_ros/msg/ActionChunk", "CHUNK_QOS", "fast_dvla/action_chunk",
          "fast_dvla/action_chunk", (E(POLICY_NODE, "~/action_chunk"),), (E(EXECUTOR_NODE, "~/action_chunk"),),
          argument="action_chunk_topic"),
    Topic("plan", "fast_dvla_ros/msg/ActionChunk", "SENSOR_QOS", "fast_dvla/plan", "fast_dvla/plan",
          (E(EXECUTOR_NODE, "~/plan"),), (E(POLICY_NODE, "~/plan"),), argument="plan_topic",
          note="the executor's plan after every tick, as a chunk observed at the tick (sequence_id: the newest chunk "
               "in it): the policy's action prefix"),
    Topic("trajectory", "trajectory_msgs/msg/JointTrajectory", "COMMAND_QOS", f"{CONTROLLER}/joint_trajectory",
          f"{SIM_NODE}/joint_trajectory", (E(EXECUTOR_NODE, "~/joint_trajectory"),),
          (E(SIM_NODE, "~/joint_trajectory"),), argument="trajectory_topic",
          note=f"on the robot: {CONTROLLER}, a JointTrajectoryController"),
    Topic("gripper_command", "std_msgs/msg/Float64", "COMMAND_QOS", "fast_dvla/gripper_command",
          f"{SIM_NODE}/gripper_command", (E(EXECUTOR_NODE, "~/gripper_command"),),
          (E(SIM_NODE, "~/gripper_command"),), argument="gripper_command_topic",
          note="on the robot: recorded; franka_gripper gets action goals (use_franka_gripper)"),
    Topic("robot_state", "franka_msgs/msg/FrankaRobotState", "SENSOR_QOS",
          "franka_robot_state_broadcaster/robot_state", "franka_robot_state_broadcaster/robot_state",
          (), (E(EXECUTOR_NODE, "~/robot_state"),), argument="robot_state_topic",
          note="on the robot: franka_robot_state_broadcaster; nobody in the simulator"),
    Topic("status", "fast_dvla_ros/msg/ExecutorStatus", "STATUS_QOS", f"{EXECUTOR_NODE}/status",
          f"{EXECUTOR_NODE}/status", (E(EXECUTOR_NODE, "~/status"),)),
    Topic("dry_run_trajectory", "trajectory_msgs/msg/JointTrajectory", "COMMAND_QOS",
          f"{EXECUTOR_NODE}/dry_run/joint_trajectory", f"{EXECUTOR_NODE}/dry_run/joint_trajectory",
          (E(EXECUTOR_NODE, "~/dry_run/joint_trajectory"),), note="with dry_run, in place of trajectory_topic"),
    Topic("dry_run_gripper_command", "std_msgs/msg/Float64", "COMMAND_QOS",
          f"{EXECUTOR_NODE}/dry_run/gripper_command", f"{EXECUTOR_NODE}/dry_run/gripper_command",
          (E(EXECUTOR_NODE, "~/dry_run/gripper_command"),), note="with dry_run, in place of gripper_command_topic"),
    Topic("episode_outcome", "fast_dvla_ros/msg/EpisodeOutcome", "STATUS_QOS", None, f"{SIM_NODE}/episode_outcome",
          (E(SIM_NODE, "~/episode_outcome"),)),
    Topic("diagnostics", "diagnostic_msgs/msg/DiagnosticArray", "STATUS_QOS", "/diagnostics", "/diagnostics",
          (E(POLICY_NODE, "/diagnostics"), E(EXECUTOR_NODE, "/diagnostics"))),
)  # fmt: skip

BY_KEY: dict[str, Topic] = {t.key: t for t in TOPICS}


def launch_defaults(graph: str) -> dict[str, str]:
    """Launch argument -> its default in ``graph`` ("robot" or "sim"), for policy_executor_arguments()."""
    return {t.argument: t.name(graph) for t in TOPICS if t.argument and not t.suffix}


def global_name(name: str) -> str:
    """A default name as it resolves without a namespace."""
    return name if name.startswith("/") else "/" + name


def names(graph: str) -> dict[str, str]:
    """key -> global name of every topic in ``graph`` (no namespace)."""
    return {t.key: global_name(n) for t in TOPICS if (n := t.name(graph)) is not None}


def remaps(node: str, graph: str) -> dict[str, str]:
    """The remapping rules ``private name -> global name`` the launch files give ``node`` in ``graph``.

    Only topics with a launch argument are remapped; a rule that would map a private name to itself
    (the simulator's own topics in the simulator graph) is left out.
    """
    out: dict[str, str] = {}
    for t in TOPICS:
        name = t.name(graph)
        if not t.argument or name is None:
            continue
        for ep in (*t.publishers, *t.subscribers):
            target = global_name(name)
            if ep.node == node and target != f"/{node}/{ep.name.removeprefix('~/')}":
                out[ep.name] = target
    return out
