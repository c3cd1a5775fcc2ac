"""QoS profiles used by the nodes (one place, so publishers and subscribers always match).

* Sensors (camera, joint states): best effort, depth 1 - only the newest sample matters and a
  late frame is worse than a dropped one. Best effort also matches franka_robot_state_broadcaster
  and most camera drivers; a best-effort subscriber receives from reliable publishers too.
* Commands and chunks: reliable, depth 1 - each is a complete replacement of the previous one.
* Instruction: reliable + transient local, so a node started later still gets the current task.
* Status / outcomes: reliable with a small history, for recorders and tests.
"""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

SENSOR_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT)
COMMAND_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
CHUNK_QOS = QoSProfile(depth=2, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(
    depth=1,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
STATUS_QOS = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
