"""Inverse and forward kinematics of the Panda on a private PyBullet client.

The solver owns its own DIRECT physics client with a kinematic copy of the robot. Resetting that
copy's joints to seed IK can therefore never disturb the simulation being controlled (the seed
and the contact state of the real scene stay untouched), and the expert needs no access to the
env's internals: it only sees observations, like a policy would.
"""

from __future__ import annotations

import numpy as np
import pybullet

from fast_dvla_ros.sim import scene

_N_MOVABLE = 9  # 7 arm joints + 2 finger joints: the length pybullet's null-space IK expects


class PandaKinematics:
    """Null-space IK (rest pose = home) and FK of the grasp point between the finger tips."""

    def __init__(self, rest_pose: np.ndarray | None = None) -> None:
        self._client = pybullet.connect(pybullet.DIRECT)
        self._robot = scene.load_panda(self._client, low_poly=True)
        rest = scene.HOME_JOINTS if rest_pose is None else np.asarray(rest_pose, dtype=np.float64)
        # Slightly narrower than the hard limits so IK answers never sit exactly on a limit.
        low = np.r_[scene.JOINT_LOW + 0.02, 0.0, 0.0]
        high = np.r_[scene.JOINT_HIGH - 0.02, 0.04, 0.04]
        self._low, self._high = low.tolist(), high.tolist()
        self._ranges = (high - low).tolist()
        self._rest = np.r_[rest, 0.02, 0.02].tolist()

    def _set_joints(self, q: np.ndarray) -> None:
        for j, v in zip(scene.ARM_JOINTS, q, strict=True):
            pybullet.resetJointState(self._robot, j, float(v), physicsClientId=self._client)

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grasp-point position and orientation (xyzw) for arm joints ``q``."""
        self._set_joints(q)
        st = pybullet.getLinkState(
            self._robot, scene.GRASP_LINK, computeForwardKinematics=True, physicsClientId=self._client
        )
        return np.array(st[4]), np.array(st[5])

    def inverse(
        self, position, orientation_xyzw, seed_q: np.ndarray, rest_q: np.ndarray | None = None, iterations: int = 2
    ) -> np.ndarray:
        """Arm joints that put the grasp point at ``position`` with ``orientation_xyzw``.

        Seeded from ``seed_q`` (the previous command) so consecutive answers stay on one branch;
        re-solving from the first answer refines it (pybullet's damped least squares is one shot).
        ``rest_q`` overrides the null-space rest pose for this call: a rest pose that already faces
        the target (joint 1 = target bearing) stops the solver from twisting joints 1 and 3
        against each other, which otherwise makes answers jump between branches.
        """
        q = np.asarray(seed_q, dtype=np.float64)
        rest = self._rest if rest_q is None else np.r_[np.asarray(rest_q, dtype=np.float64), 0.02, 0.02].tolist()
        for _ in range(iterations):
            self._set_joints(q)
            sol = pybullet.calculateInverseKinematics(
                self._robot,
                scene.GRASP_LINK,
                list(position),
                list(orientation_xyzw),
                lowerLimits=self._low,
                upperLimits=self._high,
                jointRanges=self._ranges,
                restPoses=rest,
                maxNumIterations=100,
                residualThreshold=1e-5,
                physicsClientId=self._client,
            )
            q = np.clip(np.asarray(sol[:7], dtype=np.float64), scene.JOINT_LOW, scene.JOINT_HIGH)
        return q

    def close(self) -> None:
        if self._client >= 0:
            pybullet.disconnect(physicsClientId=self._client)
            self._client = -1
