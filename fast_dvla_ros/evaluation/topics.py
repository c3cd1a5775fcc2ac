"""Find the topics an evaluation needs by message type, so remapped names still work.

Launch files remap the nodes' private topics (``~/joint_trajectory`` becomes
``/fr3_trajectory_controller/joint_trajectory`` on the robot), so the evaluation must not
depend on names. Each role has a type; when several topics share it, a name hint and then the
message count decide, and the choice is reported so a wrong guess is visible. Flags override.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from fast_dvla_ros.bag.reader import TopicEntry


class Role(str, Enum):
    """What a topic is used for in the analysis."""

    COMMANDS = "commands"
    CHUNKS = "chunks"
    STATUS = "status"
    GRIPPER = "gripper"
    OUTCOMES = "outcomes"


ROLE_TYPES: dict[Role, str] = {
    Role.COMMANDS: "trajectory_msgs/msg/JointTrajectory",
    Role.CHUNKS: "fast_dvla_ros/msg/ActionChunk",
    Role.STATUS: "fast_dvla_ros/msg/ExecutorStatus",
    Role.GRIPPER: "std_msgs/msg/Float64",
    Role.OUTCOMES: "fast_dvla_ros/msg/EpisodeOutcome",
}
# Substrings that make a topic the likelier one when several share the role's type.
ROLE_HINTS: dict[Role, tuple[str, ...]] = {
    Role.COMMANDS: ("joint_trajectory",),
    Role.CHUNKS: ("action_chunk",),
    Role.STATUS: ("status",),
    Role.GRIPPER: ("gripper",),
    Role.OUTCOMES: ("episode_outcome", "outcome"),
}


class TopicSelectionError(ValueError):
    """An override names a topic the bag does not have, or one of the wrong type."""


@dataclass
class TopicSelection:
    """Chosen topic per role (None when the bag has none) and notes about ambiguous choices."""

    topics: dict[Role, str | None]
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, role: Role) -> str | None:
        return self.topics.get(role)


def select_topics(entries: Sequence[TopicEntry], overrides: Mapping[Role, str] | None = None) -> TopicSelection:
    """Pick one topic per role from the bag's topics (see module docstring)."""
    overrides = dict(overrides or {})
    by_name = {e.name: e for e in entries}
    chosen: dict[Role, str | None] = {}
    notes: list[str] = []
    for role, msgtype in ROLE_TYPES.items():
        if role in overrides:
            name = overrides[role]
            if name not in by_name:
                raise TopicSelectionError(f"--{role.value}-topic {name!r} is not in the bag")
            if by_name[name].msgtype != msgtype:
                raise TopicSelectionError(f"{name} is {by_name[name].msgtype}, but {role.value} needs {msgtype}")
            chosen[role] = name
            continue
        candidates = [e for e in entries if e.msgtype == msgtype]
        if role is Role.GRIPPER:
            # Float64 is too generic to take blindly: only topics that say they are a gripper.
            candidates = [e for e in candidates if "gripper" in e.name]
        if not candidates:
            chosen[role] = None
            continue
        candidates.sort(key=lambda e: (not any(h in e.name for h in ROLE_HINTS[role]), -e.count, e.name))
        chosen[role] = candidates[0].name
        if len(candidates) > 1:
            others = ", ".join(e.name for e in candidates[1:])
            notes.append(f"{role.value}: chose {candidates[0].name} over {others} (override with --{role.value}-topic)")
    return TopicSelection(chosen, notes)
