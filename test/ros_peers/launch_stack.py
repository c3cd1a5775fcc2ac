"""The ROS 2 launch stack and a colcon install space of this package, for the launch tests.

Why the colcon install space (not the venv): it is what a roboticist runs (``colcon build`` beside
franka_ros2, then ``ros2 launch``), and only it checks the install rules (CMakeLists.txt installs
launch/, config/, models/ to share/fast_dvla_ros and the executables to lib/fast_dvla_ros). The
venv holds rosidl's half of the package (share/fast_dvla_ros with the messages only) and an
editable install of the sources; the install space goes first on every path, so ``ros2 launch``,
FindPackageShare and the launched nodes use what colcon installed. One build per test session
(``colcon_install`` in conftest.py), shared by test_colcon_build.py and the launch tests.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)
INSTALL_HINT = "../shared/ros2-cli/install.sh .venv (make test does it when ../shared exists)"


def _find(module: str) -> object:
    try:
        return importlib.util.find_spec(module)
    except ImportError:
        return None


def launch_stack_missing() -> str | None:
    """Why the launch tests cannot run here, or None when launch, launch_pytest and the ros2 CLI are installed."""
    # launch.actions, not launch: the project's own launch/ folder is a namespace package from its root
    modules = ("launch.actions", "launch_ros", "launch_pytest", "ros2cli", "ros2launch")
    missing = [m.split(".")[0] for m in modules if _find(m) is None]
    if missing:
        return f"ROS 2 launch stack not installed ({', '.join(missing)} missing): run {INSTALL_HINT}"
    if not (VENV / "bin" / "ros2").is_file():
        return f"no ros2 command in {VENV / 'bin'}: run {INSTALL_HINT}"
    if shutil.which("colcon", path=str(VENV / "bin")) is None:
        return f"colcon not installed in {VENV} (requirements/dev.txt)"
    return None


def build_install_space(workspace: Path) -> Path:
    """``tools/colcon_build.sh workspace``; returns install/fast_dvla_ros (AssertionError with the log on failure)."""
    env = dict(os.environ, FAST_DVLA_VENV=str(VENV))
    proc = subprocess.run(
        ["bash", str(ROOT / "tools" / "colcon_build.sh"), str(workspace)],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"colcon build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert "1 package finished" in log, log[-4000:]
    return workspace / "install" / "fast_dvla_ros"


def install_env(prefix: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment ``source install/setup.bash`` gives, for an install prefix built against the venv."""
    env = dict(os.environ if base is None else base)

    def prepend(var: str, *paths: Path) -> None:
        parts = [str(p) for p in paths] + [p for p in env.get(var, "").split(os.pathsep) if p]
        env[var] = os.pathsep.join(dict.fromkeys(parts))

    prepend("AMENT_PREFIX_PATH", prefix, VENV)
    prepend("CMAKE_PREFIX_PATH", prefix, VENV)
    prepend("PYTHONPATH", prefix / "lib" / "python3.11" / "site-packages")
    prepend("LD_LIBRARY_PATH", prefix / "lib", VENV / "lib")
    prepend("PATH", VENV / "bin")  # ros2, and the executables' `#!/usr/bin/env python3`
    env["PYTHONUNBUFFERED"] = "1"
    return env
