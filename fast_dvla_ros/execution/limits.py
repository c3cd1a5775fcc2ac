"""Joint position/velocity limits of the arm, loaded from config/joint_limits/<robot>.yaml.

The executor never trusts the policy: every value it sends is clamped against these tables
(franka_description's numbers), so a mis-trained or corrupted policy cannot command the robot
outside its envelope.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

_CONFIG_DIR = Path(__file__).resolve().parents[2] / "config" / "joint_limits"


@dataclass(frozen=True)
class JointLimits:
    """Limits for one arm, arrays ordered like ``joint_names``."""

    robot: str
    joint_names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    gripper_width_max: float = 0.08

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        for name in ("lower", "upper", "velocity"):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.shape != (n,) or not np.all(np.isfinite(arr)):
                raise ValueError(f"joint limits '{name}' must be {n} finite numbers, got {arr.tolist()}")
            object.__setattr__(self, name, arr)
        if np.any(self.lower >= self.upper):
            raise ValueError("every lower position limit must be below the upper one")
        if np.any(self.velocity <= 0):
            raise ValueError("velocity limits must be positive")

    def renamed(self, joint_names: list[str] | tuple[str, ...]) -> JointLimits:
        """Same numbers under other joint names (e.g. fer_joint* vs panda_joint*), order kept."""
        if len(joint_names) != len(self.joint_names):
            raise ValueError(f"need {len(self.joint_names)} joint names, got {len(joint_names)}")
        return JointLimits(
            self.robot, tuple(joint_names), self.lower, self.upper, self.velocity, self.gripper_width_max
        )


def config_dir() -> Path:
    """Folder of the shipped limit tables (source tree, or the ament share dir when installed)."""
    if _CONFIG_DIR.is_dir():
        return _CONFIG_DIR
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("fast_dvla_ros")) / "config" / "joint_limits"
    except Exception:
        return _CONFIG_DIR


def load_joint_limits(robot_or_path: str | Path) -> JointLimits:
    """Load ``fr3``/``panda`` (shipped tables) or an explicit YAML path; ValueError with the reason otherwise."""
    path = Path(robot_or_path)
    if not path.suffix:
        path = config_dir() / f"{robot_or_path}.yaml"
    if not path.is_file():
        raise ValueError(f"joint limits file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
        return JointLimits(
            robot=str(data.get("robot", path.stem)),
            joint_names=tuple(str(n) for n in data["joint_names"]),
            lower=np.asarray(data["position_lower"], dtype=np.float64),
            upper=np.asarray(data["position_upper"], dtype=np.float64),
            velocity=np.asarray(data["velocity_max"], dtype=np.float64),
            gripper_width_max=float(data.get("gripper_width_max", 0.08)),
        )
    except (KeyError, TypeError, AttributeError, yaml.YAMLError) as exc:
        raise ValueError(f"malformed joint limits file {path}: {exc}") from exc
