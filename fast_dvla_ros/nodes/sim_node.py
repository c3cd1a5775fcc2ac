"""``conveyor_sim``: ConveyorPickEnv in real time, behaving towards ROS like the real robot does.

Physics advances on a wall-clock timer by the time that actually passed, so the policy and the
executor face real latency. The arm takes exactly what the executor sends to the robot: a
JointTrajectory, followed the way a joint_trajectory_controller does (JtcInterpolator, sampled at
every 240 Hz physics substep as a JTC feeds the robot at its own 1 kHz, and started from the
message's receive time, not from the next physics tick), plus a Float64 gripper width. Each episode
starts with an EpisodeStart on ``~/episode_start`` (latched; stamp = the reset time), so the policy
and the executor can drop what they observed before it. The camera renders at ``image_rate_hz``
(30 Hz, the control rate: TinyRenderer costs ~4 ms per 96 px frame on these CPUs; a 15 Hz camera
added up to 67 ms of frame age to every chunk), joint states go out at ``joint_state_rate_hz``. At
each episode end an EpisodeOutcome is published and the next seed starts; with ``episodes`` > 0 the
node exits 0 after the last one.

``wait_for_first_command``: a policy that starts together with the simulator needs seconds to
load and warm up, and the first episode's belt would carry the block past the arm meanwhile
(measured on a cold start: 35 commands in a 10 s episode). With it the first episode holds the
world still (camera and joint states keep publishing) until the first trajectory command
arrives, like a conveyor cell that starts when the robot reports ready. Later episodes start at
once: a policy that dies mid-run must still meet a moving belt.

``reset_settle_s``: a reset is instantaneous here, but the executor learns of it only when the
EpisodeStart reaches it (5-20 ms under load), and until then it keeps sending the previous episode's
plan; those trajectories reached the new scene and swung the freshly reset arm towards the last
episode's pose (the bin) by more than 0.03 rad in 31-42 of 49 resets per 50-episode run (p50 0.09-0.14
rad) before the new episode's first chunk arrived (bench/RESULTS.md section 3). On a real cell a reset
takes the controller away from the policy while the arm is homed; here every arm and gripper command
that arrives within ``reset_settle_s`` of a reset (not the first: nothing can be in flight for it) is
ignored, the arm holding the reset pose, and the reset's own wall time is not simulated.

Why one timer and one thread: a PyBullet client is not thread-safe, and with separate physics
and camera timers an overdue physics timer was always served first, so under CPU load the camera
went silent for seconds (the policy then saw 2 s old images and stopped). One loop at the physics
rate advances the world, then publishes joint states and renders the camera whenever each is due,
like a simulator's main loop; the subscriptions only store the newest message. A
SingleThreadedExecutor spins it all: rclpy's MultiThreadedExecutor costs a sizeable share of a
core in its own bookkeeping (measured on the executor node).
"""

from __future__ import annotations

import math
import threading
import time

from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64, String
from trajectory_msgs.msg import JointTrajectory

from fast_dvla_ros.execution.jtc_interpolator import JtcInterpolator, TrajectoryRejected
from fast_dvla_ros.graph.parameters import PANDA_FINGERS, SIM_PARAMETERS
from fast_dvla_ros.graph.topics import SIM_NODE
from fast_dvla_ros.msg import EpisodeOutcome, EpisodeStart
from fast_dvla_ros.nodes.conversions import duration_to_sec, rgb_to_image, time_to_sec
from fast_dvla_ros.nodes.parameters import declare_all
from fast_dvla_ros.nodes.qos import COMMAND_QOS, LATCHED_QOS, SENSOR_QOS, STATUS_QOS
from fast_dvla_ros.nodes.runner import StartupError, run_node

NODE_NAME = SIM_NODE
MAX_STEP_S = 0.1  # never catch up more than this in one tick after a stall (keeps physics stable)


