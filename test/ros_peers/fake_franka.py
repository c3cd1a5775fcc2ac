"""Test-side stand-ins for franka_ros2's servers, built on the real franka_msgs types.

* FakeFrankaGripper: ``<ns>/franka_gripper/{grasp,move,homing}`` behaving like franka_gripper on a Franka
  Hand: every goal is accepted and executed in its own thread; the fingers move at the goal's speed; a
  new command aborts the one running (libfranka's gripper runs one command at a time); a grasp succeeds
  only when the fingers stop on an object within [width - epsilon.inner, width + epsilon.outer], and
  closing on nothing ends at 0 and fails.
* FakeFrankaHardware: ``<ns>/action_server/error_recovery`` (franka_hardware's ErrorRecovery) and a
  publisher of FrankaRobotState on ``<ns>/franka_robot_state_broadcaster/robot_state`` at 100 Hz, whose
  mode and errors the test sets; a successful recovery clears them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import rclpy
from franka_msgs.action import ErrorRecovery, Grasp, Homing, Move
from franka_msgs.msg import FrankaRobotState
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from ros_peers.testing import spin_in_thread

STEP_S = 0.01


@dataclass
class GoalRecord:
    kind: str
    start: float
    end: float = float("nan")
    success: bool | None = None
    error: str = ""


@dataclass
class _Peer:
    """A node in its own context, spun by a multi-threaded executor (goals block while the fingers move)."""

    name: str
    context: Context = field(default_factory=Context)

    def __post_init__(self) -> None:
        rclpy.init(context=self.context)
        self.node = Node(self.name, context=self.context)
        self.group = ReentrantCallbackGroup()
        self.executor = MultiThreadedExecutor(num_threads=6, context=self.context)
        self.executor.add_node(self.node)
        self._thread = spin_in_thread(self.executor, self.context)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=2.0)


class FakeFrankaGripper(_Peer):
    def __init__(self, ns: str, object_width: float | None = None, homing_s: float = 0.3) -> None:
        super().__init__("fake_franka_gripper")
        self.object_width = object_width
        self.homing_s = homing_s
        self.width = 0.08
        self.records: list[GoalRecord] = []
        self.running = 0
        self.max_running = 0
        self._lock = threading.Lock()
        self._current: GoalRecord | None = None
        for kind, action in (("grasp", Grasp), ("move", Move), ("homing", Homing)):
            ActionServer(
                self.node, action, f"{ns}/franka_gripper/{kind}",
                execute_callback=lambda handle, kind=kind: self._execute(kind, handle),
                goal_callback=lambda _goal: GoalResponse.ACCEPT,
                cancel_callback=lambda _handle: CancelResponse.ACCEPT,
                callback_group=self.group,
            )  # fmt: skip

    def _execute(self, kind: str, handle) -> object:
        goal = handle.request
        record = GoalRecord(kind, time.monotonic())
        with self._lock:
            if self._current is not None and self._current.success is None:
                self._current.error = "command aborted: preempted by a new gripper command"
            self._current = record
            self.records.append(record)
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            success, error = self._run(kind, goal, record, handle)
        finally:
            with self._lock:
                self.running -= 1
        record.end, record.success, record.error = time.monotonic(), success, error
        result = {"grasp": Grasp, "move": Move, "homing": Homing}[kind].Result(success=success, error=error)
        if handle.is_cancel_requested:
            handle.canceled()
        elif success:
            handle.succeed()
        else:
            handle.abort()
        return result

    def _move_to(self, target: float, speed: float, record: GoalRecord, handle) -> bool:
        """Move the fingers; False when preempted or cancelled on the way."""
        while abs(self.width - target) > 1e-6:
            if record.error or handle.is_cancel_requested:
                return False
            step = min(abs(target - self.width), speed * STEP_S)
            self.width += step if target > self.width else -step
            time.sleep(STEP_S)
        return not record.error

    def _run(self, kind: str, goal, record: GoalRecord, handle) -> tuple[bool, str]:
        if kind == "homing":
            ok = self._move_to(0.0, 0.08 / (self.homing_s / 2), record, handle)
            ok = ok and self._move_to(0.08, 0.08 / (self.homing_s / 2), record, handle)
            return ok, "" if ok else record.error or "cancelled"
        if kind == "move":
            ok = self._move_to(float(goal.width), float(goal.speed), record, handle)
            return ok, "" if ok else record.error or "cancelled"
        obj = self.object_width
        stop = obj if obj is not None and obj < self.width else 0.0
        if not self._move_to(stop, float(goal.speed), record, handle):
            return False, record.error or "cancelled"
        lo, hi = goal.width - goal.epsilon.inner, goal.width + goal.epsilon.outer
        if obj is not None and lo <= stop <= hi:
            return True, ""
        return False, f"grasp failed: fingers stopped at {stop:.3f} m, outside [{lo:.3f}, {hi:.3f}]"


class FakeFrankaHardware(_Peer):
    def __init__(self, ns: str, recovery_server: bool = True, recovery_s: float = 0.2) -> None:
        super().__init__("fake_franka_hardware")
        self.mode = FrankaRobotState.ROBOT_MODE_MOVE
        self.errors: dict[str, bool] = {}
        self.recoveries = 0
        self.recovery_s = recovery_s
        self.pub = self.node.create_publisher(FrankaRobotState, f"{ns}/franka_robot_state_broadcaster/robot_state", 10)
        self.node.create_timer(0.01, self._publish, callback_group=self.group)
        if recovery_server:
            self.start_recovery_server(ns)

    def start_recovery_server(self, ns: str) -> None:
        ActionServer(
            self.node, ErrorRecovery, f"{ns}/action_server/error_recovery", execute_callback=self._recover,
            callback_group=self.group,
        )  # fmt: skip

    def reflex(self, error: str = "joint_reflex") -> None:
        self.mode, self.errors = FrankaRobotState.ROBOT_MODE_REFLEX, {error: True}

    def _publish(self) -> None:
        msg = FrankaRobotState()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.robot_mode = self.mode
        for name, on in self.errors.items():
            setattr(msg.current_errors, name, on)
        self.pub.publish(msg)

    def _recover(self, handle) -> ErrorRecovery.Result:
        time.sleep(self.recovery_s)
        self.recoveries += 1
        self.mode, self.errors = FrankaRobotState.ROBOT_MODE_IDLE, {}
        handle.succeed()
        return ErrorRecovery.Result()
