"""Pure logic of the chunk executor and the policy's observation guard (no ROS imports).

Kept free of rclpy so it can be unit-tested in milliseconds and reused by offline evaluation.
"""

from fast_dvla_ros.execution.blender import BLEND_MODES, Chunk, ChunkBlender
from fast_dvla_ros.execution.executor_core import ExecutorCore, ExecutorState, TickCommand
from fast_dvla_ros.execution.limits import JointLimits, load_joint_limits
from fast_dvla_ros.execution.observation_guard import ObservationError, decode_raw_image, is_fresh, pick_joints
from fast_dvla_ros.execution.safety import ChunkRejected, ReceivedChunk, SafetyFilter, validate_chunk
from fast_dvla_ros.execution.watchdog import Watchdog

__all__ = [
    "BLEND_MODES",
    "Chunk",
    "ChunkBlender",
    "ChunkRejected",
    "ExecutorCore",
    "ExecutorState",
    "JointLimits",
    "ObservationError",
    "ReceivedChunk",
    "SafetyFilter",
    "TickCommand",
    "Watchdog",
    "decode_raw_image",
    "is_fresh",
    "load_joint_limits",
    "pick_joints",
    "validate_chunk",
]
