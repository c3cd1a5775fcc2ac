"""Everything that is not a ROS node imports without ROS (training boxes and CI images have none).

The decoder core above all: it runs in training scripts and benchmarks. A subprocess gives a clean
sys.modules.
"""

from __future__ import annotations

import configparser
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

LAYERS = [
    "fast_dvla_ros.core",
    "fast_dvla_ros.sim",
    "fast_dvla_ros.train",
    "fast_dvla_ros.evaluation",
    "fast_dvla_ros.execution",
    "fast_dvla_ros.graph",
]


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_imports_without_rclpy(layer: str) -> None:
    pkg = importlib.import_module(layer)
    modules = [layer] + [m.name for m in pkgutil.walk_packages(pkg.__path__, layer + ".")]
    assert len(modules) > 1, f"{layer} has no modules"
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'rosidl_runtime_py', 'rcl_interfaces'))\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]


def test_every_console_script_names_a_module_with_a_main() -> None:
    """Modules move between layers; setup.cfg's entry points must follow them (found without importing)."""
    root = Path(__file__).resolve().parents[1]
    cfg = configparser.ConfigParser()
    cfg.read(root / "setup.cfg")
    lines = cfg["options.entry_points"]["console_scripts"].strip().splitlines()
    targets = dict(tuple(part.strip() for part in line.split("=", 1)) for line in lines)
    assert "fast-dvla-sim-eval" in targets and "fast-dvla-eval" in targets
    for script, target in targets.items():
        module, func = target.split(":")
        path = root.joinpath(*module.split(".")).with_suffix(".py")
        assert path.is_file(), f"{script}: no module {module}"
        assert f"def {func}(" in path.read_text(), f"{script}: {module} has no {func}()"
