"""Real-time mode of the closed-loop evaluation: the ROS loop's asynchrony, replayed on a simulated clock.

``fast-dvla-sim-eval --realtime`` (or ``evaluate(..., realtime=True)``). The synchronous evaluation waits
for every decode; the ROS loop does not. This mode runs the loop's own ROS-free parts on one simulated
timeline, wired as the three nodes wire them, so its success predicts the loop's:

* the simulator node: physics ticks at ``physics_hz`` simulating the interval that just passed, the JTC
  follower (``JtcInterpolator``) sampled every substep and started from each trajectory's arrival time,
  joint states at ``joint_state_hz`` and camera frames at ``camera_hz`` published after the tick, an
  ``EpisodeStart`` at each reset, and the first episode held still until the first command;
* the policy node: a ``PolicyRunner`` that decodes each new frame when its one decode thread is free; a
  decode takes the measured wall time of the real decode (or ``decode_latency_s``, or a draw from a
  loop's measured latencies), and its chunk reaches the executor ``delivery_s`` later;
* the executor node: an ``ExecutorCore`` ticking at ``control_hz`` (phase independent of physics), sending
  a trajectory also when a chunk is accepted (``command_on_chunk``), commands reaching the simulator
  ``command_delivery_s`` later.

Episodes follow each other on one timeline, as in the loop: a chunk decoded before a reset can arrive
after it and must be dropped by the same rules (EpisodeStart). Node settings come from the same parameter
file as the loop (config/sim_conveyor.yaml), so both run one configuration.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fast_dvla_ros.core.policy import Policy, PolicyResult
from fast_dvla_ros.core.policy_runner import PendingObservation, PolicyRunner
from fast_dvla_ros.execution import ChunkBlender, ExecutorCore, ReceivedChunk, TickCommand, load_joint_limits
from fast_dvla_ros.execution.gripper import GripperSettings
from fast_dvla_ros.execution.jtc_interpolator import JtcInterpolator, TrajectoryRejected

DEFAULT_PARAMS = Path(__file__).resolve().parents[2] / "config" / "sim_conveyor.yaml"


@dataclass
class RealtimeSettings:
    """Rates and delays of the loop. ``from_params_file`` reads the node parameters the loop runs with."""

    control_hz: float = 30.0
    physics_hz: float = 60.0
    camera_hz: float = 30.0
    joint_state_hz: float = 60.0
    max_observation_age_s: float = 0.5
    decode_latency_s: float | None = None  # fixed decode time; None: measured (or drawn, see below)
    decode_latencies_s: np.ndarray | None = None  # draw each decode's time from these (a loop's measured ones)
    latency_scale: float = 1.0  # multiplies measured decode times (CPU shared with the other nodes)
    render_s: float = 0.004  # camera frame: rendered after the physics tick, then sent
    delivery_s: float = 0.004  # chunk: publish -> executor (measured p50 3.8 ms in bench/loop.py)
    sensor_delivery_s: float = 0.001
    command_delivery_s: float = 0.001
    executor_phase: float = 0.37  # executor tick offset in control periods (the nodes' timers are unaligned)
    blend_mode: str = "temporal_ensemble"
    ensemble_m: float = 0.1
    velocity_scale: float = 0.9
    n_points: int = 8
    watchdog_timeout_s: float = 0.5
    joint_state_timeout_s: float = 0.5
    reanchor_tolerance: float = 0.5
    command_on_chunk: bool = True
    action_prefix_steps: int = 0  # latency-compensated decoding: longest action prefix (-1: the checkpoint's, 0: off)
    gripper: GripperSettings = field(default_factory=GripperSettings)  # the executor's open/closed decisions
    wait_for_first_command: bool = True
    reset_settle_s: float = 0.1  # the simulator node ignores commands arriving this long after a reset
    seed: int = 0  # for latency draws
    sim: dict[str, Any] = field(default_factory=dict)  # SimConfig overrides (belt speeds, time limit, ...)

    @classmethod
    def from_params_file(cls, path: str | Path = DEFAULT_PARAMS, **overrides: Any) -> RealtimeSettings:
        from fast_dvla_ros.params_file import node_parameters

        sim, pol, ex = (node_parameters(path, n) for n in ("conveyor_sim", "fast_dvla_policy", "chunk_executor"))
        kw: dict[str, Any] = {
            "physics_hz": float(sim.get("physics_rate_hz", cls.physics_hz)),
            "camera_hz": float(sim.get("image_rate_hz", cls.camera_hz)),
            "joint_state_hz": float(sim.get("joint_state_rate_hz", cls.joint_state_hz)),
            "wait_for_first_command": bool(sim.get("wait_for_first_command", True)),
            "reset_settle_s": float(sim.get("reset_settle_s", cls.reset_settle_s)),
            "max_observation_age_s": float(pol.get("max_observation_age_s", cls.max_observation_age_s)),
            "action_prefix_steps": int(pol.get("action_prefix_steps", cls.action_prefix_steps)),
            "control_hz": float(ex.get("control_rate_hz", cls.control_hz)),
            "blend_mode": str(ex.get("blend_mode", cls.blend_mode)),
            "ensemble_m": float(ex.get("ensemble_decay", cls.ensemble_m)),
            "velocity_scale": float(ex.get("velocity_scale", cls.velocity_scale)),
            "n_points": int(ex.get("trajectory_points", cls.n_points)),
            "watchdog_timeout_s": float(ex.get("chunk_timeout_s", cls.watchdog_timeout_s)),
            "joint_state_timeout_s": float(ex.get("max_joint_state_age_s", cls.joint_state_timeout_s)),
            "reanchor_tolerance": float(ex.get("reanchor_tolerance_rad", cls.reanchor_tolerance)),
            "command_on_chunk": bool(ex.get("command_on_chunk", True)),
            "gripper": GripperSettings.from_params(ex),
            "sim": {
                "belt_speed_range": (float(sim.get("belt_speed_min", 0.03)), float(sim.get("belt_speed_max", 0.08))),
                "image_size": int(sim.get("image_size", 96)),
                "episode_time_limit": float(sim.get("episode_time_limit_s", 10.0)),
            },
        }
        kw.update(overrides)
        return cls(**kw)


@dataclass
class RealtimeStats:
    """Timing seen on the simulated clock (seconds), one value per chunk."""

    camera_age: list[float] = field(default_factory=list)
    decode: list[float] = field(default_factory=list)
    obs_to_command: list[float] = field(default_factory=list)
    forwards: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    prefix_steps: list[int] = field(default_factory=list)
    seam_velocity_jump: list[float] = field(default_factory=list)  # rad/s, per accepted chunk after the first
    seam_acceleration_jump: list[float] = field(default_factory=list)  # rad/s^2
    chunks_published: int = 0
    chunks_dropped_reset: int = 0


class RealtimeLoop:
    """One simulated timeline running episodes back to back (see module doc)."""

    def __init__(self, policy: Policy, settings: RealtimeSettings) -> None:
        from fast_dvla_ros.sim.conveyor_env import ConveyorPickEnv, SimConfig

        self.policy = policy
        self.s = settings
        self.env = ConveyorPickEnv(SimConfig(**settings.sim))
        self.names = list(self.env.action_names[:7])
        limits = load_joint_limits("panda")
        if list(limits.joint_names) != self.names:
            limits = limits.renamed(self.names)
        self.t = 0.0
        self.runner = PolicyRunner(
            policy, action_rate_hz=self.env.control_hz, max_age_s=settings.max_observation_age_s,
            instruction="", clock=lambda: self.t, prefix_steps=settings.action_prefix_steps,
        )
        self.core = ExecutorCore(
            limits,
            blender=ChunkBlender(settings.blend_mode, ensemble_m=settings.ensemble_m),
            control_period=1.0 / settings.control_hz,
            n_points=settings.n_points,
            velocity_scale=settings.velocity_scale,
            watchdog_timeout_s=settings.watchdog_timeout_s,
            joint_state_timeout_s=settings.joint_state_timeout_s,
            reanchor_tolerance=settings.reanchor_tolerance,
            gripper=settings.gripper,
        )
        self.stats = RealtimeStats()
        self._rng = np.random.default_rng(settings.seed)
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._decoder_busy = False
        self._last_decode_start = -math.inf
        self._pending_chunks: list[tuple[float, float]] = []  # (image stamp, arrival) awaiting a command
        self._traj: tuple[TickCommand, float] | None = None  # newest command at the simulator, arrival time
        self._gripper_cmd = 0.08
        self._waiting_for_command = settings.wait_for_first_command
        self._seq = 0
        self._ignore_until = -math.inf
        self._outcome: dict | None = None
        self._started = False
        self._seed = 0

    # ------------------------------------------------------------------ event queue
    def _at(self, t: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._events, (t, next(self._order), fn))

    def close(self) -> None:
        self.env.close()

    # ------------------------------------------------------------------ episodes
    def run_episode(self, seed: int) -> dict:
        """Reset the scene at the current time (EpisodeStart) and run until the simulator ends the episode."""
        self._outcome, self._seed = None, int(seed)
        self.env.reset(seed=seed)
        q = self.env.observe()["joint_pos"]
        self.interp = JtcInterpolator(self.names, q)
        self.interp.reset(q, self.t)
        self._traj, self._gripper_cmd = None, float(self.env.command[1])
        if self._started:  # the first episode's reset follows no other: nothing can be in flight
            self._ignore_until = self.t + self.s.reset_settle_s
        self._commands = 0
        changes_before = self.core.gripper.changes
        # the reset follows the last tick's sensor messages (stamped self.t): its stamp is just after them
        stamp, instruction = self.t + 1e-6, self.env.instruction
        self._at(self.t + self.s.sensor_delivery_s, lambda: self.runner.start_episode(stamp, instruction))
        self._at(self.t + self.s.sensor_delivery_s, lambda: self.core.start_episode(stamp, self.t))
        if not self._started:
            self._schedule_periodic()
        while self._outcome is None:
            t, _, fn = heapq.heappop(self._events)
            self.t = t
            fn()
        self._outcome["gripper_changes"] = self.core.gripper.changes - changes_before
        return self._outcome

    def _schedule_periodic(self) -> None:
        self._started = True
        physics = 1.0 / self.s.physics_hz
        control = 1.0 / self.s.control_hz
        self._last_physics = self.t
        self._next_js = self.t
        self._next_image = self.t
        self._at(self.t + physics, self._physics_tick)
        self._at(self.t + self.s.executor_phase * control, self._executor_tick)

    # ------------------------------------------------------------------ simulator node
    def _physics_tick(self) -> None:
        now = self.t
        self._at(now + 1.0 / self.s.physics_hz, self._physics_tick)
        dt, self._last_physics = now - self._last_physics, now
        received, self._traj = self._traj, None
        if received is not None:
            cmd, at = received
            try:
                assert cmd.times_from_start is not None and cmd.positions is not None
                self.interp.set_trajectory(at, at, self.names, cmd.times_from_start, cmd.positions, cmd.velocities)
            except (TrajectoryRejected, ValueError, AssertionError):
                pass
            if cmd.gripper is not None:
                self._gripper_cmd = float(cmd.gripper)
        if self._waiting_for_command:
            if received is None:
                self._publish_sensors(now)
                return
            self._waiting_for_command = False
            dt = 0.0
        t0, gripper = now - dt, self._gripper_cmd
        self.env.advance(dt, command=lambda offset: (self.interp.sample(t0 + offset)[0], gripper))
        st = self.env.episode_status()
        self._publish_sensors(now)
        if st.done:
            self._outcome = {
                "seed": self._seed, "success": bool(st.success), "failure_cause": st.failure_cause,
                "steps": round(st.time_s * self.env.control_hz), "belt_speed": float(self.env.belt_speed),
                "first_close_distance": float(st.first_close_distance), "commands": self._commands,
            }

    def _publish_sensors(self, now: float) -> None:
        if now >= self._next_js - 1e-9:
            self._next_js += 1.0 / self.s.joint_state_hz
            obs = self.env.observe()
            q = np.asarray(obs["joint_pos"], dtype=np.float64)
            joints = np.append(q, float(obs["gripper_width"]))
            self._at(now + self.s.sensor_delivery_s, lambda: self._on_joint_state(joints, now))
        if now >= self._next_image - 1e-9:
            self._next_image = max(self._next_image + 1.0 / self.s.camera_hz, now)
            rgb = self.env.render()
            self._at(now + self.s.render_s + self.s.sensor_delivery_s, lambda: self._on_image(rgb, now))

    # ------------------------------------------------------------------ policy node
    def _on_joint_state(self, joints: np.ndarray, stamp: float) -> None:
        self.runner.on_joints(joints.astype(np.float32), stamp)
        self.core.update_joint_state(self.names, joints[:7], self.t, stamp=stamp)

    def _on_image(self, rgb: np.ndarray, stamp: float) -> None:
        if self.runner.on_image(rgb, stamp):
            self._start_decode()

    def _start_decode(self) -> None:
        if self._decoder_busy:
            return
        period = 0.9 / self.s.control_hz  # the policy node's gate (policy_node.py says why 0.9)
        if self.t < self._last_decode_start + period - 1e-9:
            self._at(self._last_decode_start + period, self._start_decode)
            return
        pending = self.runner.wait_for_observation(timeout_s=0.0)
        if not isinstance(pending, PendingObservation):
            return
        self._decoder_busy, self._last_decode_start = True, self.t
        t_wall = time.perf_counter()
        result = self.runner.decode(pending)
        latency = self._decode_time(time.perf_counter() - t_wall)
        self.stats.camera_age.append(pending.age_s)
        self.stats.decode.append(latency)
        self.stats.forwards.append(int(result.stats.forward_passes))
        self.stats.tokens.append(int(result.stats.tokens_committed))
        self.stats.prefix_steps.append(int(result.prefix_steps))
        self._at(self.t + latency, lambda: self._decoded(result, pending, latency))

    def _decode_time(self, measured: float) -> float:
        if self.s.decode_latency_s is not None:
            return float(self.s.decode_latency_s)
        if self.s.decode_latencies_s is not None and len(self.s.decode_latencies_s):
            return float(self._rng.choice(self.s.decode_latencies_s))
        return measured * self.s.latency_scale

    def _decoded(self, result: PolicyResult, pending: PendingObservation, latency: float) -> None:
        self._decoder_busy = False
        self.runner.observe_decode(latency)
        if self.runner.still_current(pending):
            self._seq += 1
            seq = self._seq
            self.stats.chunks_published += 1
            self.runner.published(pending, result, seq)
            self._at(self.t + self.s.delivery_s, lambda: self._on_chunk(result, pending.image_stamp, seq))
        else:
            self.stats.chunks_dropped_reset += 1
        self._start_decode()  # a frame that arrived while decoding is taken at once

    # ------------------------------------------------------------------ executor node
    def _on_chunk(self, result: PolicyResult, stamp: float, seq: int) -> None:
        a = np.asarray(result.actions, dtype=np.float64)
        accepted = self.core.add_chunk(self.t, ReceivedChunk(
            joint_names=self.names, actions=a[:, :7].reshape(-1), gripper=a[:, 7], horizon=a.shape[0],
            step_period=1.0 / self.env.control_hz, stamp=stamp, sequence_id=seq, action_kind="joint_position",
            prefix_steps=int(result.prefix_steps),
        ))
        if accepted:
            c = self.core.counters
            if math.isfinite(c.seam_velocity_jump):
                self.stats.seam_velocity_jump.append(c.seam_velocity_jump)
                self.stats.seam_acceleration_jump.append(c.seam_acceleration_jump)
            self._pending_chunks.append((stamp, self.t))
            if self.s.command_on_chunk:
                self._send(self.core.tick(self.t))

    def _executor_tick(self) -> None:
        self._at(self.t + 1.0 / self.s.control_hz, self._executor_tick)
        self._send(self.core.tick(self.t))
        if self.runner.prefix_steps:  # the executor node publishes ~/plan after every tick
            plan, stamp, seq = self.core.plan(self.t, self.policy.horizon), self.t, self.core.counters.last_sequence_id
            if plan is not None:
                dt = 1.0 / self.env.control_hz
                self._at(self.t + self.s.delivery_s, lambda: self.runner.on_plan(plan, stamp, dt, seq))

    def _send(self, cmd: TickCommand) -> None:
        if cmd.positions is None:
            return
        for stamp, _ in self._pending_chunks:
            self.stats.obs_to_command.append(self.t - stamp)
        self._pending_chunks.clear()
        self._commands += 1
        arrival = self.t + self.s.command_delivery_s
        self._at(arrival, lambda: self._deliver(cmd, arrival))

    def _deliver(self, cmd: TickCommand, arrival: float) -> None:
        if arrival < self._ignore_until:  # the simulator node's reset_settle_s
            return
        self._traj = (cmd, arrival)  # the simulator node keeps the newest, applied at its next physics tick


def run_realtime(policy: Policy, seeds: list[int], settings: RealtimeSettings | None = None,
                 progress: Callable[[dict], None] | None = None) -> tuple[list[dict], RealtimeStats]:
    """Episodes ``seeds`` back to back on one simulated timeline; per-episode outcomes and timing."""
    loop = RealtimeLoop(policy, settings or RealtimeSettings.from_params_file())
    out = []
    try:
        for seed in seeds:
            out.append(loop.run_episode(seed))
            if progress is not None:
                progress(out[-1])
    finally:
        loop.close()
    return out, loop.stats
