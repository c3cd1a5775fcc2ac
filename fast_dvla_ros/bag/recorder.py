"""Record ROS 2 topics into a rosbag2 MCAP bag without the ros2 CLI (rclpy + rosbags).

Why not ``ros2 bag record``: the venv has no rosbag2_py/ros2cli, and the demo wants to record
from inside its own process. The recorder subscribes *raw* (CDR bytes, never deserialized, so it
keeps up at camera rates), writes them unchanged with their receive time, and embeds complete
message definitions and RIHS01 hashes (ours parsed from msg/*.msg), so Foxglove, ``ros2 bag``
and rosbags read the bag without this package.

Library use (own rclpy context, so it coexists with the nodes of the calling process)::

    with BagRecorder(out_dir, [TopicSpec("/chunk_executor/joint_trajectory"), ...]):
        run_the_demo()

CLI: ``fast-dvla-record --out DIR --topics /a /b:std_msgs/msg/String@transient_local`` (or
``--all``), until Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from rosbags.rosbag2 import StoragePlugin, Writer

from fast_dvla_ros.bag.topic_qos import QosChoice, choose, profile_for, to_bag_qos
from fast_dvla_ros.bag.typestore import typestore

# Topics every ROS graph has that are never worth recording with --all.
GRAPH_NOISE = frozenset({"/rosout", "/parameter_events"})
DISCOVERY_PERIOD_S = 0.25


class RecorderError(RuntimeError):
    """Bad topic specification, existing output folder, or a recorder used out of order."""


@dataclass(frozen=True)
class TopicSpec:
    """A topic to record. ``msgtype`` None: take it from the ROS graph once a publisher appears."""

    name: str
    msgtype: str | None = None
    qos: QosChoice = QosChoice.AUTO

    @classmethod
    def parse(cls, text: str) -> TopicSpec:
        """Parse ``/name[:pkg/msg/Type][@auto|reliable|best_effort|transient_local]``."""
        qos = QosChoice.AUTO
        if "@" in text:
            text, _, qos_text = text.rpartition("@")
            try:
                qos = QosChoice(qos_text)
            except ValueError:
                raise RecorderError(f"unknown QoS {qos_text!r}; use one of {[c.value for c in QosChoice]}") from None
        name, _, msgtype = text.partition(":")
        if not name.startswith("/"):
            raise RecorderError(f"topic names must be absolute (start with '/'): {name!r}")
        if msgtype and msgtype.count("/") != 2:
            raise RecorderError(f"message type must read pkg/msg/Type, got {msgtype!r}")
        return cls(name, msgtype or None, qos)


def message_class(msgtype: str) -> type:
    """Import the rclpy class of ``pkg/msg/Type`` (rosidl_runtime_py is not available here)."""
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


class BagRecorder:
    """Subscribes raw to topics in a background thread and writes an MCAP rosbag2 (version 9)."""

    def __init__(
        self,
        out_dir: Path | str,
        topics: Sequence[TopicSpec] = (),
        *,
        record_all: bool = False,
        node_name: str = "fast_dvla_bag_recorder",
    ) -> None:
        if not topics and not record_all:
            raise RecorderError("nothing to record: give topics or record_all=True")
        self.out_dir = Path(out_dir)
        if self.out_dir.exists():
            raise RecorderError(f"{self.out_dir} exists already; a bag is never overwritten")
        self._specs = {spec.name: spec for spec in topics}
        self._record_all = record_all
        self._node_name = node_name
        self._store = typestore()
        self._writer: Writer | None = None
        self._connections: dict[str, object] = {}
        self._counts: dict[str, int] = {}
        self._skipped: dict[str, str] = {}
        self._subscriptions: dict[str, object] = {}
        self._context: Context | None = None
        self._node: Node | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._error: BaseException | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> BagRecorder:
        """Open the bag and start recording in a daemon thread; returns self."""
        if self._thread is not None:
            raise RecorderError("recorder already started")
        self._writer = Writer(self.out_dir, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._context = Context()
        rclpy.init(context=self._context, signal_handler_options=SignalHandlerOptions.NO)
        self._node = Node(self._node_name, context=self._context)
        self._discover()  # subscribe what is visible now, before the first message can be missed
        self._node.create_timer(DISCOVERY_PERIOD_S, self._discover)
        self._thread = threading.Thread(target=self._spin, name="bag-recorder", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict[str, int]:
        """Stop, close the bag (writes metadata.yaml) and return messages written per topic."""
        if self._thread is None:
            raise RecorderError("recorder not started")
        self._stop.set()
        self._thread.join(timeout=10.0)
        try:
            if self._node is not None:
                self._node.destroy_node()
            if self._context is not None:
                rclpy.try_shutdown(context=self._context)
        finally:
            with self._lock:
                if self._writer is not None:
                    self._writer.close()
                    self._writer = None
        if self._error is not None:
            raise RecorderError(f"recording failed: {self._error!r}") from self._error
        return dict(self._counts)

    def __enter__(self) -> BagRecorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state ----------------------------------------------------------------------------
    @property
    def counts(self) -> dict[str, int]:
        """Messages written so far per subscribed topic."""
        with self._lock:
            return dict(self._counts)

    @property
    def skipped(self) -> dict[str, str]:
        """Topics that cannot be recorded, with the reason (e.g. a type without definition)."""
        return dict(self._skipped)

    def wait_for_subscriptions(self, count: int, timeout_s: float) -> bool:
        """Block until ``count`` topics are subscribed (so a caller can start publishing)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self._subscriptions) >= count:
                return True
            time.sleep(0.02)
        return len(self._subscriptions) >= count

    # -- internals ------------------------------------------------------------------------
    def _spin(self) -> None:
        executor = SingleThreadedExecutor(context=self._context)
        executor.add_node(self._node)
        try:
            while not self._stop.is_set() and self._context.ok():
                executor.spin_once(timeout_sec=0.1)
        except ExternalShutdownException:
            pass
        except Exception as err:  # reported by stop(); a recorder must not vanish silently
            self._error = err
            self._node.get_logger().error(f"recording stopped: {err!r} (the bag so far is kept)")
        finally:
            executor.shutdown(timeout_sec=1.0)

    def _wanted(self, graph: dict[str, list[str]]) -> dict[str, TopicSpec]:
        wanted = {}
        for name, spec in self._specs.items():
            types = graph.get(name, [])
            if spec.msgtype is None and types:
                spec = TopicSpec(name, types[0], spec.qos)
            wanted[name] = spec
        if self._record_all:
            for name, types in graph.items():
                if name not in wanted and name not in GRAPH_NOISE and types:
                    wanted[name] = TopicSpec(name, types[0])
        return wanted

    def _discover(self) -> None:
        """Subscribe every wanted topic whose type is known and that has a publisher (or fixed QoS)."""
        graph = dict(self._node.get_topic_names_and_types())
        for name, spec in self._wanted(graph).items():
            if name in self._subscriptions or name in self._skipped or spec.msgtype is None:
                continue
            offered = [info.qos_profile for info in self._node.get_publishers_info_by_topic(name)]
            if not offered and spec.qos is QosChoice.AUTO:
                continue  # wait for a publisher, so the QoS can match what it offers
            self._subscribe(spec, offered)

    def _subscribe(self, spec: TopicSpec, offered: list) -> None:
        try:
            cls = message_class(spec.msgtype)
            self._store.get_msgdef(spec.msgtype)
        except Exception as err:  # unknown package or type: record the rest
            self._skipped[spec.name] = f"{spec.msgtype}: {err}"
            self._node.get_logger().warning(f"not recording {spec.name}: {self._skipped[spec.name]}")
            return
        profile = profile_for(choose(spec.name, spec.msgtype, spec.qos, offered))
        with self._lock:
            self._connections[spec.name] = self._writer.add_connection(
                spec.name, spec.msgtype, typestore=self._store, offered_qos_profiles=[to_bag_qos(profile)]
            )
            self._counts[spec.name] = 0
        self._subscriptions[spec.name] = self._node.create_subscription(
            cls, spec.name, lambda raw, topic=spec.name: self._write(topic, raw), profile, raw=True
        )
        self._node.get_logger().info(f"recording {spec.name} [{spec.msgtype}]")

    def _write(self, topic: str, raw: bytes) -> None:
        stamp_ns = self._node.get_clock().now().nanoseconds
        with self._lock:
            if self._writer is None:
                return
            self._writer.write(self._connections[topic], stamp_ns, raw)
            self._counts[topic] += 1


