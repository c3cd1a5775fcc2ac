"""The package builds with colcon from a clean workspace copy, against the venv's ROS 2.

This is what a roboticist does next to franka_ros2 (`colcon build` in a workspace); the
install space must carry the generated messages, the Python package, the `ros2 run`
executables and the share/ data, and Python must import the messages from it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def install_space(colcon_install: Path) -> Path:
    return colcon_install  # one build per session, shared with the launch tests (conftest.py)


def test_install_space_layout(install_space: Path) -> None:
    site = install_space / "lib" / "python3.11" / "site-packages" / "fast_dvla_ros"
    assert (site / "msg" / "_action_chunk.py").is_file()
    assert (site / "__init__.py").is_file()
    for exe in ("policy_node", "executor_node", "sim_node"):
        path = install_space / "lib" / "fast_dvla_ros" / exe
        assert path.is_file() and os.access(path, os.X_OK), exe
    share = install_space / "share" / "fast_dvla_ros"
    assert (share / "package.xml").is_file()
    assert (share / "msg" / "ActionChunk.msg").is_file()
    # what ros2 launch and the nodes find through FindPackageShare / get_package_share_directory
    for data in (
        "launch/sim_conveyor.launch.py", "launch/conveyor_picking.launch.py", "launch/fast_dvla_common.py",
        "config/sim_conveyor.yaml", "config/joint_limits/panda.yaml", "models/student_distilled/model.safetensors",
    ):  # fmt: skip
        assert (share / data).is_file(), data
    assert (install_space / "share" / "ament_index" / "resource_index" / "packages" / "fast_dvla_ros").is_file()


def test_messages_import_from_install_space(install_space: Path) -> None:
    site = install_space / "lib" / "python3.11" / "site-packages"
    code = (
        "import fast_dvla_ros.msg as m, sys\n"
        "from fast_dvla_ros.msg import ActionChunk, ExecutorStatus\n"
        "from rclpy.serialization import serialize_message, deserialize_message\n"
        "c = ActionChunk(horizon=3, actions=[0.5] * 21, decoder='pipelined')\n"
        "back = deserialize_message(serialize_message(c), ActionChunk)\n"
        "assert back.horizon == 3 and list(back.actions) == [0.5] * 21\n"
        "print(m.__file__)\n"
    )
    env = dict(
        os.environ,
        PYTHONPATH=str(site),
        LD_LIBRARY_PATH=os.pathsep.join([str(install_space / "lib"), os.environ.get("LD_LIBRARY_PATH", "")]),
        AMENT_PREFIX_PATH=os.pathsep.join([str(install_space), str(VENV)]),
        _ROS_WHEELS_BOOTSTRAP_COMPLETE="",  # let the wheels' bootstrapper rebuild LD_LIBRARY_PATH
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith(str(site)), proc.stdout