class SimNode(Node):
    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        declare_all(self, SIM_PARAMETERS)

        g = self.get_parameter
        from fast_dvla_ros.sim.conveyor_env import ConveyorPickEnv, SimConfig

        try:
            cfg = SimConfig(
                belt_speed_range=(float(g("belt_speed_min").value), float(g("belt_speed_max").value)),
                image_size=int(g("image_size").value),
                episode_time_limit=float(g("episode_time_limit_s").value),
            )
        except (ValueError, TypeError) as exc:
            raise StartupError(f"{NODE_NAME}: invalid parameters: {exc}") from exc
        self.env = ConveyorPickEnv(cfg)
        self.episodes = int(g("episodes").value)
        self.seed0 = int(g("seed").value)
        self.episode = 0
        self.finished = False
        self.exit_code = 0
        self._finish_at: float | None = None
        self.arm_joints = list(self.env.action_names[:7])
        self._sim_lock = threading.Lock()  # PyBullet client: close() may come from another thread
        self._closed = False  # set by close(): late timer callbacks must not touch the closed client
        self._traj: tuple[JointTrajectory, float] | None = None  # newest message and its receive time
        self._width: float | None = None
        self._commands = 0
        self._settle_s = float(g("reset_settle_s").value)
        self._ignore_until = -math.inf  # monotonic time: commands arriving before it are ignored (a reset)
        self._ignored = 0
        self._waiting = bool(g("wait_for_first_command").value)
        self._wait_until = time.monotonic() + float(g("first_command_timeout_s").value)

        self.image_pub = self.create_publisher(Image, "~/image", SENSOR_QOS)
        self.js_pub = self.create_publisher(JointState, "~/joint_states", SENSOR_QOS)
        self.outcome_pub = self.create_publisher(EpisodeOutcome, "~/episode_outcome", STATUS_QOS)
        self.instruction_pub = self.create_publisher(String, "~/instruction", LATCHED_QOS)
        self.episode_start_pub = self.create_publisher(EpisodeStart, "~/episode_start", LATCHED_QOS)
        self.create_subscription(JointTrajectory, "~/joint_trajectory", self._on_traj, COMMAND_QOS)
        self.create_subscription(Float64, "~/gripper_command", self._on_gripper, COMMAND_QOS)

        self._start_episode()
        self._js_period = 1.0 / float(g("joint_state_rate_hz").value)
        self._next_js = 0.0
        self._image_period = 1.0 / float(g("image_rate_hz").value)
        self._next_image = 0.0
        self.create_timer(1.0 / float(g("physics_rate_hz").value), self._physics_tick)
        self.get_logger().info(
            f"conveyor sim: {self.episodes or 'endless'} episodes from seed {self.seed0}, "
            f"camera {cfg.image_size} px at {g('image_rate_hz').value} Hz"
        )

    # ------------------------------------------------------------------ episodes
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _start_episode(self) -> None:
        with self._sim_lock:
            self.env.reset(seed=self.seed0 + self.episode)
            q = self.env.observe()["joint_pos"]
            self.interp = JtcInterpolator(self.arm_joints, q)
            self.interp.reset(q, self._now())
            self._gripper_cmd = float(self.env.command[1])
        self._traj, self._width, self._commands, self._ignored = None, None, 0, 0
        # the next physics tick simulates from here: the reset's own wall time (tens of ms) is not episode time
        self._last_advance = time.monotonic()
        if self.episode > 0:  # nothing can be in flight for a scene that did not exist
            self._ignore_until = self._last_advance + self._settle_s
        start = EpisodeStart()
        start.header.stamp = self.get_clock().now().to_msg()  # after the reset: older observations are stale
        start.episode, start.seed, start.instruction = self.episode, self.seed0 + self.episode, self.env.instruction
        self.episode_start_pub.publish(start)
        self.instruction_pub.publish(String(data=self.env.instruction))
        self.get_logger().info(f"episode {self.episode} (seed {self.seed0 + self.episode}): {self.env.instruction}")

    def _end_episode(self) -> None:
        st = self.env.episode_status()
        msg = EpisodeOutcome()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.episode = self.episode
        msg.seed = self.seed0 + self.episode
        msg.success = bool(st.success)
        msg.failure_cause = st.failure_cause
        msg.duration_s = float(st.time_s)
        msg.belt_speed_mps = float(self.env.belt_speed)
        msg.control_steps = self._commands
        msg.first_close_distance_m = float(st.first_close_distance)
        self.outcome_pub.publish(msg)
        self.get_logger().info(
            f"episode {self.episode}: {'success' if st.success else 'failure (' + st.failure_cause + ')'}"
            f" after {st.time_s:.1f} s, {self._commands} trajectory commands"
            + (f" ({self._ignored} commands ignored while its reset settled)" if self._ignored else "")
        )
        self.episode += 1
        if self.episodes and self.episode >= self.episodes:
            self._finish_at = time.monotonic() + 0.5  # let the reliable outcome reach its subscribers
        else:
            self._start_episode()

    # ------------------------------------------------------------------ inputs
    def _settling(self) -> bool:
        """Within ``reset_settle_s`` of a reset: a command now was issued for the previous scene."""
        if time.monotonic() < self._ignore_until:
            self._ignored += 1
            return True
        return False

    def _on_traj(self, msg: JointTrajectory) -> None:
        if self._settling():
            return
        self._traj = (msg, self._now())
        self._commands += 1

    def _on_gripper(self, msg: Float64) -> None:
        if self._settling():
            return
        if not math.isfinite(msg.data):
            self.get_logger().warning("non-finite gripper command ignored", throttle_duration_sec=2.0)
            return
        self._width = float(msg.data)

    # ------------------------------------------------------------------ loop
    def _physics_tick(self) -> None:
        if self._closed:
            return
        if self._finish_at is not None:
            if time.monotonic() >= self._finish_at:
                self.finished = True
            return
        mono = time.monotonic()
        dt = min(mono - self._last_advance, MAX_STEP_S)
        self._last_advance = mono
        now = self._now()
        received, width = self._traj, self._width
        self._traj = None
        traj = None
        if received is not None:
            traj, at = received
            try:
                # From the receive time (a JTC takes a message when it arrives; this tick simulates the
                # interval it arrived in). Its stamp 0 means "start now", i.e. at the receive time too.
                stamp = time_to_sec(traj.header.stamp)
                self.interp.set_trajectory(
                    at,
                    stamp if stamp > 0 else at,
                    traj.joint_names,
                    [duration_to_sec(pt.time_from_start) for pt in traj.points],
                    [list(pt.positions) for pt in traj.points],
                    [list(pt.velocities) for pt in traj.points] if all(pt.velocities for pt in traj.points) else None,
                )
            except (TrajectoryRejected, ValueError) as exc:
                self.get_logger().warning(f"trajectory rejected: {exc}", throttle_duration_sec=2.0)
        if width is not None:
            self._gripper_cmd = width
        if self._waiting:
            if traj is None and mono < self._wait_until:
                self._publish_joint_state_now(now)  # the world stands still; sensors keep publishing
                self._camera_if_due(now)
                return
            self._waiting = False
            self.get_logger().info(
                "first command: episode clock starts" if traj is not None else "no command yet: starting anyway"
            )
            dt = 0.0
        # This tick simulates the wall-clock interval [now - dt, now]; the follower is sampled inside it.
        t0, gripper = now - dt, self._gripper_cmd
        with self._sim_lock:
            if self._closed:
                return
            try:
                self.env.advance(dt, command=lambda offset: (self.interp.sample(t0 + offset)[0], gripper))
            except ValueError as exc:
                self.get_logger().warning(f"command ignored: {exc}", throttle_duration_sec=2.0)
            done = self.env.episode_status().done
            if now >= self._next_js:
                self._next_js = now + self._js_period
                self._publish_joint_state(self.env.observe())
        if done:
            self._end_episode()
        self._camera_if_due(now)

    def _publish_joint_state_now(self, now: float) -> None:
        with self._sim_lock:
            if self._closed or now < self._next_js:
                return
            self._next_js = now + self._js_period
            obs = self.env.observe()
        self._publish_joint_state(obs)

    def _publish_joint_state(self, obs: dict) -> None:
        js = JointState()
        js.header.stamp = self.get_clock().now().to_msg()
        js.name = [*self.arm_joints, *PANDA_FINGERS]
        half = 0.5 * float(obs["gripper_width"])
        js.position = [*map(float, obs["joint_pos"]), half, half]
        js.velocity = [*map(float, obs["joint_vel"]), 0.0, 0.0]
        self.js_pub.publish(js)

    def _camera_if_due(self, now: float) -> None:
        if self._finish_at is not None or now < self._next_image:
            return
        # next frame one period on; after a stall, from now (no burst of catch-up frames)
        self._next_image = max(self._next_image + self._image_period, now)
        stamp = self.get_clock().now().to_msg()  # the observation time: when the scene was as rendered
        with self._sim_lock:
            if self._closed:
                return
            rgb = self.env.render()
        self.image_pub.publish(rgb_to_image(rgb, stamp, frame_id="scene_camera"))

    def close(self) -> None:
        with self._sim_lock:
            self._closed = True
            self.env.close()


def main(argv: list[str] | None = None) -> int:
    return run_node(SimNode, argv, threads=1)


if __name__ == "__main__":
    raise SystemExit(main())
