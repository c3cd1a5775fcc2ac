"""``chunk_executor``: streams the blended action chunks to a joint trajectory controller at 30 Hz.

Subscriptions only store data in the ExecutorCore; every callback is short, so the node spins a
SingleThreadedExecutor (rclpy's MultiThreadedExecutor cost 18% of a core here and put a 50-70 ms
tail on the tick; bench/RESULTS.md section 3). Every tick sends the
upcoming ``trajectory_points`` points of the plan with velocities and ``header.stamp`` = 0 (JTC:
start now, replacing the previous trajectory from the current state), the gripper width, and an
ExecutorStatus. With ``command_on_chunk`` an accepted chunk is also sent at once, between ticks: it
would otherwise wait up to one control period for the next tick (half a period on average), latency
that is not physics. ``~/episode_start`` (EpisodeStart, latched) drops the plan and everything observed
before the reset and holds the arm where it is measured after it (ExecutorCore.start_episode).
See fast_dvla_ros/execution/ for the decisions themselves.
"""

from __future__ import annotations

import math
import os

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64
from trajectory_msgs.msg import JointTrajectory

from fast_dvla_ros.execution import BLEND_MODES, ChunkBlender, ExecutorCore, load_joint_limits
from fast_dvla_ros.execution.executor_core import TickCommand
from fast_dvla_ros.msg import ActionChunk, EpisodeStart, ExecutorStatus
from fast_dvla_ros.nodes.conversions import duration_to_sec, time_to_sec, trajectory_msg
from fast_dvla_ros.nodes.parameters import describe as _desc
from fast_dvla_ros.nodes.qos import CHUNK_QOS, COMMAND_QOS, LATCHED_QOS, SENSOR_QOS, STATUS_QOS
from fast_dvla_ros.nodes.runner import StartupError, run_node

NODE_NAME = "chunk_executor"
PANDA_JOINTS = [f"panda_joint{i}" for i in range(1, 8)]

try:  # franka_gripper actions, only where franka_ros2 is installed
    from franka_msgs.action import Grasp, Move  # type: ignore[import-not-found]
    from rclpy.action import ActionClient
except ImportError:
    Grasp = Move = ActionClient = None


