"""PyBullet conveyor-picking environment: a Panda grasps a block moving on a belt and drops it in a bin.

Two ways in (docs/CONTRACTS.md):

* Gymnasium-style, for data generation and closed-loop evaluation: ``reset(seed)`` and
  ``step(action8)``, one 30 Hz control step = 8 physics substeps at 240 Hz.
* Lower level, for the real-time ROS sim node, which runs physics on wall-clock time and renders
  at its own rate: ``set_command``, ``advance(seconds)``, ``observe``, ``render``, ``episode_status``.

Why these choices:

* No simulator has a conveyor, so the belt is a static frictionless box and the block is driven by
  setting its linear velocity in every substep while it lies on the belt and no finger touches it.
  A belt with friction would brake the block inside each physics step.
* A fresh ``resetSimulation`` per episode (instead of resetting body states) makes a seed
  reproduce the same trajectory bit for bit: Bullet keeps contact caches across state resets.
* The env never mixes its own randomness with global state: every random draw comes from the
  ``numpy.random.Generator`` seeded in ``reset``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pybullet

from fast_dvla_ros.core.actuation import hold_sample_time
from fast_dvla_ros.sim import scene
from fast_dvla_ros.sim.config import CONTROL_HZ, PHYSICS_HZ, SimConfig

__all__ = ["ConveyorPickEnv", "EpisodeStatus", "SimConfig"]

SUBSTEPS_PER_CONTROL = PHYSICS_HZ // CONTROL_HZ
_DT = 1.0 / PHYSICS_HZ
# A block counts as lying on the belt when its bottom face is within this distance of the belt top.
_ON_BELT_TOLERANCE = 0.006
# A block that has been lifted this far above the belt while touching the fingers was grasped.
_LIFT_HEIGHT = 0.03

FAILURE_CAUSES = ("timeout", "missed", "dropped", "knocked_off", "sim_error")


@dataclass
class EpisodeStatus:
    """Outcome so far. Latched: the first terminal outcome of an episode never changes."""

    done: bool = False
    success: bool = False
    failure_cause: str = ""  # "" while running or on success; else one of FAILURE_CAUSES
    time_s: float = 0.0
    grasped: bool = False  # the block was lifted off the belt in the hand at some point
    truncated: bool = False  # ended by the time limit (Gymnasium's "truncated", not a terminal state)
    # Grasp point to block centre (m) when the gripper was first commanded below half open; NaN before.
    # How well aimed the grasp was: the measure that separates "late" from "wrong" when picks fail.
    first_close_distance: float = math.nan

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite_array(value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be numeric, got {type(value).__name__}") from exc
    if arr.shape != shape:
        raise ValueError(f"{what} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contains NaN or inf: {arr.tolist()}")
    return arr


class ConveyorPickEnv:
    """The conveyor-picking task. One instance owns one PyBullet DIRECT client; call ``close``."""

    action_names = scene.ACTION_NAMES
    action_low = np.array([*scene.JOINT_LOW, 0.0])
    action_high = np.array([*scene.JOINT_HIGH, scene.GRIPPER_MAX])
    control_hz = CONTROL_HZ
    physics_hz = PHYSICS_HZ

    def __init__(self, config: SimConfig | dict[str, Any] | None = None) -> None:
        if config is None:
            config = SimConfig()
        elif isinstance(config, dict):
            config = SimConfig.from_dict(config)
        self.config = config
        self._client = pybullet.connect(pybullet.DIRECT)
        self._view, self._proj = scene.camera_matrices(config.image_size)
        self._robot = -1
        self._block = -1
        self._status = EpisodeStatus()
        self._rewarded = False
        self._cmd_q = scene.HOME_JOINTS.copy()
        self._cmd_w = scene.GRIPPER_MAX
        self._pending_time = 0.0
        self._substeps = 0
        self._steps = 0
        self._last_clamped = False
        self._seed: int | None = None
        self.belt_speed = 0.0
        self.lateral_offset = 0.0
        self.block_color = config.block_colors[0]
        self.instruction = ""

    # ------------------------------------------------------------------ episode set-up
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        """Start a new episode. Same seed -> same block colour, speed, pose and physics trajectory."""
        del options  # accepted for Gymnasium compatibility
        if seed is None:
            seed = self.config.seed
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        self._seed = int(seed)
        rng = np.random.default_rng(self._seed)
        cfg = self.config
        self.belt_speed = float(rng.uniform(*cfg.belt_speed_range))
        self.lateral_offset = float(rng.uniform(*cfg.lateral_offset_range))
        spawn_y = float(rng.uniform(*cfg.spawn_y_range))
        yaw = float(rng.uniform(*cfg.block_yaw_range))
        self.block_color = str(cfg.block_colors[int(rng.integers(len(cfg.block_colors)))])
        self.instruction = f"pick the {self.block_color} block from the conveyor and place it in the bin"

        c = self._client
        pybullet.resetSimulation(physicsClientId=c)
        pybullet.setGravity(0, 0, -9.81, physicsClientId=c)
        pybullet.setPhysicsEngineParameter(
            fixedTimeStep=_DT, numSubSteps=0, deterministicOverlappingPairs=1, physicsClientId=c
        )
        scene.build_static_scene(c)
        self._robot = scene.load_panda(c)
        rgba = scene.COLORS_RGBA.get(self.block_color, (0.8, 0.1, 0.1, 1.0))
        z = scene.BELT.top + cfg.block_size / 2 + 0.0005
        self._block = scene.create_block(
            c, cfg.block_size, cfg.block_mass, rgba, (self.lateral_offset, spawn_y, z), yaw
        )
        self._status = EpisodeStatus()
        self._rewarded = False
        self._pending_time = 0.0
        self._substeps = 0
        self._steps = 0
        self._last_clamped = False
        self.set_command(scene.HOME_JOINTS, scene.GRIPPER_MAX)
        obs = self.observe()
        obs["image"] = self.render()
        return obs, self._info()

    # ------------------------------------------------------------------ Gymnasium-style step
    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        """One 30 Hz control step with ``action`` = 7 joint targets (rad) + gripper width (m)."""
        a = _finite_array(action, (8,), "action")
        self.set_command(a[:7], float(a[7]))
        self._run_substeps(SUBSTEPS_PER_CONTROL)
        self._steps += 1
        obs = self.observe()
        obs["image"] = self.render()
        st = self._status
        # Sparse reward, paid once on the step the block lands in the bin.
        reward = 1.0 if st.success and not self._rewarded else 0.0
        self._rewarded = self._rewarded or st.success
        truncated = st.done and st.truncated
        terminated = st.done and not truncated
        return obs, reward, terminated, truncated, self._info()

    # ------------------------------------------------------------------ lower-level API
    def set_command(self, joint_targets7: Any, gripper_width: Any) -> None:
        """Set motor targets (held until the next command). Targets are clamped to the Panda limits.

        Raises ValueError on a wrong shape or a NaN/inf value, leaving the previous command active.
        """
        q = _finite_array(joint_targets7, (7,), "joint_targets7")
        w = float(_finite_array(gripper_width, (), "gripper_width"))
        q_clamped = np.clip(q, scene.JOINT_LOW, scene.JOINT_HIGH)
        w_clamped = min(max(w, 0.0), scene.GRIPPER_MAX)
        self._last_clamped = bool(np.any(q_clamped != q) or w_clamped != w)
        self._cmd_q, self._cmd_w = q_clamped, w_clamped
        if self._robot < 0:
            return
        if w_clamped < 0.5 * scene.GRIPPER_MAX and math.isnan(self._status.first_close_distance):
            hand, _ = self.grasp_pose()
            self._status.first_close_distance = float(np.linalg.norm(hand - self.block_state()["pos"]))
        c = self._client
        for j, target, force, vmax in zip(
            scene.ARM_JOINTS, q_clamped, scene.ARM_MAX_FORCE, scene.ARM_MAX_VELOCITY, strict=True
        ):
            pybullet.setJointMotorControl2(
                self._robot,
                j,
                pybullet.POSITION_CONTROL,
                targetPosition=float(target),
                force=force,
                maxVelocity=vmax,
                physicsClientId=c,
            )
        for j in scene.FINGER_JOINTS:
            pybullet.setJointMotorControl2(
                self._robot,
                j,
                pybullet.POSITION_CONTROL,
                targetPosition=w_clamped / 2,
                force=scene.FINGER_FORCE,
                maxVelocity=scene.FINGER_MAX_VELOCITY,
                physicsClientId=c,
            )

    @property
    def command(self) -> tuple[np.ndarray, float]:
        """The active (clamped) joint targets and gripper width."""
        return self._cmd_q.copy(), self._cmd_w

    def advance(self, seconds: float, command: Callable[[float], tuple[Any, Any]] | None = None) -> int:
        """Advance simulated time by ``seconds`` (carrying fractions of a substep over); returns substeps run.

        ``command(offset)`` -> (7 joint targets, gripper width), if given, sets the motor targets before
        every substep from the middle of that substep, ``offset`` seconds after the start of this call:
        how a joint_trajectory_controller feeds a robot (1 kHz on an FR3), instead of one target held
        for the whole call. Without it the active command is held (``step``'s zero-order hold).
        """
        seconds = float(seconds)
        if not math.isfinite(seconds) or seconds < 0.0:
            raise ValueError(f"advance() needs a finite, non-negative duration, got {seconds}")
        self._require_episode()
        self._pending_time += seconds
        n = int(self._pending_time * PHYSICS_HZ + 1e-9)
        self._pending_time -= n * _DT
        if command is None:
            self._run_substeps(n)
            return n
        for i in range(n):
            self.set_command(*command(hold_sample_time(i * _DT, _DT)))
            self._run_substeps(1)
        return n

    def observe(self) -> dict[str, Any]:
        """Proprioception only (no rendering): joint_pos[7], joint_vel[7] (float64), gripper_width (m)."""
        self._require_episode()
        states = pybullet.getJointStates(
            self._robot, scene.ARM_JOINTS + scene.FINGER_JOINTS, physicsClientId=self._client
        )
        pos = np.array([s[0] for s in states], dtype=np.float64)
        vel = np.array([s[1] for s in states], dtype=np.float64)
        return {"joint_pos": pos[:7], "joint_vel": vel[:7], "gripper_width": float(pos[7] + pos[8])}

    def render(self) -> np.ndarray:
        """Scene camera RGB image, uint8 [S, S, 3] (TinyRenderer, no shadows: a few ms at 96 px)."""
        self._require_episode()
        s = self.config.image_size
        return self._camera(s, self._view, self._proj)

    def episode_status(self) -> EpisodeStatus:
        """Copy of the latched episode outcome."""
        return EpisodeStatus(**self._status.as_dict())

    def block_state(self) -> dict[str, np.ndarray | float]:
        """Privileged block pose and velocity (for the scripted expert and for evaluation, not the policy)."""
        self._require_episode()
        c = self._client
        pos, orn = pybullet.getBasePositionAndOrientation(self._block, physicsClientId=c)
        lin, _ = pybullet.getBaseVelocity(self._block, physicsClientId=c)
        yaw = pybullet.getEulerFromQuaternion(orn)[2]
        return {"pos": np.array(pos), "vel": np.array(lin), "yaw": float(yaw)}

    def grasp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """World position and orientation (xyzw) of the point between the finger tips."""
        self._require_episode()
        st = pybullet.getLinkState(
            self._robot, scene.GRASP_LINK, computeForwardKinematics=True, physicsClientId=self._client
        )
        return np.array(st[4]), np.array(st[5])

    def close(self) -> None:
        if self._client >= 0:
            pybullet.disconnect(physicsClientId=self._client)
            self._client = -1

    def __enter__(self) -> ConveyorPickEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown: pybullet may already be gone
            self.close()

    # ------------------------------------------------------------------ internals
    def _require_episode(self) -> None:
        if self._robot < 0:
            raise RuntimeError("call reset() before stepping or observing the environment")

    def _camera(self, size: int, view: list[float], proj: list[float]) -> np.ndarray:
        _, _, rgba, _, _ = pybullet.getCameraImage(
            size,
            size,
            view,
            proj,
            shadow=0,
            renderer=pybullet.ER_TINY_RENDERER,
            flags=pybullet.ER_NO_SEGMENTATION_MASK,
            physicsClientId=self._client,
        )
        return np.ascontiguousarray(np.asarray(rgba, dtype=np.uint8).reshape(size, size, 4)[:, :, :3])

    def _touching_fingers(self) -> bool:
        for link in scene.FINGER_LINKS:
            if pybullet.getContactPoints(self._block, self._robot, -1, link, physicsClientId=self._client):
                return True
        return False

    def _run_substeps(self, n: int) -> None:
        self._require_episode()
        c = self._client
        half = self.config.block_size / 2
        for _ in range(n):
            pos, _ = pybullet.getBasePositionAndOrientation(self._block, physicsClientId=c)
            touching = self._touching_fingers()
            on_belt = (
                scene.BELT.contains_xy(pos[0], pos[1]) and abs(pos[2] - half - scene.BELT.top) < _ON_BELT_TOLERANCE
            )
            if on_belt and not touching:
                lin, _ = pybullet.getBaseVelocity(self._block, physicsClientId=c)
                pybullet.resetBaseVelocity(
                    self._block, (0.0, self.belt_speed, lin[2]), (0.0, 0.0, 0.0), physicsClientId=c
                )
            pybullet.stepSimulation(physicsClientId=c)
            self._substeps += 1
            if not self._status.done:
                self._update_status(touching)

    def _update_status(self, touching: bool) -> None:
        st = self._status
        st.time_s = self._substeps * _DT
        pos, _ = pybullet.getBasePositionAndOrientation(self._block, physicsClientId=self._client)
        x, y, z = pos
        half = self.config.block_size / 2
        if not all(math.isfinite(v) for v in pos):
            st.done, st.failure_cause = True, "sim_error"
            return
        if touching and z - half > scene.BELT.top + _LIFT_HEIGHT:
            st.grasped = True
        in_bin = scene.BIN_INNER.contains_xy(x, y) and z < scene.BIN_WALL_HEIGHT
        if st.success:  # terminate_on_success=False: keep simulating until the time limit
            if st.time_s >= self.config.episode_time_limit - 1e-9:
                st.done = st.truncated = True
            return
        if in_bin and not touching:
            st.success = True
            st.done = self.config.terminate_on_success
            return
        if z < scene.BELT.top - 0.01 and not touching and not in_bin:
            st.done = True
            if st.grasped:
                st.failure_cause = "dropped"
            elif y > scene.BELT_END_Y:
                st.failure_cause = "missed"
            else:
                st.failure_cause = "knocked_off"
            return
        if st.time_s >= self.config.episode_time_limit - 1e-9:
            st.done, st.truncated, st.failure_cause = True, True, "timeout"

    def _info(self) -> dict[str, Any]:
        st = self._status
        block = self.block_state()
        return {
            "success": st.success,
            "failure_cause": st.failure_cause,
            "done": st.done,
            "truncated": st.truncated,
            "grasped": st.grasped,
            "first_close_distance": st.first_close_distance,
            "time_s": self._substeps * _DT,
            "step": self._steps,
            "seed": self._seed,
            "belt_speed": self.belt_speed,
            "lateral_offset": self.lateral_offset,
            "block_color": self.block_color,
            "instruction": self.instruction,
            "block_pos": block["pos"],
            "block_vel": block["vel"],
            "block_yaw": block["yaw"],
            "command_clamped": self._last_clamped,
        }
