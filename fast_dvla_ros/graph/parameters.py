"""Every parameter of the three nodes, one table per node: the nodes declare exactly these.

Why a table instead of ``declare_parameter`` calls in each node: the same name, default, range and
description then reach ``ros2 param describe`` (nodes/parameters.py), docs/LAUNCH.md ("Node
parameters", printed by ``python -m fast_dvla_ros.graph --markdown``) and the check that the parameter
files name only declared parameters (test/test_launch_static.py), without parsing node source.

Every parameter is read once, at start-up, hence ``read_only`` (nodes/parameters.py says why); the
parameter files (config/*.yaml) set the values for the robot and the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass

from fast_dvla_ros.core.decoder_options import DECODER_NAMES
from fast_dvla_ros.execution.blender import BLEND_MODES
from fast_dvla_ros.graph.topics import EXECUTOR_NODE, POLICY_NODE, SIM_NODE

Value = bool | int | float | str | tuple[str, ...]


@dataclass(frozen=True)
class NodeParameter:
    """One declared parameter. ``range`` (lo, hi) is enforced by rclpy on set; a list default is a tuple here."""

    name: str
    default: Value
    description: str
    range: tuple[float, float] | None = None
    read_only: bool = True

    @property
    def integer(self) -> bool:
        """An integer parameter (its range is an IntegerRange)."""
        return isinstance(self.default, int) and not isinstance(self.default, bool)

    @property
    def ros_default(self) -> bool | int | float | str | list[str]:
        """The default as rclpy declares it (a string array is a list)."""
        return list(self.default) if isinstance(self.default, tuple) else self.default


P = NodeParameter
PANDA_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
PANDA_FINGERS = ("panda_finger_joint1", "panda_finger_joint2")
DEFAULT_INSTRUCTION = "pick the red block from the conveyor and place it in the bin"

POLICY_PARAMETERS: tuple[NodeParameter, ...] = (
    P("checkpoint", "", "Checkpoint directory; '' = the shipped models/student_distilled (the best measured picker)"),
    P("decoder", "", f"Decoder spec: {', '.join(DECODER_NAMES)}, optionally with options "
                     "(pipelined:n=1,tau_conf=0.5; a name alone = that decoder's defaults); "
                     "'' = the checkpoint's recommended decoder and settings"),
    P("device", "cpu", "Torch device: cpu or cuda"),
    P("horizon", 0, "Steps published per chunk (0 = the checkpoint's horizon)", (0, 256)),
    P("control_rate_hz", 0.0, "Chunk rate when decoding is fast enough (Hz; 0 = the action rate)", (0.0, 500.0)),
    P("action_rate_hz", 0.0, "Spacing of the checkpoint's action steps (Hz; 0 = the checkpoint's)", (0.0, 1000.0)),
    P("joint_names", PANDA_JOINTS, "Arm joints, in the action order"),
    P("gripper_joint_names", PANDA_FINGERS, "Finger joints; width = sum"),
    P("joint_limits", "panda", "Limits table of the arm ('panda', 'fr3' or a YAML path; '' = no check): "
                               "joint states outside it are ignored as implausible"),
    P("instruction", DEFAULT_INSTRUCTION, "Task instruction until one arrives on ~/instruction"),
    P("max_observation_age_s", 0.5, "Older image or joint state -> no chunk (s)", (0.01, 60.0)),
    P("action_prefix_steps", 0, "Latency-compensated decoding: longest action prefix copied from the executor's "
                                "~/plan (-1 = the checkpoint's longest, 0 = off; pair with the executor's "
                                "blend_mode action_prefix)", (-1, 64)),
    P("warmup", True, "Run warm-up decodes before control starts (not counted)"),
    P("num_threads", 1, "Torch intra-op threads (0 = torch default)", (0, 64)),
)  # fmt: skip

EXECUTOR_PARAMETERS: tuple[NodeParameter, ...] = (
    P("joint_names", PANDA_JOINTS, "Arm joint names, in the order the trajectory is sent"),
    P("joint_limits", "panda", "Limits table: 'panda', 'fr3' or a YAML path (config/joint_limits/)"),
    P("control_rate_hz", 30.0, "Trajectory/status publishing rate (Hz)", (1.0, 500.0)),
    P("blend_mode", "temporal_ensemble", f"How overlapping chunks are merged: {', '.join(BLEND_MODES)}"),
    P("ensemble_decay", 0.1, "temporal_ensemble weight exp(-m*i), i=0 oldest: >0 favours older", (-5.0, 5.0)),
    P("freeze_steps", 2, "rtc_freeze: steps after now kept from the previous plan", (0, 32)),
    P("crossfade_steps", 3, "rtc_freeze: steps over which the new chunk fades in", (0, 32)),
    P("chunk_timeout_s", 0.5, "Watchdog: hold position when no chunk arrived for this long (s)", (0.05, 10.0)),
    P("max_joint_state_age_s", 0.5, "Hold when the newest joint state is older than this (s)", (0.05, 10.0)),
    P("reanchor_tolerance_rad", 0.5, "Drop the plan when the arm is this far from the command", (0.01, 6.3)),
    P("plan_steps", 8, "Steps of the plan published on ~/plan after every tick (0 = none)", (0, 64)),
    P("trajectory_points", 8, "Points per JointTrajectory message (>= 2)", (2, 64)),
    P("velocity_scale", 0.5, "Fraction of the joint velocity limits the executor may use", (0.01, 1.0)),
    P("gripper_min_width", 0.0, "Width commanded when the decision is closed (m)", (0.0, 0.08)),
    P("gripper_max_width", 0.08, "Width commanded when the decision is open (m)", (0.0, 0.08)),
    P("gripper_close_below_m", 0.03, "Decide closed when the plan's width falls below this (m)", (0.0, 0.08)),
    P("gripper_open_above_m", 0.05, "Decide open when the plan's width rises above this (m)", (0.0, 0.08)),
    P("gripper_min_dwell_s", 0.3, "Keep each open/closed decision at least this long (s)", (0.0, 5.0)),
    P("command_on_chunk", True, "Send the trajectory as soon as a chunk is accepted, not only at the next tick"),
    P("use_franka_gripper", False, "Also send franka_gripper ~/grasp and ~/move goals (needs franka_msgs)"),
    P("franka_gripper_ns", "franka_gripper", "franka_gripper's action namespace (grasp, move, homing)"),
    P("error_recovery_action", "action_server/error_recovery", "franka_hardware's ErrorRecovery action"),
    P("gripper_homing", False, "franka_gripper: home the fingers (~/homing) before the first goal"),
    P("gripper_goal_timeout_s", 3.0, "franka_gripper: cancel and report a goal after this (s)", (0.1, 30.0)),
    P("gripper_grasp_width", 0.04, "franka_gripper grasp: expected object width (m)", (0.0, 0.08)),
    P("gripper_grasp_epsilon_inner", 0.02, "grasp succeeds down to width - this (m)", (0.0, 0.08)),
    P("gripper_grasp_epsilon_outer", 0.02, "grasp succeeds up to width + this (m)", (0.0, 0.08)),
    P("gripper_grasp_force", 20.0, "franka_gripper grasp force (N)", (1.0, 70.0)),
    P("gripper_speed", 0.1, "franka_gripper finger speed (m/s)", (0.01, 0.2)),
    P("dry_run", False, "Publish commands on ~/dry_run/* only: the arm and the gripper are never commanded"),
    P("watch_robot_state", True, "Stop streaming on a reflex/error in ~/robot_state (needs franka_msgs)"),
    P("realtime_priority", 0, "SCHED_FIFO priority of the thread spinning the node (1-98; 0 = normal; "
                              "needs CAP_SYS_NICE)", (0, 98)),
)  # fmt: skip

SIM_PARAMETERS: tuple[NodeParameter, ...] = (
    P("episodes", 0, "Episodes to run, then exit 0 (0 = forever)", (0, 1_000_000)),
    P("episode_time_limit_s", 10.0, "Simulated seconds before an episode times out", (0.5, 600.0)),
    P("image_rate_hz", 30.0, "Camera rate (Hz); rendering costs ~4 ms per 96 px frame", (1.0, 60.0)),
    P("joint_state_rate_hz", 60.0, "Joint state rate (Hz)", (1.0, 500.0)),
    P("physics_rate_hz", 60.0, "Wall-clock rate of physics updates (Hz; 240 Hz substeps inside)", (10.0, 480.0)),
    P("image_size", 96, "Square camera image side (px)", (16, 512)),
    P("seed", 0, "Seed of the first episode; episode k uses seed + k", (0, 2**31 - 1)),
    P("belt_speed_min", 0.03, "Lowest belt speed (m/s)", (0.0, 0.5)),
    P("belt_speed_max", 0.08, "Highest belt speed (m/s)", (0.0, 0.5)),
    P("wait_for_first_command", False, "Hold the first episode still until the first trajectory command arrives"),
    P("first_command_timeout_s", 120.0, "Start the first episode anyway after this long (s)", (0.0, 3600.0)),
    P("reset_settle_s", 0.1, "After each reset, arm and gripper commands are ignored this long (s): those still "
                             "in flight were issued for the previous scene", (0.0, 2.0)),
)  # fmt: skip

# node (default name) -> its table, in the order docs/LAUNCH.md lists them
NODE_PARAMETERS: dict[str, tuple[NodeParameter, ...]] = {
    POLICY_NODE: POLICY_PARAMETERS,
    EXECUTOR_NODE: EXECUTOR_PARAMETERS,
    SIM_NODE: SIM_PARAMETERS,
}

