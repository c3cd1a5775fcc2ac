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

The gripper command is an open/closed decision (execution/gripper.py), published as a width on
``~/gripper_command`` and, with ``use_franka_gripper``, sent to franka_gripper one goal at a time.
``dry_run`` publishes the same commands on ``~/dry_run/joint_trajectory`` and
``~/dry_run/gripper_command`` instead: the controller's topic then has no publisher at all, and no
gripper goal is sent. Where franka_msgs is installed, the robot's state (``~/robot_state``) is
watched: on a reflex or error nothing is streamed until ``~/recover`` (std_srvs/Trigger) has run
franka's ErrorRecovery action (nodes/franka.py). ``/diagnostics`` summarises all of it at 1 Hz.
See fast_dvla_ros/execution/ for the decisions themselves.
"""

from __future__ import annotations

import math
import os

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from fast_dvla_ros.execution import ChunkBlender, ExecutorCore, ReceivedChunk, load_joint_limits
from fast_dvla_ros.execution.executor_core import ExecutorState, TickCommand
from fast_dvla_ros.execution.gripper import GripperSettings
from fast_dvla_ros.graph.parameters import EXECUTOR_PARAMETERS
from fast_dvla_ros.graph.topics import EXECUTOR_NODE
from fast_dvla_ros.msg import ActionChunk, EpisodeStart, ExecutorStatus
from fast_dvla_ros.nodes import franka
from fast_dvla_ros.nodes.conversions import duration_to_sec, sec_to_duration, sec_to_time, time_to_sec, trajectory_msg
from fast_dvla_ros.nodes.parameters import declare_all
from fast_dvla_ros.nodes.qos import CHUNK_QOS, COMMAND_QOS, LATCHED_QOS, SENSOR_QOS, STATUS_QOS
from fast_dvla_ros.nodes.runner import StartupError, run_node

NODE_NAME = EXECUTOR_NODE


class ExecutorNode(Node):
    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        declare_all(self, EXECUTOR_PARAMETERS)

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
                gripper=GripperSettings.from_params(
                    {name: g(name).value for name in GripperSettings.PARAMETERS.values()}
                ),
                follow_measured=bool(g("dry_run").value),
            )
        except ValueError as exc:
            raise StartupError(f"{NODE_NAME}: invalid parameters: {exc}") from exc
        self.dry_run = bool(g("dry_run").value)

        self.create_subscription(ActionChunk, "~/action_chunk", self._on_chunk, CHUNK_QOS)
        self.create_subscription(JointState, "~/joint_states", self._on_joint_state, SENSOR_QOS)
        self.create_subscription(EpisodeStart, "~/episode_start", self._on_episode_start, LATCHED_QOS)
        self.command_on_chunk = bool(g("command_on_chunk").value)
        # In a dry run the controller's topics are never even advertised: nothing can reach the arm.
        out = "~/dry_run/" if self.dry_run else "~/"
        self.traj_pub = self.create_publisher(JointTrajectory, out + "joint_trajectory", COMMAND_QOS)
        self.gripper_pub = self.create_publisher(Float64, out + "gripper_command", COMMAND_QOS)
        self.status_pub = self.create_publisher(ExecutorStatus, "~/status", STATUS_QOS)
        # the plan after every tick: what a policy using an action prefix copies (latency-compensated decoding)
        self.plan_pub = self.create_publisher(ActionChunk, "~/plan", SENSOR_QOS)
        self.plan_steps = int(g("plan_steps").value)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", STATUS_QOS)
        self._gripper = self._franka_gripper() if bool(g("use_franka_gripper").value) else None
        self._robot_state = None
        if bool(g("watch_robot_state").value) and franka.FRANKA_MSGS:
            self._robot_state = franka.RobotStateWatch(self)
            self._recovery = franka.ErrorRecoveryClient(self, str(g("error_recovery_action").value))
            self.create_service(Trigger, "~/recover", self._on_recover, callback_group=self._recovery.group)
        self._recovering = False
        self.create_timer(1.0 / rate, self._tick)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(
            f"executing chunks for {self.joint_names} at {rate:.1f} Hz, blend {blender.mode}, "
            f"limits '{limits.robot}', velocity scale {self.core.safety.velocity_scale}"
            + (", DRY RUN: commands on ~/dry_run/* only" if self.dry_run else "")
            + ("" if self._robot_state else ", robot state not watched (watch_robot_state off or no franka_msgs)")
        )

    def _franka_gripper(self) -> franka.FrankaGripperClient | None:
        if self.dry_run:
            self.get_logger().info("dry run: no franka_gripper goals are sent")
            return None
        if not franka.FRANKA_MSGS:
            self.get_logger().warning("use_franka_gripper set but franka_msgs is not importable: Float64 only")
            return None
        g = self.get_parameter
        grasp = franka.GraspSettings(
            width=float(g("gripper_grasp_width").value),
            epsilon_inner=float(g("gripper_grasp_epsilon_inner").value),
            epsilon_outer=float(g("gripper_grasp_epsilon_outer").value),
            speed=float(g("gripper_speed").value),
            force=float(g("gripper_grasp_force").value),
            open_width=float(g("gripper_max_width").value),
        )
        return franka.FrankaGripperClient(
            self,
            grasp,
            float(g("gripper_goal_timeout_s").value),
            self.core.counters.event,
            homing=bool(g("gripper_homing").value),
            namespace=str(g("franka_gripper_ns").value),
        )

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_joint_state(self, msg: JointState) -> None:
        self.core.update_joint_state(msg.name, msg.position, self._now(), stamp=time_to_sec(msg.header.stamp))

    def _on_episode_start(self, msg: EpisodeStart) -> None:
        self.core.start_episode(time_to_sec(msg.header.stamp), self._now())

    def _on_chunk(self, msg: ActionChunk) -> None:
        received = ReceivedChunk(
            joint_names=list(msg.joint_names),
            actions=np.asarray(msg.actions, dtype=np.float64),
            gripper=np.asarray(msg.gripper, dtype=np.float64),
            horizon=int(msg.horizon),
            step_period=duration_to_sec(msg.step_period),
            stamp=time_to_sec(msg.header.stamp),
            sequence_id=int(msg.sequence_id),
            action_kind=msg.action_kind,
            prefix_steps=int(msg.prefix_steps),
        )
        if self.core.add_chunk(self._now(), received) and self.command_on_chunk:
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
        if self._robot_state is not None:
            reason = self._robot_state.poll()
            if reason:
                self.core.set_robot_error(reason, now)
        cmd = self.core.tick(now)
        self._send(cmd)  # first: the command is what the tick is for; bookkeeping comes after it
        if self._gripper is not None and not self.core.robot_error:
            self._gripper.update(cmd.gripper_closed)
        events = self.core.counters.take_events()
        self.status_pub.publish(self._status(now))
        self._publish_plan(now)
        for e in events:
            if e.startswith("robot error"):
                self.get_logger().error(e)  # never throttled: the operator must see every one
            else:
                self.get_logger().warning(e, throttle_duration_sec=1.0)

    def _publish_plan(self, now: float) -> None:
        # sampled only for a listener: most graphs run without an action prefix, and this is the 30 Hz tick
        if not self.plan_steps or self.plan_pub.get_subscription_count() == 0:
            return
        plan = self.core.plan(now, self.plan_steps)
        if plan is None:
            return
        msg = ActionChunk()
        msg.header.stamp = sec_to_time(now)
        msg.sequence_id = self.core.counters.last_sequence_id  # the newest chunk this plan includes
        msg.action_kind = ActionChunk.ACTION_KIND_JOINT_POSITION
        msg.joint_names = self.joint_names
        msg.step_period = sec_to_duration(self.core.dt)
        msg.horizon = int(plan.shape[0])
        msg.actions = plan[:, :-1].reshape(-1).tolist()
        msg.gripper = plan[:, -1].tolist()
        msg.decoder = "executor_plan"
        self.plan_pub.publish(msg)

    def _send(self, cmd: TickCommand) -> None:
        if cmd.positions is not None and cmd.velocities is not None and cmd.times_from_start is not None:
            self.traj_pub.publish(trajectory_msg(self.joint_names, cmd.times_from_start, cmd.positions, cmd.velocities))
        if cmd.gripper is not None:
            self.gripper_pub.publish(Float64(data=float(cmd.gripper)))

    async def _on_recover(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Run franka's error recovery, then re-anchor (a coroutine: the 30 Hz tick keeps running meanwhile)."""
        if self._recovering:
            response.success, response.message = False, "a recovery is already running"
            return response
        self._recovering = True
        try:
            ok, message = await self._recovery.recover()
        finally:
            self._recovering = False
        if ok:
            now = self._now()
            self._robot_state.ignore_before = now  # a state from before the recovery must not re-trip the error
            self.core.recover(now)
            self.get_logger().info(f"{message}: re-anchored, holding until a new chunk")
        else:
            self.get_logger().error(f"recovery failed: {message}")
        response.success, response.message = ok, message
        return response

    def _publish_diagnostics(self) -> None:
        c, core = self.core.counters, self.core
        status = DiagnosticStatus(name=f"{self.get_name()}: executor", hardware_id=self.get_fully_qualified_name())
        if core.robot_error:
            status.level, status.message = DiagnosticStatus.ERROR, f"robot error: {core.robot_error}; call ~/recover"
        elif core.state == ExecutorState.HOLDING:
            status.level, status.message = DiagnosticStatus.WARN, "holding: " + (c.last_event or "no fresh chunk")
        else:
            status.level, status.message = DiagnosticStatus.OK, core.state.name.lower()
        gripper = self._gripper.tracker if self._gripper is not None else None
        values = {
            "state": core.state.name,
            "dry_run": self.dry_run,
            "robot_error": core.robot_error,
            "underruns": c.underruns,
            "watchdog_trips": c.watchdog_trips,
            "clamped_values": c.clamped_values,
            "gripper_changes": c.gripper_changes,
            "gripper_goals": gripper.goals_sent if gripper else 0,
            "gripper_failures": gripper.failures if gripper else 0,
            "last_event": c.last_event,
        }
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        if gripper is not None and gripper.failures and status.level == DiagnosticStatus.OK:
            status.level, status.message = DiagnosticStatus.WARN, f"{gripper.failures} gripper goal(s) failed"
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(msg)

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
        closed = self.core.gripper.closed
        s.seam_velocity_jump = float(c.seam_velocity_jump)
        s.seam_acceleration_jump = float(c.seam_acceleration_jump)
        s.gripper_closed = -1 if closed is None else int(closed)
        s.gripper_changes = c.gripper_changes
        if self._gripper is not None:
            s.gripper_goals = self._gripper.tracker.goals_sent
            s.gripper_failures = self._gripper.tracker.failures
        s.robot_error = self.core.robot_error
        s.dry_run = self.dry_run
        s.last_event = c.last_event
        return s


def main(argv: list[str] | None = None) -> int:
    return run_node(ExecutorNode, argv, threads=1)  # short callbacks: one thread, no pool overhead


if __name__ == "__main__":
    raise SystemExit(main())
