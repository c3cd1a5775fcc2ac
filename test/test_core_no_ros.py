"""The decoder core must not import ROS: it runs in training scripts and benchmarks without it."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import fast_dvla_ros.core as core


def test_core_imports_no_rclpy() -> None:
    modules = [m.name for m in pkgutil.walk_packages(core.__path__, "fast_dvla_ros.core.")]
    assert "fast_dvla_ros.core.model" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = [m for m in sys.modules if m == 'rclpy' or m.startswith('rclpy.')]\n"
        "assert not bad, bad\n"
        "print('ok', len(sys.modules))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "ok" in res.stdout
