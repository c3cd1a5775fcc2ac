"""Reading a ROS 2 parameter file (config/*.yaml) without ROS: the one place tools outside the nodes (the
real-time replay, bench/loop.py, tests) take the loop's settings from, so they run what the nodes run."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def node_parameters(params_file: str | Path, node: str) -> dict[str, Any]:
    """``ros__parameters`` of ``node`` (keys like ``/**/node`` or ``/node``); {} if the file has none."""
    import yaml

    data = yaml.safe_load(Path(params_file).read_text()) or {}
    for key, value in data.items():
        if str(key).rstrip("/").split("/")[-1] == node and isinstance(value, dict):
            return dict(value.get("ros__parameters") or {})
    return {}
