"""Where the read-only reference folder ``shared/`` lies, for tests that use it when it is there.

CI puts the project at <clone>/ and the folder at <clone>/../shared; a user's machine has none, and
the tests that need it skip, saying so. ``FAST_DVLA_SHARED`` points elsewhere (a git worktree of the
project lies somewhere else than its clone).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    return Path(os.environ.get("FAST_DVLA_SHARED") or ROOT.parent / "shared").resolve()


FRANKA_RELEASES = ("jazzy-v3.4.0", "humble-v2.5.0")


def franka_release(name: str) -> Path | None:
    """shared/franka_ros2/<name>, or None when it is not there."""
    path = shared_dir() / "franka_ros2" / name
    return path if (path / "franka_bringup" / "launch" / "franka.launch.py").is_file() else None
