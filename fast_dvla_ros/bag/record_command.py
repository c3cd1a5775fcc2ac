"""The ``ros2 bag record`` command line the launch files run for ``record:=true`` (no ROS import).

Why here and not inside the launch files: the folder naming, topic resolution and image opt-in
are logic worth testing, and ``launch`` is not installable everywhere; the launch files only
call :func:`ros2_bag_record_command` with their resolved arguments.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

BAG_PREFIX = "fast_dvla"


def resolve_topic(name: str, namespace: str = "") -> str:
    """Absolute topic name as ROS resolves a relative ``name`` for a node in ``namespace``.

    ``ros2 bag record`` runs outside the nodes' namespace, so it must be given absolute names.
    Private (``~``) names cannot be resolved without a node name and are rejected.
    """
    name = name.strip()
    if not name or name.startswith("~"):
        raise ValueError(f"cannot record {name!r}: give an absolute or namespace-relative topic name")
    if name.startswith("/"):
        return name
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    return f"{ns}/{name}"


def timestamped_bag_dir(root: str | Path, now: datetime | None = None) -> Path:
    """``<root>/fast_dvla_YYYYmmdd_HHMMSS`` (UTC): one new folder per launch, never overwritten."""
    now = now or datetime.now(timezone.utc)
    return Path(root).expanduser() / now.strftime(f"{BAG_PREFIX}_%Y%m%d_%H%M%S")


def ros2_bag_record_command(
    out_dir: str | Path,
    topics: Iterable[str],
    namespace: str = "",
    *,
    storage: str = "mcap",
) -> list[str]:
    """``ros2 bag record -s mcap -o DIR /a /b ...`` with duplicates removed and names resolved."""
    resolved: list[str] = []
    for topic in topics:
        absolute = resolve_topic(topic, namespace)
        if absolute not in resolved:
            resolved.append(absolute)
    if not resolved:
        raise ValueError("no topics to record")
    return ["ros2", "bag", "record", "-s", storage, "-o", str(out_dir), *resolved]
