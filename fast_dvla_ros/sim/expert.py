"""Scripted expert for the conveyor-picking task: intercept, grasp, lift, carry, release.

It produces the demonstrations the policies are trained on, so it emits exactly what a policy
emits: 8 numbers per 30 Hz step (7 absolute joint targets + gripper width, docs/CONTRACTS.md).
It uses privileged block state from ``info`` (``block_pos``, ``block_vel``, ``block_yaw``), which a
policy never sees.

How it moves, and why:

* A Cartesian set-point for the grasp point chases a per-phase goal at a bounded speed, and IK
  turns the set-point into joint targets; the joint targets are then rate limited again. Both
  limits keep consecutive actions close, which is what a chunked policy can imitate and what a
  real arm's reflexes accept.
* Interception: the goal is where the block *will* be (``pos + vel * lead``), so the hand arrives
  above the block instead of behind it; while descending and closing, a short lead compensates the
  position controller's lag at belt speed.
* Fingers close across the belt (along the block face normal nearest to x), so the block slides
  between the open fingers while the hand descends.
* A failed grasp (fingers closed on nothing) re-opens and re-approaches instead of carrying air.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import pybullet

from fast_dvla_ros.sim import scene
from fast_dvla_ros.sim.config import CONTROL_HZ
from fast_dvla_ros.sim.ik import PandaKinematics

_DT = 1.0 / CONTROL_HZ


class Phase(str, Enum):
    APPROACH = "approach"
    DESCEND = "descend"
    CLOSE = "close"
    LIFT = "lift"
    TRANSFER = "transfer"
    LOWER = "lower"
    RELEASE = "release"
    RETREAT = "retreat"


@dataclass
class ExpertConfig:
    """Speeds, heights and leads of the scripted motion (SI units)."""

    block_size: float = 0.04
    hover_height: float = 0.10  # above the grasp height while intercepting
    grasp_depth: float = 0.004  # grasp point this far below the block centre
    carry_height: float = 0.26  # grasp-point z while carrying to the bin
    release_height: float = 0.19  # grasp-point z when opening over the bin
    approach_speed: float = 0.55  # m/s of the Cartesian set-point
    descend_speed: float = 0.30
    lift_speed: float = 0.35
    transfer_speed: float = 0.55
    yaw_speed: float = 2.0  # rad/s
    max_joint_speed: float = 1.6  # rad/s per joint, below the Panda's 2.175/2.61
    intercept_lead: float = 0.8  # s, most lead added while approaching (scaled by the hand's ETA)
    tracking_lead: float = 0.10  # s ahead of the block while descending/closing (controller lag)
    close_steps: int = 12  # control steps with closed fingers before lifting
    release_steps: int = 10


def _move_towards(current: np.ndarray, goal: np.ndarray, max_step: float) -> np.ndarray:
    delta = goal - current
    dist = float(np.linalg.norm(delta))
    if dist <= max_step or dist == 0.0:
        return goal.copy()
    return current + delta * (max_step / dist)


def grasp_yaw(block_yaw: float) -> float:
    """Hand yaw whose fingers close along the block face normal nearest to world x.

    A cube looks the same every quarter turn, so the face angle is folded into [-pi/4, pi/4];
    the +pi/2 offset is the hand yaw of the home pose, where the fingers close along x (see
    scene.HOME_JOINTS), so the hand turns by at most pi/4 to meet the block.
    """
    face = (block_yaw + math.pi / 4) % (math.pi / 2) - math.pi / 4
    return face + math.pi / 2


class ScriptedExpert:
    """Stateful expert: ``reset(obs, info)`` once per episode, then ``act(obs, info)`` every step."""

    def __init__(self, config: ExpertConfig | None = None) -> None:
        self.config = config or ExpertConfig()
        self._kin = PandaKinematics()
        self._home_pos, _ = self._kin.forward(scene.HOME_JOINTS)
        self.phase = Phase.APPROACH
        self._q_cmd = scene.HOME_JOINTS.copy()
        self._sp = np.zeros(3)
        self._yaw = math.pi / 2
        self._grip = scene.GRIPPER_MAX
        self._phase_steps = 0
        self._close_origin = np.zeros(3)
        self._close_vel = np.zeros(3)
        self._grasp_z = 0.0
        self.retries = 0

    def reset(self, obs: dict[str, Any], info: dict[str, Any]) -> None:
        q = np.asarray(obs["joint_pos"], dtype=np.float64)
        self._q_cmd = q.copy()
        pos, orn = self._kin.forward(q)
        self._sp = pos
        self._yaw = pybullet.getEulerFromQuaternion(orn)[2]
        self._grip = scene.GRIPPER_MAX
        self._grasp_z = float(info["block_pos"][2]) - self.config.grasp_depth
        self.retries = 0
        self._enter(Phase.APPROACH)

    def _enter(self, phase: Phase) -> None:
        self.phase = phase
        self._phase_steps = 0

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray:
        """Next action: float64 [8] = 7 joint targets (rad) + gripper width (m)."""
        cfg = self.config
        q_meas = np.asarray(obs["joint_pos"], dtype=np.float64)
        width = float(obs["gripper_width"])
        block = np.asarray(info["block_pos"], dtype=np.float64)
        vel = np.asarray(info["block_vel"], dtype=np.float64)
        ee, _ = self._kin.forward(q_meas)
        self._phase_steps += 1
        speed = cfg.approach_speed
        goal = self._sp.copy()
        yaw_goal = self._yaw

        if self.phase is Phase.APPROACH:
            # Aim where the block will be when the hand gets there; the lead shrinks to the
            # tracking lead as the hand arrives, so the arrival check below can be met.
            eta = float(np.linalg.norm(ee[:2] - block[:2])) / cfg.approach_speed
            lead = cfg.tracking_lead + min(eta, cfg.intercept_lead)
            target = block + vel * lead
            goal = np.array([target[0], target[1], self._grasp_z + cfg.hover_height])
            yaw_goal = grasp_yaw(float(info["block_yaw"]))
            self._grip = scene.GRIPPER_MAX
            above = block + vel * cfg.tracking_lead
            near = np.linalg.norm(ee[:2] - above[:2]) < 0.015 and abs(ee[2] - goal[2]) < 0.03
            if near and abs(self._yaw - yaw_goal) < 0.02:
                self._enter(Phase.DESCEND)
        elif self.phase is Phase.DESCEND:
            target = block + vel * cfg.tracking_lead
            goal = np.array([target[0], target[1], self._grasp_z])
            yaw_goal = grasp_yaw(float(info["block_yaw"]))
            speed = cfg.descend_speed
            if ee[2] < self._grasp_z + 0.006 and np.linalg.norm(ee[:2] - block[:2]) < 0.012:
                self._close_origin = np.array([target[0], target[1], self._grasp_z])
                self._close_vel = np.array([vel[0], vel[1], 0.0])
                self._enter(Phase.CLOSE)
        elif self.phase is Phase.CLOSE:
            # Follow the belt motion latched at contact: once the fingers touch it, the block moves
            # with the hand, and chasing its measured position would feed back on itself.
            goal = self._close_origin + self._close_vel * (self._phase_steps * _DT)
            speed = cfg.descend_speed
            self._grip = 0.0
            if width < 0.25 * cfg.block_size:  # closed on nothing: re-open and try again
                self.retries += 1
                self._grip = scene.GRIPPER_MAX
                self._enter(Phase.APPROACH)
            elif self._phase_steps >= cfg.close_steps:
                self._enter(Phase.LIFT)
        elif self.phase is Phase.LIFT:
            goal = np.array([self._sp[0], self._sp[1], cfg.carry_height])
            speed = cfg.lift_speed
            if width < 0.25 * cfg.block_size:  # slipped out
                self.retries += 1
                self._grip = scene.GRIPPER_MAX
                self._enter(Phase.APPROACH)
            elif ee[2] > cfg.carry_height - 0.04:
                self._enter(Phase.TRANSFER)
        elif self.phase is Phase.TRANSFER:
            goal = np.array([scene.BIN_CENTER[0], scene.BIN_CENTER[1], cfg.carry_height])
            speed = cfg.transfer_speed
            if np.linalg.norm(ee[:2] - goal[:2]) < 0.03:
                self._enter(Phase.LOWER)
        elif self.phase is Phase.LOWER:
            goal = np.array([scene.BIN_CENTER[0], scene.BIN_CENTER[1], cfg.release_height])
            speed = cfg.descend_speed
            if ee[2] < cfg.release_height + 0.02 and np.linalg.norm(ee[:2] - goal[:2]) < 0.02:
                self._enter(Phase.RELEASE)
        elif self.phase is Phase.RELEASE:
            self._grip = scene.GRIPPER_MAX
            if self._phase_steps >= cfg.release_steps:
                self._enter(Phase.RETREAT)
        elif self.phase is Phase.RETREAT:  # straight up out of the bin, then back to the home pose
            if self._phase_steps * _DT < 0.25:
                goal = np.array([scene.BIN_CENTER[0], scene.BIN_CENTER[1], cfg.carry_height])
            else:
                goal = self._home_pos.copy()
                yaw_goal = math.pi / 2
            speed = cfg.lift_speed

        self._sp = _move_towards(self._sp, goal, speed * _DT)
        dyaw = float(np.clip(yaw_goal - self._yaw, -cfg.yaw_speed * _DT, cfg.yaw_speed * _DT))
        self._yaw += dyaw
        orn = pybullet.getQuaternionFromEuler((math.pi, 0.0, self._yaw))
        q_ik = self._kin.inverse(self._sp, orn, self._q_cmd, rest_q=self._rest_pose(self._sp, self._yaw))
        max_dq = cfg.max_joint_speed * _DT
        self._q_cmd = self._q_cmd + np.clip(q_ik - self._q_cmd, -max_dq, max_dq)
        return np.r_[self._q_cmd, self._grip]

    @staticmethod
    def _rest_pose(target: np.ndarray, yaw: float) -> np.ndarray:
        """Home posture turned to face ``target``: joint 1 takes the bearing, joint 7 the remaining yaw."""
        rest = scene.HOME_JOINTS.copy()
        rest[0] = math.atan2(float(target[1]), float(target[0]))
        # For a hand pointing down, hand yaw = q1 - q7 + pi/4 (measured on the URDF: joint 7's
        # axis points down, so it turns the hand against joint 1).
        q7 = rest[0] - yaw + math.pi / 4
        rest[6] = (q7 + math.pi) % (2 * math.pi) - math.pi
        if not scene.JOINT_LOW[6] <= rest[6] <= scene.JOINT_HIGH[6]:  # parallel fingers: yaw + pi is the same grasp
            rest[6] -= math.copysign(math.pi, rest[6])
        return rest

    def close(self) -> None:
        self._kin.close()