def default_out_dir(root: Path = Path("bags")) -> Path:
    """``bags/fast_dvla_YYYYmmdd_HHMMSS`` (UTC), the same pattern the launch files use."""
    return root / datetime.now(timezone.utc).strftime("fast_dvla_%Y%m%d_%H%M%S")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fast-dvla-record",
        description="Record ROS 2 topics into a rosbag2 MCAP bag (no ros2 CLI needed). Stops on Ctrl-C.",
    )
    parser.add_argument("--out", type=Path, default=None, help="bag folder to create (default bags/fast_dvla_<UTC>)")
    parser.add_argument(
        "--topics",
        nargs="+",
        default=[],
        metavar="TOPIC",
        help="/name[:pkg/msg/Type][@auto|reliable|best_effort|transient_local]; type is discovered when omitted",
    )
    parser.add_argument("--all", action="store_true", help="record every topic that appears (but /rosout)")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: record until Ctrl-C, SIGTERM or --duration."""
    args = _parser().parse_args(argv)
    try:
        specs = [TopicSpec.parse(text) for text in args.topics]
        recorder = BagRecorder(args.out or default_out_dir(), specs, record_all=args.all)
    except RecorderError as err:
        print(f"fast-dvla-record: {err}", file=sys.stderr)
        return 2
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    recorder.start()
    print(f"recording to {recorder.out_dir} (Ctrl-C to stop)", file=sys.stderr)
    done.wait(timeout=args.duration)
    counts = recorder.stop()
    for topic, count in sorted(counts.items()):
        print(f"{count:8d}  {topic}", file=sys.stderr)
    for topic, reason in sorted(recorder.skipped.items()):
        print(f"skipped   {topic}: {reason}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