class ExecutorNode(Node):
    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        p = self.declare_parameter
        p("joint_names", PANDA_JOINTS, _desc("Arm joint names, in the order the trajectory is sent"))
        p("joint_limits", "panda", _desc("Limits table: 'panda', 'fr3' or a YAML path (config/joint_limits/)"))
        p("control_rate_hz", 30.0, _desc("Trajectory/status publishing rate (Hz)", 1.0, 500.0))
        p("blend_mode", "temporal_ensemble", _desc(f"How overlapping chunks are merged: {', '.join(BLEND_MODES)}"))
        p("ensemble_decay", 0.1, _desc("temporal_ensemble weight exp(-m*i), i=0 oldest: >0 favours older", -5.0, 5.0))
        p("freeze_steps", 2, _desc("rtc_freeze: steps after now kept from the previous plan", 0, 32, True))
        p("crossfade_steps", 3, _desc("rtc_freeze: steps over which the new chunk fades in", 0, 32, True))
        p("chunk_timeout_s", 0.5, _desc("Watchdog: hold position when no chunk arrived for this long (s)", 0.05, 10.0))
        p("max_joint_state_age_s", 0.5, _desc("Hold when the newest joint state is older than this (s)", 0.05, 10.0))
        p("reanchor_tolerance_rad", 0.5, _desc("Drop the plan when the arm is this far from the command", 0.01, 6.3))
        p("trajectory_points", 8, _desc("Points per JointTrajectory message (>= 2)", 2, 64, True))
        p("velocity_scale", 0.5, _desc("Fraction of the joint velocity limits the executor may use", 0.01, 1.0))
        p("gripper_min_width", 0.0, _desc("Smallest gripper width command (m)", 0.0, 0.08))
        p("gripper_max_width", 0.08, _desc("Largest gripper width command (m)", 0.0, 0.08))
        p(
            "command_on_chunk",
            True,
            _desc("Send the trajectory as soon as a chunk is accepted, not only at the next tick"),
        )
        p("use_franka_gripper", False, _desc("Also send franka_gripper ~/move and ~/grasp goals (needs franka_msgs)"))
        p(
            "realtime_priority",
            0,
            _desc("SCHED_FIFO priority of this process (1-98; 0 = normal; needs CAP_SYS_NICE)", 0, 98, True),
        )

        g = self.get_parameter
        self._set_realtime_priority(int(g("realtime_priority").value))
        self.joint_names = list(g("joint_names").value)
        try:
            limits = load_joint_limits(str(g("joint_limits").value))
            if self.joint_names != list(limits.joint_names):
                limits = limits.renamed(self.joint_names)
            blender = ChunkBlender(
                str(g("blend_mode").value),
                ensemble_m=float(g("ensemble_decay").value),
                freeze_steps=int(g("freeze_steps").value),
                crossfade_steps=int(g("crossfade_steps").value),
            )
            rate = float(g("control_rate_hz").value)
            self.core = ExecutorCore(
                limits,
                blender=blender,
                control_period=1.0 / rate,
                n_points=int(g("trajectory_points").value),
                velocity_scale=float(g("velocity_scale").value),
                watchdog_timeout_s=float(g("chunk_timeout_s").value),
                joint_state_timeout_s=float(g("max_joint_state_age_s").value),
                reanchor_tolerance=float(g("reanchor_tolerance_rad").value),
            )
        except ValueError as exc:
            raise StartupError(f"{NODE_NAME}: invalid parameters: {exc}") from exc
        self.gripper_range = (float(g("gripper_min_width").value), float(g("gripper_max_width").value))

        self.create_subscription(ActionChunk, "~/action_chunk", self._on_chunk, CHUNK_QOS)
        self.create_subscription(JointState, "~/joint_states", self._on_joint_state, SENSOR_QOS)
        self.create_subscription(EpisodeStart, "~/episode_start", self._on_episode_start, LATCHED_QOS)
        self.command_on_chunk = bool(g("command_on_chunk").value)
        self.traj_pub = self.create_publisher(JointTrajectory, "~/joint_trajectory", COMMAND_QOS)
        self.gripper_pub = self.create_publisher(Float64, "~/gripper_command", COMMAND_QOS)
        self.status_pub = self.create_publisher(ExecutorStatus, "~/status", STATUS_QOS)
        self._gripper = _FrankaGripper(self) if bool(g("use_franka_gripper").value) else None
        self.create_timer(1.0 / rate, self._tick)
        self.get_logger().info(
            f"executing chunks for {self.joint_names} at {rate:.1f} Hz, blend {blender.mode}, "
            f"limits '{limits.robot}', velocity scale {self.core.safety.velocity_scale}"
        )

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_joint_state(self, msg: JointState) -> None:
        self.core.update_joint_state(msg.name, msg.position, self._now(), stamp=time_to_sec(msg.header.stamp))

    def _on_episode_start(self, msg: EpisodeStart) -> None:
        self.core.start_episode(time_to_sec(msg.header.stamp), self._now())

    def _on_chunk(self, msg: ActionChunk) -> None:
        accepted = self.core.add_chunk(
            self._now(),
            joint_names=list(msg.joint_names),
            actions=np.asarray(msg.actions, dtype=np.float64),
            gripper=np.asarray(msg.gripper, dtype=np.float64),
            horizon=int(msg.horizon),
            step_period=duration_to_sec(msg.step_period),
            stamp=time_to_sec(msg.header.stamp),
            sequence_id=int(msg.sequence_id),
            action_kind=msg.action_kind,
        )
        if accepted and self.command_on_chunk:
            self._send(self.core.tick(self._now()))

    def _set_realtime_priority(self, priority: int) -> None:
        """Run the 30 Hz tick under SCHED_FIFO, as ros2_control runs its control thread: on a busy machine
        a normally scheduled process can wake milliseconds late. Refused without the privilege: warn, go on."""
        if priority <= 0:
            return
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            self.get_logger().info(f"SCHED_FIFO priority {priority}")
        except (PermissionError, OSError, AttributeError) as exc:
            self.get_logger().warning(f"realtime_priority {priority} not applied ({exc}); normal scheduling")

    def _tick(self) -> None:
        now = self._now()
        cmd = self.core.tick(now)
        events = list(self.core.counters.events)
        self.core.counters.events.clear()
        if events:  # a watchdog trip and a re-anchor can share a tick: the status names both
            self.core.counters.last_event = "; ".join(events)
        status = self._status(now)
        for e in events:
            self.get_logger().warning(e, throttle_duration_sec=1.0)
        self._send(cmd)
        self.status_pub.publish(status)

    def _send(self, cmd: TickCommand) -> None:
        if cmd.positions is not None and cmd.velocities is not None and cmd.times_from_start is not None:
            self.traj_pub.publish(trajectory_msg(self.joint_names, cmd.times_from_start, cmd.positions, cmd.velocities))
        if cmd.gripper is not None:
            width = min(max(cmd.gripper, self.gripper_range[0]), self.gripper_range[1])
            self.gripper_pub.publish(Float64(data=float(width)))
            if self._gripper is not None:
                self._gripper.command(width)

    def _status(self, now: float) -> ExecutorStatus:
        c = self.core.counters
        s = ExecutorStatus()
        s.header.stamp = self.get_clock().now().to_msg()
        s.state = int(self.core.state)
        s.last_sequence_id = int(c.last_sequence_id)
        age = self.core.chunk_age(now)
        s.chunk_age_s = float(age) if math.isfinite(age) else -1.0
        s.steps_remaining = int(self.core.steps_remaining(now))
        s.chunks_received = c.chunks_received
        s.chunks_rejected = c.chunks_rejected
        s.steps_dropped_stale = c.steps_dropped_stale
        s.underruns = c.underruns
        s.watchdog_trips = c.watchdog_trips
        s.clamped_values = c.clamped_values
        s.chunks_superseded = c.chunks_superseded
        s.last_event = c.last_event
        return s


class _FrankaGripper:
    """franka_gripper goals on width changes: ~/grasp when closing, ~/move when opening (optional)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.last: float | None = None
        if ActionClient is None:
            node.get_logger().warning("use_franka_gripper set but franka_msgs is not importable: Float64 only")
            self.move = self.grasp = None
            return
        self.move = ActionClient(node, Move, "~/move")
        self.grasp = ActionClient(node, Grasp, "~/grasp")

    def command(self, width: float) -> None:
        if self.move is None or self.grasp is None:
            return
        if self.last is not None and abs(width - self.last) < 0.01:
            return  # the real gripper is slow: only act on a real change
        closing = self.last is not None and width < self.last
        self.last = width
        if closing:
            goal = Grasp.Goal(width=width, speed=0.1, force=20.0)
            goal.epsilon.inner = goal.epsilon.outer = 0.08
            self.grasp.send_goal_async(goal)
        else:
            self.move.send_goal_async(Move.Goal(width=width, speed=0.1))


def main(argv: list[str] | None = None) -> int:
    return run_node(ExecutorNode, argv, threads=1)  # short callbacks: one thread, no pool overhead


if __name__ == "__main__":
    raise SystemExit(main())
