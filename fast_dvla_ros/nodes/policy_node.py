"""``fast_dvla_policy``: decodes action chunks from the newest camera image + joint state.

Why a worker thread: a decode takes tens of milliseconds; run in a callback it would stall the
subscriptions and the node would decode old images. Here callbacks only validate the messages and
hand them to a ``PolicyRunner`` (fast_dvla_ros/core/policy_runner.py: the ROS-free rules for which
observation is decoded when, and what an episode start discards), and one worker decodes each new
camera frame, at most at ``control_rate_hz``. A chunk is stamped with the OBSERVATION's time (the
image stamp), so the executor can drop the steps that went by while decoding.

Parameters left empty take the checkpoint's value (its config.json ``runtime``, core/contract.py): the
decoder and its settings, the action rate, and the chunk rate, which defaults to the action rate.

``~/episode_start`` (fast_dvla_ros/msg/EpisodeStart, latched): the scene was reset. Observations
from before it are dropped and a decode running on one is not published.

Stale or malformed observations produce no chunk (see execution/observation_guard.py): the
executor's watchdog then holds the arm, which is the safe reaction to a broken camera.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import String

from fast_dvla_ros.core.decoder_options import DecoderSpecError, parse_decoder_spec
from fast_dvla_ros.execution.limits import JointLimits, load_joint_limits
from fast_dvla_ros.execution.observation_guard import ObservationError, check_within_limits, pick_joints
from fast_dvla_ros.graph.parameters import POLICY_PARAMETERS
from fast_dvla_ros.graph.topics import POLICY_NODE
from fast_dvla_ros.msg import ActionChunk, EpisodeStart
from fast_dvla_ros.nodes.conversions import (
    compressed_to_rgb,
    duration_to_sec,
    image_to_rgb,
    sec_to_duration,
    sec_to_time,
    time_to_sec,
)
from fast_dvla_ros.nodes.parameters import declare_all
from fast_dvla_ros.nodes.qos import CHUNK_QOS, LATCHED_QOS, SENSOR_QOS, STATUS_QOS
from fast_dvla_ros.nodes.runner import StartupError, run_node

if TYPE_CHECKING:  # torch is imported lazily, after the parameters are checked
    from fast_dvla_ros.core.policy import Policy, PolicyResult
    from fast_dvla_ros.core.policy_runner import PendingObservation

NODE_NAME = POLICY_NODE
# The best measured picker in this loop's mode (a chunk every control step through the executor's temporal
# ensemble): the paper's Fast-dVLA student, 90% over 50 seeded simulator episodes against the baseline
# teacher's 80% (models/README.md). How to decode it comes with it (its config.json).
DEFAULT_CHECKPOINT = "student_distilled"
# Decoder options go in the decoder spec; a value for one of these names (an older params file, -p n:=2)
# would otherwise be ignored without a word, as rclpy ignores overrides of undeclared parameters.
REMOVED_PARAMETERS = ("tau_conf", "readout", "n", "tau_add", "tau_act", "steps")


def default_checkpoint() -> Path:
    """models/<DEFAULT_CHECKPOINT> from the source tree, else from the installed package's share dir."""
    src = Path(__file__).resolve().parents[2] / "models" / DEFAULT_CHECKPOINT
    if src.exists():
        return src
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("fast_dvla_ros")) / "models" / DEFAULT_CHECKPOINT
    except Exception:  # no ament index (pip install): report the source path
        return src


class DecodeCancelled(Exception):
    """Raised inside a forward pass once the node is shutting down: ends a running decode early."""


