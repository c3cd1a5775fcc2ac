"""A rosbags type store that knows the standard ROS 2 messages and this package's own ones.

Why: bags written by our recorder must carry complete message definitions (so Foxglove,
``ros2 bag info`` or another rosbags reader can decode ActionChunk without this package), and
bags whose writer embedded no definitions must still be readable by ``fast-dvla-eval``. Both
need the custom types, which are parsed from the same ``msg/*.msg`` text rosidl builds from, so
they cannot drift from the generated messages (the RIHS01 hashes match rosidl's; tested).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

PACKAGE = "fast_dvla_ros"
CUSTOM_TYPES = ("DecodeStats", "ActionChunk", "ExecutorStatus", "EpisodeOutcome", "EpisodeStart")
MSG_DIR_ENV = "FAST_DVLA_MSG_DIR"


class MessageDefinitionsNotFound(FileNotFoundError):
    """None of the places that can hold this package's msg/ folder has it."""


def _candidate_msg_dirs() -> Iterable[Path]:
    """Places the .msg files live: override, source checkout, ament install spaces, venv prefix."""
    if os.environ.get(MSG_DIR_ENV):
        yield Path(os.environ[MSG_DIR_ENV])
    yield Path(__file__).resolve().parents[2] / "msg"  # source checkout / editable install
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            yield Path(prefix) / "share" / PACKAGE / "msg"
    import sys

    yield Path(sys.prefix) / "share" / PACKAGE / "msg"  # the venv bootstrap installs here


def find_msg_dir() -> Path:
    """Return the first folder that holds all of this package's .msg files."""
    tried = []
    for candidate in _candidate_msg_dirs():
        tried.append(str(candidate))
        if all((candidate / f"{name}.msg").is_file() for name in CUSTOM_TYPES):
            return candidate
    raise MessageDefinitionsNotFound(
        f"cannot find {PACKAGE}'s msg/*.msg (set {MSG_DIR_ENV}); looked in: {', '.join(tried)}"
    )


@cache
def typestore(msg_dir: Path | None = None) -> Typestore:
    """The ROS 2 Jazzy type store plus ``fast_dvla_ros/msg/*`` (cached: parsing costs ~50 ms)."""
    store = get_typestore(Stores.ROS2_JAZZY)
    folder = msg_dir or find_msg_dir()
    types = {}
    for name in CUSTOM_TYPES:
        text = (folder / f"{name}.msg").read_text(encoding="utf-8")
        types.update(get_types_from_msg(text, f"{PACKAGE}/msg/{name}"))
    store.register(types)
    return store
