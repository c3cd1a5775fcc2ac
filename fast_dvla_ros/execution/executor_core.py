"""The chunk executor's decisions, one ``tick`` per control period, free of ROS.

State machine (same numbers as msg/ExecutorStatus.msg):

* WAITING_FOR_JOINT_STATE - no valid joint state yet: nothing is commanded, ever.
* WAITING_FOR_CHUNK - the arm's position is known, no plan yet. Before anything was ever commanded,
  nothing is sent (the controller keeps holding on its own). After an episode start
  (``start_episode``) or a re-anchor (the measured arm more than ``reanchor_tolerance`` away from the
  command: an external reset, a reflex stop), the plan is dropped and every tick commands a hold at
  the pose measured after it, so the controller stops following the trajectory it was last sent.
* EXECUTING - the upcoming points of the blended plan, made feasible by the SafetyFilter.
* HOLDING - watchdog tripped (no fresh chunk) or the joint state went stale: a trajectory that
  holds the last safe commanded position with zero velocity.
* ROBOT_ERROR - the robot reported a reflex or an error (``set_robot_error``): nothing is streamed (the
  robot's controllers stopped; a queued trajectory would run on recovery) until ``recover``, which
  opens a new epoch like an episode start and holds at the pose measured after it.

The gripper channel goes through a GripperDecider (execution/gripper.py): the command is open or
closed, with hysteresis and a minimum dwell, for the simulator's width topic and the real hand alike.

Episode boundaries. An episode start or a re-anchor opens a new *epoch* at the time of the event:
chunks decoded from observations stamped before it, and joint states stamped before it, belong to a
situation that no longer exists and are dropped (counted in ``chunks_superseded``). Without this, a
chunk decoded just before a reset arrived just after it, and the temporal ensemble, which weights the
oldest chunk most, let it steer the first steps of the new episode (issue 18).

``q_ref`` is the position the executor commanded for "now" at the previous tick. Every output is
rate-limited against it, so whatever the policy does, consecutive commands differ by at most
``v_max * dt * velocity_scale`` per joint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from fast_dvla_ros.core.actuation import step_times
from fast_dvla_ros.execution.blender import ChunkBlender, finite_difference_velocities
from fast_dvla_ros.execution.gripper import GripperDecider, GripperSettings
from fast_dvla_ros.execution.limits import JointLimits
from fast_dvla_ros.execution.observation_guard import ObservationError, check_within_limits, pick_joints
from fast_dvla_ros.execution.safety import ChunkRejected, ReceivedChunk, SafetyFilter, validate_chunk
from fast_dvla_ros.execution.watchdog import Watchdog


class ExecutorState(IntEnum):
    WAITING_FOR_JOINT_STATE = 0
    WAITING_FOR_CHUNK = 1
    EXECUTING = 2
    HOLDING = 3
    ROBOT_ERROR = 4


@dataclass
class TickCommand:
    """What to send this tick; ``positions`` None means send no trajectory."""

    state: ExecutorState
    times_from_start: np.ndarray | None = None  # [N] s
    positions: np.ndarray | None = None  # [N, J]
    velocities: np.ndarray | None = None  # [N, J]
    gripper: float | None = None  # the decided width (GripperDecider), None: no gripper command
    gripper_closed: bool | None = None


@dataclass
class ExecutorCounters:
    chunks_received: int = 0
    chunks_rejected: int = 0
    steps_dropped_stale: int = 0
    underruns: int = 0
    watchdog_trips: int = 0
    clamped_values: int = 0
    chunks_superseded: int = 0  # observed before the last episode start or re-anchor
    gripper_changes: int = 0  # open <-> closed decisions
    last_sequence_id: int = 0
    # The switch-over of the last accepted chunk: how much the plan's velocity (rad/s) and acceleration
    # (rad/s^2) at "now" changed when it arrived, worst joint (NaN: no plan before it). A step change the
    # JTC passes on to the arm; what latency-compensated decoding (blend mode action_prefix) must keep small.
    seam_velocity_jump: float = math.nan
    seam_acceleration_jump: float = math.nan
    last_event: str = ""
    # Events since the node last drained them (it logs them after each tick). While one is pending, the
    # routine "output limited" note does not overwrite last_event, so every discrete event reaches a status.
    events: list[str] = field(default_factory=list)

    def event(self, text: str) -> None:
        self.last_event = text
        self.events.append(text)
        del self.events[:-20]

    def take_events(self) -> list[str]:
        """The events since the last call (the node logs them), oldest first; a tick with several names all."""
        events, self.events = self.events, []
        if events:  # a watchdog trip and a re-anchor can share a tick: the status names both
            self.last_event = "; ".join(events)
        return events


class ExecutorCore:
    def __init__(
        self,
        limits: JointLimits,
        *,
        blender: ChunkBlender | None = None,
        control_period: float = 1.0 / 30.0,
        n_points: int = 8,
        velocity_scale: float = 0.5,
        watchdog_timeout_s: float = 0.5,
        joint_state_timeout_s: float = 0.5,
        reanchor_tolerance: float = 0.5,
        gripper: GripperSettings | None = None,
        follow_measured: bool = False,
    ) -> None:
        """``follow_measured`` (dry run): the arm does not follow the commands, so every tick plans from the
        measured pose (the rate limit then bounds the step from where the arm really is) and never re-anchors."""
        if not (math.isfinite(control_period) and control_period > 0):
            raise ValueError("control_period must be > 0")
        if n_points < 2:
            raise ValueError("n_points must be >= 2 (one-point trajectories trip the robot's reflexes)")
        self.limits = limits
        self.blender = blender or ChunkBlender()
        self.dt = float(control_period)
        self.n_points = int(n_points)
        self.safety = SafetyFilter(limits, velocity_scale)
        self.watchdog = Watchdog(watchdog_timeout_s)
        self.joint_state_timeout_s = float(joint_state_timeout_s)
        self.reanchor_tolerance = float(reanchor_tolerance)
        self.counters = ExecutorCounters()
        self.gripper = GripperDecider(gripper or GripperSettings(open_width_m=limits.gripper_width_max))
        self.follow_measured = bool(follow_measured)
        self.robot_error = ""  # non-empty: the robot reported this error; nothing streams until recover()
        self.state = ExecutorState.WAITING_FOR_JOINT_STATE
        self.q_measured: np.ndarray | None = None
        self.q_measured_time = -math.inf
        self.q_ref: np.ndarray | None = None
        self.g_ref: float | None = None  # None: no gripper command yet in this epoch (the gripper keeps its own)
        self.last_chunk_stamp: float | None = None
        self._last_tick: float | None = None
        self.epoch = -math.inf  # time of the last episode start / re-anchor (see module doc)
        self._hold_when_waiting = False  # something was commanded before: a wait must hold, not go silent

    # ------------------------------------------------------------------ inputs
    def update_joint_state(
        self, names: Sequence[str], positions: Sequence[float], now: float, stamp: float | None = None
    ) -> bool:
        """Take a joint state (joints picked by name); NaN/missing joints, or positions outside the joint
        limits (beyond a small margin), are ignored and reported.

        ``stamp`` = the measurement time (header stamp; None or 0: unknown, taken as ``now``). A state
        measured before the current epoch (an episode start) describes the previous episode: ignored.
        """
        if stamp and stamp < self.epoch:
            return False
        try:
            q = pick_joints(names, positions, self.limits.joint_names)
            # Outside the arm's limits: not where the arm is; re-anchoring to it would command a jump (issue 19)
            check_within_limits(q, self.limits.joint_names, self.limits.lower, self.limits.upper)
        except ObservationError as exc:
            self.counters.event(f"joint state ignored: {exc}")
            return False
        self.q_measured, self.q_measured_time = q, now
        return True

    def start_episode(self, stamp: float, now: float) -> None:
        """A new episode began at ``stamp`` (EpisodeStart): drop the plan and everything observed before it,
        forget the arm's pose until a joint state measured after the reset arrives, then hold there."""
        # _hold_when_waiting stays as it was: a hold is needed only if the controller may still be following a
        # trajectory of ours. Before the first command it would also tell a cell waiting for the robot to be
        # ready (the simulator's wait_for_first_command) that it is, while the policy still loads.
        self._new_epoch(min(stamp, now) if stamp > 0 else now)
        self.counters.event(f"episode start at {self.epoch:.3f}: plan dropped, holding until a new chunk")

    def _new_epoch(self, at: float) -> None:
        self.epoch = max(self.epoch, at)
        self.blender.clear()
        self.q_measured, self.q_measured_time = None, -math.inf
        self.q_ref, self.g_ref = None, None
        self.gripper.reset()
        self.watchdog.restart()
        self.state = ExecutorState.WAITING_FOR_JOINT_STATE

    def set_robot_error(self, reason: str, now: float) -> None:
        """The robot stopped on a reflex or reports an error: stop streaming until ``recover``."""
        if self.robot_error:
            return
        self.robot_error = reason or "unknown robot error"
        self.blender.clear()
        self.state = ExecutorState.ROBOT_ERROR
        self.counters.event(f"robot error: {self.robot_error}: streaming stopped; recover with ~/recover")

    def recover(self, now: float) -> None:
        """The robot's error was cleared: a new epoch (chunks observed before it are dropped), then hold at
        the pose measured after it until a new chunk arrives."""
        was = self.robot_error
        self.robot_error = ""
        self._new_epoch(now)
        self._hold_when_waiting = True
        self.counters.event(f"recovered from '{was}': re-anchored, holding until a new chunk")

    def add_chunk(self, now: float, received: ReceivedChunk) -> bool:
        """Validate and blend a chunk (see validate_chunk); False if rejected or useless."""
        c = self.counters
        c.chunks_received += 1
        if self.q_measured is None:
            # Without a joint state the plan cannot be anchored to the arm: nothing is planned yet.
            c.event(f"chunk {received.sequence_id} ignored: no valid joint state yet")
            return False
        try:
            chunk, clamp = validate_chunk(limits=self.limits, now=now, **received.fields())  # type: ignore[arg-type]
        except (ChunkRejected, TypeError, ValueError) as exc:
            c.chunks_rejected += 1
            c.event(f"chunk rejected: {exc}")
            return False
        if chunk.stamp < self.epoch:
            c.chunks_superseded += 1
            c.event(
                f"chunk {chunk.sequence_id} dropped: observed {self.epoch - chunk.stamp:.3f} s before the last "
                "episode start / re-anchor"
            )
            return False
        if clamp.count:
            c.clamped_values += clamp.count
            if clamp.event:  # sub-millimetre overhangs are counted only (an empty event logged blank warnings)
                c.event(clamp.event)
        anchor = None
        if self.q_ref is not None:
            anchor = np.concatenate([self.q_ref, [chunk.gripper[0] if self.g_ref is None else self.g_ref]])
        before = self._plan_derivatives(now)
        result = self.blender.add(chunk, now, anchor=anchor)
        c.steps_dropped_stale += result.steps_dropped
        if not result.accepted:
            c.event(result.reason)
            return False
        after = self._plan_derivatives(now)
        if before is not None and after is not None:
            c.seam_velocity_jump = float(np.max(np.abs(after[0] - before[0])))
            c.seam_acceleration_jump = float(np.max(np.abs(after[1] - before[1])))
        else:
            c.seam_velocity_jump = c.seam_acceleration_jump = math.nan
        c.last_sequence_id = chunk.sequence_id
        self.last_chunk_stamp = chunk.stamp
        self.watchdog.feed(now)
        return True

    def _plan_derivatives(self, now: float) -> tuple[np.ndarray, np.ndarray] | None:
        """The plan's joint velocity and acceleration at ``now`` (one-step differences), None without a plan."""
        if self.blender.empty:
            return None
        j, dt = len(self.limits.joint_names), self.dt
        p = np.stack([self.blender.sample(now + k * dt)[:j] for k in range(3)])  # type: ignore[index]
        return (p[1] - p[0]) / dt, (p[2] - 2.0 * p[1] + p[0]) / dt**2

    def plan(self, now: float, steps: int) -> np.ndarray | None:
        """The plan ahead as a chunk observed ``now``: [steps, J+1] (joints, gripper) at ``now + (i + 1/2) dt``
        (the chunk step convention, core/actuation.py); None unless executing one. What the policy copies
        into a chunk's action prefix (latency-compensated decoding; the executor's ``~/plan`` topic)."""
        if self.state != ExecutorState.EXECUTING or self.blender.empty or steps < 1:
            return None
        return np.stack([self.blender.sample(float(t)) for t in step_times(now, steps, self.dt)])  # type: ignore[misc]

    # ------------------------------------------------------------------ output
    def tick(self, now: float) -> TickCommand:
        elapsed = self.dt if self._last_tick is None else min(max(now - self._last_tick, 0.0), 2.0 * self.dt)
        self._last_tick = now
        if self.robot_error:
            self.state = ExecutorState.ROBOT_ERROR
            return TickCommand(self.state)
        if self.q_measured is None:
            self.state = ExecutorState.WAITING_FOR_JOINT_STATE
            return TickCommand(self.state)
        waiting = self.state in (ExecutorState.WAITING_FOR_JOINT_STATE, ExecutorState.WAITING_FOR_CHUNK)
        if self.q_ref is None or (waiting and not self._hold_when_waiting) or self.follow_measured:
            # Track the arm until we command it; after an epoch, hold the first pose measured in it (tracking
            # the measurement of a held arm would let it sag under gravity, a step at a time).
            self.q_ref = self.q_measured.copy()
        if self.blender.empty and self.watchdog.last_feed is None:
            return self._wait_for_chunk()
        if now - self.q_measured_time > self.joint_state_timeout_s:
            # Checked before the re-anchor below: never re-anchor to a measurement we no longer trust.
            return self._hold(now, "joint state stale: holding")
        was_tripped = self.watchdog.tripped
        starved = self.watchdog.check(now)  # also after a re-anchor emptied the plan: the policy is gone either way
        if starved and not was_tripped:
            self.counters.watchdog_trips = self.watchdog.trips
            self.counters.event(f"watchdog: no chunk for {self.watchdog.age(now):.2f} s, holding")
        drift = float(np.max(np.abs(self.q_measured - self.q_ref)))
        if drift > self.reanchor_tolerance:
            # The arm is far from where we command it (reset, reflex stop, collision): dragging it back at
            # full speed would be dangerous, and the stored plan belongs to a situation that no longer exists.
            # Last event of the tick on purpose: status shows every re-anchor (a command jump to the arm).
            self.counters.event(
                f"arm {drift:.2f} rad from the command: plan of chunk {self.counters.last_sequence_id} dropped, "
                "re-anchored"
            )
            self.blender.clear()
            self.q_ref = self.q_measured.copy()
            self.gripper.reset()
            # Chunks in flight were decoded from the situation before the jump: only newer ones may plan.
            self.epoch = max(self.epoch, self.q_measured_time)
            self._hold_when_waiting = True
        if starved:
            return self._hold(now, None)
        if self.blender.empty:  # re-anchored, waiting for the next chunk
            return self._wait_for_chunk()
        return self._execute(now, elapsed)

    def _wait_for_chunk(self) -> TickCommand:
        """No plan: silent before the first command ever, else a hold at the pose measured at the epoch."""
        self.state = ExecutorState.WAITING_FOR_CHUNK
        if not self._hold_when_waiting:
            return TickCommand(self.state)
        return self._hold_command()

    def _hold(self, now: float, event: str | None) -> TickCommand:
        if event and self.state != ExecutorState.HOLDING:
            self.counters.event(event)
        self.state = ExecutorState.HOLDING
        return self._hold_command()

    def _hold_command(self) -> TickCommand:
        """A trajectory that keeps ``q_ref`` with zero velocity, in the current state."""
        assert self.q_ref is not None
        n = self.n_points
        return TickCommand(
            self.state,
            times_from_start=self.dt * np.arange(1, n + 1, dtype=np.float64),
            positions=np.repeat(self.q_ref[None, :], n, axis=0),
            velocities=np.zeros((n, self.q_ref.size)),
            gripper=self.g_ref,
            gripper_closed=self.gripper.closed,
        )

    def _execute(self, now: float, elapsed: float) -> TickCommand:
        assert self.q_ref is not None
        self.state = ExecutorState.EXECUTING
        c = self.counters
        up = self.blender.upcoming(now, self.dt, self.n_points)
        assert up is not None
        offsets, values = up
        j = self.q_ref.size
        if now > self.blender.end_time():
            c.underruns += 1
        q_all, n_pos = self.safety.clamp_position(values[:, :j])
        q0, n0 = self.safety.rate_limit(self.q_ref, q_all[:1], max(elapsed, 1e-3))
        pts, n_rate = self.safety.rate_limit(q0[0], q_all[1:], self.dt)
        end_at_rest = now + offsets[-1] >= self.blender.end_time()
        vel = finite_difference_velocities(np.concatenate([q0, pts]), self.dt, end_at_rest)[1:]
        vel, n_vel = self.safety.clamp_velocity(vel)
        n = n_pos + n0 + n_rate + n_vel
        if n:
            c.clamped_values += n
            if not c.events:  # a discrete event (rejection, chunk clamp) not yet reported wins over this routine note
                c.last_event = f"output limited: {n_pos} position, {n0 + n_rate} rate, {n_vel} velocity clamps"
        self.q_ref = q0[0]
        closed = self.gripper.decide(float(values[1, j]), now)
        c.gripper_changes = self.gripper.changes
        self.g_ref = self.gripper.width()
        self._hold_when_waiting = True
        return TickCommand(self.state, offsets[1:].copy(), pts, vel, self.g_ref, closed)

    # ------------------------------------------------------------------ status
    def chunk_age(self, now: float) -> float:
        return math.nan if self.last_chunk_stamp is None else now - self.last_chunk_stamp

    def steps_remaining(self, now: float) -> int:
        return self.blender.steps_remaining(now)
