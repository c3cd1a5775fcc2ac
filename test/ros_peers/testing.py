"""Helpers for process-level node tests: start a node as its own process, and a probe node.

Used by test/test_nodes_*.py: every node runs exactly as a user would run it
(``python -m fast_dvla_ros.nodes.x --ros-args ...``), talking over real DDS.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile

ROOT = Path(__file__).resolve().parents[2]


class NodeProcess:
    """One node process; ``stop()`` sends SIGINT (like Ctrl-C) and returns the exit code and output."""

    def __init__(self, module: str, ros_args: list[str], name: str | None = None) -> None:
        self.module = module
        cmd = [sys.executable, "-m", f"fast_dvla_ros.nodes.{module}", "--ros-args", *ros_args]
        if name:
            cmd += ["-r", f"__node:={name}"]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # A file, not a pipe: a chatty node must never block on a full pipe buffer.
        self._log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, text=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    @property
    def output(self) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read()

    def stop(self, timeout: float = 10.0) -> tuple[int | None, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        code = self.wait(timeout)
        if code is None:
            self.proc.kill()
            self.proc.wait()
        return code, self.output


def spin_in_thread(executor: Any, context: Context) -> threading.Thread:
    """Spin ``executor`` in a daemon thread until ``context`` shuts down."""

    def spin() -> None:
        while context.ok():
            try:
                executor.spin_once(timeout_sec=0.05)
            except Exception as exc:  # shutting down; otherwise say so and go on (a silent stop hangs tests)
                if not context.ok():
                    return
                print(f"spin_once raised {exc!r}", flush=True)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    return thread


class Probe:
    """An rclpy node in its own context and thread that records messages and publishes test input."""

    def __init__(self, name: str = "test_probe") -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.messages: dict[str, list[tuple[float, Any]]] = defaultdict(list)
        self._lock = threading.Lock()
        self._thread = spin_in_thread(self.executor, self.context)

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def record(self, msg_type: type, topic: str, qos: QoSProfile) -> None:
        def cb(msg: Any) -> None:
            with self._lock:
                self.messages[topic].append((time.monotonic(), msg))

        self.node.create_subscription(msg_type, topic, cb, qos)

    def got(self, topic: str) -> list[Any]:
        with self._lock:
            return [m for _, m in self.messages[topic]]

    def clear(self, topic: str) -> None:
        with self._lock:
            self.messages[topic].clear()

    def wait_for(self, predicate: Callable[[], bool], timeout: float, poll: float = 0.05) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            time.sleep(poll)
        return predicate()

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=2.0)


def check_commands_safe(
    trajectories: list,
    joint_names: list[str],
    lower: np.ndarray,
    upper: np.ndarray,
    vmax: np.ndarray,
    rate_hz: float,
    allowed_jumps: int = 0,
) -> int:
    """Assert every JointTrajectory is what may reach a robot: finite, within limits, rate-limited.

    Checks: stamp 0 (JTC "now"), >= 2 points, strictly increasing times, positions within the
    position limits, |velocity| <= vmax, consecutive points within vmax * dt, and the first point of
    consecutive messages within vmax * 4 dt (the executor's "now" moves at most vmax * 2 dt between ticks on
    a loaded machine, and each message's first point lies at most vmax * dt from its own "now"),
    except for at most ``allowed_jumps`` messages: the executor re-anchors its command to the MEASURED
    arm when the arm is far from the command (reset, blocked arm), which is a jump of the command
    towards where the arm already is. Returns the number of such jumps.
    """
    dt = 1.0 / rate_hz
    firsts = []
    for msg in trajectories:
        assert list(msg.joint_names) == list(joint_names)
        assert len(msg.points) >= 2
        assert msg.header.stamp.sec == 0 and msg.header.stamp.nanosec == 0
        q = np.array([p.positions for p in msg.points], dtype=np.float64)
        v = np.array([p.velocities for p in msg.points], dtype=np.float64)
        t = np.array([p.time_from_start.sec + 1e-9 * p.time_from_start.nanosec for p in msg.points])
        assert np.all(np.isfinite(q)) and np.all(np.isfinite(v)), "non-finite command"
        assert np.all(q >= lower - 1e-9) and np.all(q <= upper + 1e-9), "command outside the position limits"
        assert np.all(np.abs(v) <= vmax + 1e-6), "command velocity above the limit"
        assert t[0] > 0 and np.all(np.diff(t) > 0)
        assert np.all(np.abs(np.diff(q, axis=0)) <= vmax * dt + 1e-6), "points not rate-limited"
        firsts.append(q[0])
    jumps = 0
    if len(firsts) > 1:
        jumps = int(np.count_nonzero(np.any(np.abs(np.diff(np.array(firsts), axis=0)) > vmax * 4 * dt + 1e-6, axis=1)))
    assert jumps <= allowed_jumps, f"{jumps} jumps between messages ({allowed_jumps} re-anchors reported)"
    return jumps


def count_reanchors(statuses: list) -> int:
    """Re-anchor events seen in a list of ExecutorStatus messages (changes of last_event naming one)."""
    events = [s.last_event for s in statuses]
    return sum(1 for a, b in zip(["", *events], events, strict=False) if b != a and "re-anchored" in b)
