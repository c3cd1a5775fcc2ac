"""Static layout of the conveyor-picking scene and the functions that build it in PyBullet.

Kept apart from the environment so the geometry (belt, bin, camera) is stated once and the
scripted expert and the tests can read the same numbers instead of repeating them.

Frame: the Panda base sits at the world origin, x points away from the robot, z up. The belt
runs along +y in front of the robot; the bin stands beside the belt's downstream end, on the
robot's side, so a successful pick moves the block towards the robot and downstream.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pybullet
import pybullet_data

from fast_dvla_ros.core.action_space import GRIPPER_MAX_WIDTH, PANDA_JOINT_HIGH, PANDA_JOINT_LOW

# --- robot -------------------------------------------------------------------------------------
PANDA_URDF = "franka_panda/panda.urdf"
ARM_JOINTS = (0, 1, 2, 3, 4, 5, 6)  # panda_joint1..7 in the pybullet_data URDF
FINGER_JOINTS = (9, 10)  # panda_finger_joint1/2; each moves width/2
FINGER_LINKS = (9, 10)
HAND_LINK = 8
GRASP_LINK = 11  # panda_grasptarget: between the finger tips
ARM_MAX_FORCE = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)  # N m (Franka datasheet)
ARM_MAX_VELOCITY = (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61)  # rad/s
FINGER_FORCE = 20.0  # N per finger (URDF effort limit); holds a 0.1 kg block with margin
FINGER_MAX_VELOCITY = 0.1  # m/s per finger, close to the real hand
JOINT_LOW = np.asarray(PANDA_JOINT_LOW, dtype=np.float64)
JOINT_HIGH = np.asarray(PANDA_JOINT_HIGH, dtype=np.float64)
GRIPPER_MAX = GRIPPER_MAX_WIDTH
# Ready pose: hand pointing down, elbow up, fingers closing along x (across the belt, so a block
# carried along y slides between the open fingers instead of into one of them).
HOME_JOINTS = np.array([0.0, -0.50, 0.0, -2.30, 0.0, 1.80, -0.785], dtype=np.float64)

ACTION_NAMES = (*tuple(f"panda_joint{i}" for i in range(1, 8)), "gripper_width")


@dataclass(frozen=True)
class Box:
    """An axis-aligned box: centre and half extents (m)."""

    center: tuple[float, float, float]
    half: tuple[float, float, float]

    @property
    def top(self) -> float:
        return self.center[2] + self.half[2]

    def contains_xy(self, x: float, y: float, margin: float = 0.0) -> bool:
        return abs(x - self.center[0]) <= self.half[0] - margin and abs(y - self.center[1]) <= self.half[1] - margin


# --- belt and bin ------------------------------------------------------------------------------
BELT = Box(center=(0.52, -0.10, 0.03), half=(0.12, 0.40, 0.03))  # x 0.40..0.64, y -0.50..0.30, top 0.06
BELT_END_Y = BELT.center[1] + BELT.half[1]
BIN_CENTER = (0.25, 0.43)
BIN_INNER_HALF = 0.09  # inner half size (m): 0.18 m square opening
BIN_WALL_HEIGHT = 0.08
BIN_WALL_THICKNESS = 0.01
BIN_INNER = Box(center=(*BIN_CENTER, BIN_WALL_HEIGHT / 2), half=(BIN_INNER_HALF, BIN_INNER_HALF, BIN_WALL_HEIGHT / 2))

# --- camera ------------------------------------------------------------------------------------
# Close oblique view of the belt's pick zone from across the belt. The first layout (whole scene,
# eye (1.10, -0.55, 0.95), 58 deg) drew the 4 cm block 2-3 px wide and hid it under the hand on the
# final approach; this one draws it 5-6 px wide next to the fingers. The bin is only partly in
# view: it never moves, the policy does not need to see it.
SCENE_CAMERA_EYE = (0.95, -0.45, 0.70)
SCENE_CAMERA_TARGET = (0.46, 0.04, 0.05)
SCENE_CAMERA_FOV = 55.0

COLORS_RGBA = {
    "red": (0.85, 0.10, 0.10, 1.0),
    "green": (0.10, 0.70, 0.15, 1.0),
    "blue": (0.10, 0.25, 0.90, 1.0),
    "yellow": (0.95, 0.85, 0.10, 1.0),
    "orange": (0.95, 0.50, 0.05, 1.0),
    "purple": (0.55, 0.15, 0.70, 1.0),
}


def _static_box(client: int, box: Box, rgba: tuple[float, float, float, float], friction: float) -> int:
    col = pybullet.createCollisionShape(pybullet.GEOM_BOX, halfExtents=box.half, physicsClientId=client)
    vis = pybullet.createVisualShape(pybullet.GEOM_BOX, halfExtents=box.half, rgbaColor=rgba, physicsClientId=client)
    body = pybullet.createMultiBody(0.0, col, vis, basePosition=box.center, physicsClientId=client)
    pybullet.changeDynamics(body, -1, lateralFriction=friction, physicsClientId=client)
    return body


def low_poly_panda_urdf() -> str:
    """Path of a copy of the Panda URDF whose visual meshes are its collision meshes.

    The stock visual meshes have ~100k triangles, which makes TinyRenderer cost 20-30 ms per
    frame at any image size; the collision meshes (~3.4k triangles) look the same at 64-128 px
    and render several times faster. Physics is unchanged (collision shapes are the same files).
    Written once per content hash into the temp dir, atomically, so parallel workers can share it.
    """
    src = Path(pybullet_data.getDataPath()) / PANDA_URDF
    mesh_dir = src.parent / "meshes"
    text = src.read_text()
    text = text.replace("package://meshes/visual/", "package://meshes/collision/")
    text = text.replace("package://meshes/", f"{mesh_dir.as_posix()}/")
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    out_dir = Path(tempfile.gettempdir()) / "fast_dvla_ros_sim"
    out = out_dir / f"panda_lowpoly_{digest}.urdf"
    if not out.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out_dir / f".{out.name}.{os.getpid()}.tmp"
        tmp.write_text(text)
        os.replace(tmp, out)
    return str(out)


def load_panda(client: int, low_poly: bool = True) -> int:
    """Load the fixed-base Panda and put it in the home pose (joint states and motor targets)."""
    pybullet.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=client)
    robot = pybullet.loadURDF(
        low_poly_panda_urdf() if low_poly else PANDA_URDF,
        basePosition=(0, 0, 0),
        useFixedBase=True,
        flags=pybullet.URDF_USE_SELF_COLLISION_EXCLUDE_PARENT,
        physicsClientId=client,
    )
    for j, q in zip(ARM_JOINTS, HOME_JOINTS, strict=True):
        pybullet.resetJointState(robot, j, float(q), physicsClientId=client)
    for j in FINGER_JOINTS:
        pybullet.resetJointState(robot, j, GRIPPER_MAX / 2, physicsClientId=client)
    if low_poly:  # two-tone arm so the links stay distinguishable in small images
        for link in range(-1, pybullet.getNumJoints(robot, physicsClientId=client)):
            rgba = (0.35, 0.35, 0.38, 1.0) if link in (HAND_LINK, *FINGER_LINKS) else (0.92, 0.92, 0.92, 1.0)
            pybullet.changeVisualShape(robot, link, rgbaColor=rgba, physicsClientId=client)
    return robot


def build_static_scene(client: int) -> dict[str, int]:
    """Floor, belt and bin. The belt is frictionless: the env drives the block by its velocity,
    and a static belt with friction would brake the block inside every physics step."""
    floor = _static_box(client, Box((0.3, 0.0, -0.01), (1.5, 1.5, 0.01)), (0.55, 0.55, 0.55, 1.0), friction=0.8)
    belt = _static_box(client, BELT, (0.15, 0.15, 0.15, 1.0), friction=0.0)
    walls = []
    cx, cy = BIN_CENTER
    h, t, r = BIN_WALL_HEIGHT / 2, BIN_WALL_THICKNESS / 2, BIN_INNER_HALF + BIN_WALL_THICKNESS / 2
    long_half = BIN_INNER_HALF + BIN_WALL_THICKNESS
    for center, half in (
        ((cx + r, cy, h), (t, long_half, h)),
        ((cx - r, cy, h), (t, long_half, h)),
        ((cx, cy + r, h), (long_half, t, h)),
        ((cx, cy - r, h), (long_half, t, h)),
    ):
        walls.append(_static_box(client, Box(center, half), (0.60, 0.40, 0.20, 1.0), friction=0.8))
    return {"floor": floor, "belt": belt, **{f"bin_wall{i}": w for i, w in enumerate(walls)}}


def create_block(
    client: int, size: float, mass: float, rgba: tuple[float, float, float, float], position, yaw: float
) -> int:
    """A dynamic cube built from primitives: cube_small.urdf (inertia 1) slips out of the grasp."""
    half = (size / 2,) * 3
    col = pybullet.createCollisionShape(pybullet.GEOM_BOX, halfExtents=half, physicsClientId=client)
    vis = pybullet.createVisualShape(pybullet.GEOM_BOX, halfExtents=half, rgbaColor=rgba, physicsClientId=client)
    orn = pybullet.getQuaternionFromEuler((0.0, 0.0, yaw))
    block = pybullet.createMultiBody(mass, col, vis, basePosition=position, baseOrientation=orn, physicsClientId=client)
    # createMultiBody derives the inertia from the box shape: m * s^2 / 6 per axis.
    pybullet.changeDynamics(
        block,
        -1,
        lateralFriction=1.0,
        spinningFriction=0.002,
        rollingFriction=0.0,
        restitution=0.0,
        physicsClientId=client,
    )
    return block


def camera_matrices(image_size: int) -> tuple[list[float], list[float]]:
    """View and projection matrices of the fixed scene camera."""
    view = pybullet.computeViewMatrix(SCENE_CAMERA_EYE, SCENE_CAMERA_TARGET, (0.0, 0.0, 1.0))
    proj = pybullet.computeProjectionMatrixFOV(SCENE_CAMERA_FOV, 1.0, 0.05, 4.0)
    return list(view), list(proj)


def project_to_image(points: np.ndarray) -> np.ndarray:
    """World points [N, 3] -> normalised scene-camera image coordinates [N, 2] (u right, v down; 0..1
    inside the image, outside otherwise). Used to supervise where the block appears in the image."""
    view, proj = camera_matrices(1)  # the projection does not depend on the image size (square images)
    m = np.asarray(proj, dtype=np.float64).reshape(4, 4).T @ np.asarray(view, dtype=np.float64).reshape(4, 4).T
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    clip = np.c_[pts, np.ones(len(pts))] @ m.T
    ndc = clip[:, :2] / clip[:, 3:4]
    return np.c_[(ndc[:, 0] + 1.0) / 2.0, (1.0 - ndc[:, 1]) / 2.0]
