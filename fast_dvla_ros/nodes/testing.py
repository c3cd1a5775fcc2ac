"""Helpers for process-level node tests: start a node as its own process, and a probe node.

Used by test/test_nodes_*.py (and usable by the demo's tests): every node runs exactly as a user
would run it (``python -m fast_dvla_ros.nodes.x --ros-args ...``), talking over real DDS.
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
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # shutting down
                return

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