class PolicyNode(Node):
    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        declare_all(self, POLICY_PARAMETERS)

        g = self.get_parameter
        self.joint_names = list(g("joint_names").value)
        self.gripper_joints = list(g("gripper_joint_names").value)
        self.limits = self._load_limits(str(g("joint_limits").value).strip())
        self.max_age = float(g("max_observation_age_s").value)
        self.policy = self._load_policy()
        if self.policy.contract_note:
            self.get_logger().warning(self.policy.contract_note)
        # Not the chunk rate: the time between the steps of a chunk is a property of the training data.
        self.action_rate_hz = float(g("action_rate_hz").value) or self.policy.action_rate_hz
        self.step_period = 1.0 / self.action_rate_hz
        self.period = 1.0 / (float(g("control_rate_hz").value) or self.action_rate_hz)
        self.checkpoint_label = self.policy.checkpoint_name
        if len(self.policy.action_names) != len(self.joint_names) + 1:
            raise StartupError(
                f"checkpoint actions {self.policy.action_names} do not fit {len(self.joint_names)} joints + gripper"
            )
        h = int(g("horizon").value)
        self.horizon = self.policy.horizon if h <= 0 else min(h, self.policy.horizon)
        warm = None
        if bool(g("warmup").value):
            warm = self.policy.warmup(2)
            self.get_logger().info(f"warm-up decode: {1000 * warm.latency_s:.1f} ms")
        prefix = int(g("action_prefix_steps").value)
        prefix = self.policy.max_prefix_steps if prefix < 0 else prefix
        if prefix > self.policy.max_prefix_steps:
            self.get_logger().warning(
                f"action_prefix_steps {prefix}: the checkpoint was trained with prefixes of at most "
                f"{self.policy.max_prefix_steps} steps; using {self.policy.max_prefix_steps}"
            )

        from fast_dvla_ros.core.policy_runner import PolicyRunner

        self.runner = PolicyRunner(
            self.policy,
            action_rate_hz=self.action_rate_hz,
            max_age_s=self.max_age,
            instruction=str(g("instruction").value),
            clock=self._now,
            # 0.9: a gate of exactly one period beside a camera at the same rate locks each decode start to
            # the previous one's phase, so every frame waited for the gate (22 ms of camera age measured on
            # the real-time replay); slightly shorter, it only stops a faster camera from outpacing the rate.
            min_period_s=0.9 * self.period,
            prefix_steps=min(prefix, self.horizon - 1),
        )
        if warm is not None:
            self.runner.observe_decode(warm.latency_s)
        self._stop = threading.Event()
        self._seq = 0
        # Shutdown mid-decode: a decode is tens of forward passes and can take seconds with a slow decoder or a
        # big model on a busy CPU; launch escalates to SIGTERM 5 s after SIGINT. Every decoder runs the action
        # head once per forward pass (the backbone may run on core/fast_backbone.py, which is no nn.Module), so
        # a check there ends a running decode within one forward pass of close() (issue 19). Cost: one Python
        # call per forward, microseconds beside a forward's milliseconds.
        self._cancel_hook = self.policy.model.head.register_forward_pre_hook(self._cancel_if_stopping)

        # the callbacks only validate and store the newest message; decoding runs in its own thread
        self.create_subscription(Image, "~/image", self._on_image, SENSOR_QOS)
        self.create_subscription(CompressedImage, "~/image/compressed", self._on_compressed, SENSOR_QOS)
        self.create_subscription(JointState, "~/joint_states", self._on_joint_state, SENSOR_QOS)
        self.create_subscription(String, "~/instruction", self._on_instruction, LATCHED_QOS)
        self.create_subscription(EpisodeStart, "~/episode_start", self._on_episode_start, LATCHED_QOS)
        if self.runner.prefix_steps:
            self.create_subscription(ActionChunk, "~/plan", self._on_plan, SENSOR_QOS)
        self.chunk_pub = self.create_publisher(ActionChunk, "~/action_chunk", CHUNK_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", STATUS_QOS)
        self._worker = threading.Thread(target=self._decode_loop, name="decode", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"policy '{self.checkpoint_label}' decoder {self.policy.decoder_spec}, horizon {self.horizon}, "
            f"steps {1000 * self.step_period:.1f} ms apart, up to {1 / self.period:.1f} chunks/s, "
            + (f"action prefix up to {self.runner.prefix_steps} steps from ~/plan" if self.runner.prefix_steps
               else "no action prefix")
        )

    # ------------------------------------------------------------------ setup
    def _load_limits(self, table: str) -> JointLimits | None:
        if not table:
            return None
        try:
            limits = load_joint_limits(table)
            return limits if list(limits.joint_names) == self.joint_names else limits.renamed(self.joint_names)
        except ValueError as exc:
            raise StartupError(f"{NODE_NAME}: invalid joint_limits {table!r}: {exc}") from exc

    def _load_policy(self) -> Policy:
        g = self.get_parameter
        path = str(g("checkpoint").value).strip()
        ck = Path(path).expanduser() if path else default_checkpoint()
        decoder = str(g("decoder").value).strip()
        stale = sorted(set(REMOVED_PARAMETERS) & set(getattr(self, "_parameter_overrides", {})))
        if stale:
            raise StartupError(
                f"parameters {', '.join(stale)} are no longer read: give decoder options in the decoder spec, "
                "e.g. decoder:=pipelined:n=2 (or leave decoder empty for the checkpoint's settings)"
            )
        try:
            if decoder:  # a typo fails here, before torch is imported and the checkpoint loaded
                parse_decoder_spec(decoder)
        except DecoderSpecError as exc:
            raise StartupError(f"invalid decoder {decoder!r}: {exc}") from exc
        if not ck.is_dir():
            raise StartupError(f"checkpoint not found: {ck} (set the 'checkpoint' parameter to a checkpoint directory)")
        import torch

        from fast_dvla_ros.core.policy import Policy

        threads = int(g("num_threads").value)
        if threads > 0:
            torch.set_num_threads(threads)
        try:
            return Policy.load(ck, decoder=decoder, device=str(g("device").value))
        except Exception as exc:  # corrupt files, wrong format, no CUDA: one clear line, no traceback
            raise StartupError(f"cannot load checkpoint {ck}: {type(exc).__name__}: {exc}") from exc

    # ------------------------------------------------------------------ callbacks: validate + store newest
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _store_image(self, rgb: np.ndarray, stamp_msg: Time) -> None:
        stamp = time_to_sec(stamp_msg)
        if stamp <= 0:  # unstamped camera: the receive time is the best estimate of the observation time
            stamp = self._now()
            stamp_msg = sec_to_time(stamp)
        self.runner.on_image(rgb, stamp, stamp_msg)

    def _on_image(self, msg: Image) -> None:
        try:
            rgb = image_to_rgb(msg)
        except ObservationError as exc:
            self.get_logger().warning(f"image ignored: {exc}", throttle_duration_sec=2.0)
            return
        self._store_image(rgb, msg.header.stamp)

    def _on_compressed(self, msg: CompressedImage) -> None:
        try:
            rgb = compressed_to_rgb(msg)
        except ObservationError as exc:
            self.get_logger().warning(f"compressed image ignored: {exc}", throttle_duration_sec=2.0)
            return
        self._store_image(rgb, msg.header.stamp)

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            q = pick_joints(msg.name, msg.position, self.joint_names)
            if self.limits is not None:  # a pose the arm cannot be in must not condition a chunk
                check_within_limits(q, self.joint_names, self.limits.lower, self.limits.upper)
            width = (
                float(pick_joints(msg.name, msg.position, self.gripper_joints).sum()) if self.gripper_joints else 0.08
            )
        except ObservationError as exc:
            self.get_logger().warning(f"joint state ignored: {exc}", throttle_duration_sec=2.0)
            return
        stamp = time_to_sec(msg.header.stamp)
        self.runner.on_joints(np.append(q, width), stamp if stamp > 0 else self._now())

    def _on_plan(self, msg: ActionChunk) -> None:
        """The executor's plan, columns put in the policy's joint order (+ gripper)."""
        try:
            names = list(msg.joint_names)
            h = int(msg.horizon)
            a = np.asarray(msg.actions, dtype=np.float64).reshape(h, len(names))
            cols = [names.index(n) for n in self.joint_names]
            values = np.concatenate([a[:, cols], np.asarray(msg.gripper, dtype=np.float64).reshape(h, 1)], axis=1)
        except ValueError as exc:  # wrong joints or sizes: no prefix from it (chunks are decoded whole)
            self.get_logger().warning(f"plan ignored: {exc}", throttle_duration_sec=5.0)
            return
        self.runner.on_plan(values, time_to_sec(msg.header.stamp), duration_to_sec(msg.step_period), msg.sequence_id)

    def _on_instruction(self, msg: String) -> None:
        text = msg.data.strip()
        if not text:
            self.get_logger().warning("empty instruction ignored")
            return
        if self.runner.on_instruction(text):
            self.get_logger().info(f"instruction: {text!r}")

    def _on_episode_start(self, msg: EpisodeStart) -> None:
        stamp = time_to_sec(msg.header.stamp)
        self.runner.start_episode(stamp if stamp > 0 else self._now(), msg.instruction.strip())
        self.get_logger().info(f"episode {msg.episode} started at {stamp:.3f}: older observations dropped")

    # ------------------------------------------------------------------ worker
    def _decode_loop(self) -> None:
        while not self._stop.is_set():
            pending = self.runner.wait_for_observation(timeout_s=0.1)
            if pending is None:
                continue
            if isinstance(pending, str):
                self.get_logger().warning(pending, throttle_duration_sec=2.0)
                continue
            try:
                result = self.runner.decode(pending)
                self.runner.observe_decode(result.stats.latency_s)
            except DecodeCancelled:
                return
            except Exception as exc:  # a bad observation or a decoder bug must not kill the node
                self.get_logger().error(f"decode failed: {type(exc).__name__}: {exc}", throttle_duration_sec=2.0)
                continue
            if self._stop.is_set() or not self.context.ok():
                return
            if not self.runner.still_current(pending):
                self.get_logger().info("chunk of a pre-reset observation not published")
                continue
            try:
                self._publish(result, pending)
            except Exception as exc:  # Ctrl-C can invalidate the context between the check and publish
                if not self.context.ok():
                    return
                self.get_logger().error(f"publish failed: {type(exc).__name__}: {exc}", throttle_duration_sec=2.0)

    def _publish(self, result: PolicyResult, pending: PendingObservation) -> None:
        token = pending.image_token
        stamp = token if isinstance(token, Time) else sec_to_time(pending.image_stamp)
        actions = np.asarray(result.actions, dtype=np.float64)[: self.horizon]
        if not np.all(np.isfinite(actions)):
            self.get_logger().error("decoder produced NaN/inf actions: chunk dropped")
            return
        j = len(self.joint_names)
        self._seq += 1
        s = result.stats
        msg = ActionChunk()
        msg.header.stamp = stamp
        msg.sequence_id = self._seq
        msg.action_kind = ActionChunk.ACTION_KIND_JOINT_POSITION
        msg.joint_names = self.joint_names
        msg.step_period = sec_to_duration(self.step_period)
        msg.horizon = int(actions.shape[0])
        msg.actions = actions[:, :j].reshape(-1).tolist()
        msg.gripper = actions[:, j].tolist()
        msg.prefix_steps = min(int(result.prefix_steps), msg.horizon - 1)
        msg.decoder = self.policy.decoder_name
        msg.checkpoint = self.checkpoint_label
        msg.stats.latency_s = float(s.latency_s)
        msg.stats.forward_passes = int(s.forward_passes)
        msg.stats.tokens_committed = int(s.tokens_committed)
        msg.stats.tokens_per_second = float(s.tokens_per_second)
        msg.stats.tokens_per_forward = float(s.tokens_per_forward)
        msg.stats.observation_age_s = float(pending.age_s)
        self.chunk_pub.publish(msg)
        self.runner.published(pending, result, self._seq)  # the plan to continue, until the executor's says otherwise
        self._publish_diagnostics(msg)

    def _publish_diagnostics(self, chunk: ActionChunk) -> None:
        s = chunk.stats
        st = DiagnosticStatus()
        st.name = f"{self.get_name()}: decoder"
        st.hardware_id = self.checkpoint_label
        late = s.latency_s > self.period
        st.level = DiagnosticStatus.WARN if late else DiagnosticStatus.OK
        st.message = f"decode {1000 * s.latency_s:.1f} ms" + (" (slower than the control rate)" if late else "")
        values = {
            "decoder": chunk.decoder,
            "sequence_id": str(chunk.sequence_id),
            "latency_s": f"{s.latency_s:.6f}",
            "forward_passes": str(s.forward_passes),
            "tokens_committed": str(s.tokens_committed),
            "tokens_per_second": f"{s.tokens_per_second:.1f}",
            "tokens_per_forward": f"{s.tokens_per_forward:.3f}" if math.isfinite(s.tokens_per_forward) else "nan",
        }
        st.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [st]
        self.diag_pub.publish(arr)

    def _cancel_if_stopping(self, _module: object, _args: object) -> None:
        if self._stop.is_set():
            raise DecodeCancelled

    def close(self) -> None:
        self._stop.set()
        self.runner.wake()
        self._worker.join(timeout=1.5)  # a decode stops at its next forward pass (_cancel_if_stopping)
        if self._worker.is_alive():
            self.get_logger().warning("decode thread still running at shutdown")
        self._cancel_hook.remove()


def main(argv: list[str] | None = None) -> int:
    # short callbacks, the decode worker is its own thread; torch's teardown would delay the exit (run_node)
    return run_node(PolicyNode, argv, threads=1, skip_finalization=True)


if __name__ == "__main__":
    raise SystemExit(main())
