"""The main job (`make demo`): the simulated conveyor-picking loop, end to end, over real DDS.

Starts three separate processes — the conveyor simulator node, the policy node (shipped
Fast-dVLA checkpoint, decoded as its config.json recommends) and the chunk executor node — wired exactly as
`launch/sim_conveyor.launch.py` wires them on a ROS install, records every topic of the loop to an
MCAP bag (rosbags writer, no ROS CLI needed), and when the simulator has finished its episodes
(or on Ctrl-C, or after --duration) stops everything cleanly and prints a summary computed from
the bag: command rate achieved, decode latency p50/p99, executor underruns and watchdog trips,
episodes and success. The full report with plots is one command away: `fast-dvla-eval <bag>`.

Discovery is limited to this machine unless ROS_AUTOMATIC_DISCOVERY_RANGE is already set, so a
demo never talks to a robot on the lab network.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from fast_dvla_ros.core.decoder_options import decoder_spec_argument
from fast_dvla_ros.execution.blender import BLEND_MODES
from fast_dvla_ros.graph import topics as graph

ROOT = Path(__file__).resolve().parents[1]

# Global topic names of the demo graph: the simulator launch's defaults (fast_dvla_ros/graph/topics.py).
_SIM = graph.names("sim")
TOPICS = {
    "image": _SIM["image"],
    "joint_states": _SIM["policy_joint_states"],
    "instruction": _SIM["instruction"],
    "action_chunk": _SIM["action_chunk"],
    "trajectory": _SIM["trajectory"],
    "gripper": _SIM["gripper_command"],
    "status": _SIM["status"],
    "outcome": _SIM["episode_outcome"],
    "episode_start": _SIM["episode_start"],
}
RECORDED = [
    (TOPICS["action_chunk"], "fast_dvla_ros/msg/ActionChunk"),
    (TOPICS["trajectory"], "trajectory_msgs/msg/JointTrajectory"),
    (TOPICS["gripper"], "std_msgs/msg/Float64"),
    (TOPICS["status"], "fast_dvla_ros/msg/ExecutorStatus"),
    (TOPICS["outcome"], "fast_dvla_ros/msg/EpisodeOutcome"),
    (TOPICS["episode_start"], "fast_dvla_ros/msg/EpisodeStart"),
    (TOPICS["joint_states"], "sensor_msgs/msg/JointState"),
    ("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray"),
]


def _ros_args(node: str, params_file: Path, remaps: dict[str, str], params: dict[str, str]) -> list[str]:
    args = ["--ros-args", "-r", f"__node:={node}", "--params-file", str(params_file)]
    for src, dst in remaps.items():
        args += ["-r", f"{src}:={dst}"]
    for key, value in params.items():
        args += ["-p", f"{key}:={value}"]
    return args


def node_commands(args: argparse.Namespace, params_file: Path) -> dict[str, list[str]]:
    """The three node processes, remapped as sim_conveyor.launch.py remaps them (graph.remaps)."""

    def cmd(module: str, ros_args: list[str]) -> list[str]:
        return [sys.executable, "-m", f"fast_dvla_ros.nodes.{module}", *ros_args]

    policy_params = {"decoder": args.decoder} if args.decoder else {}  # else the params file's
    if getattr(args, "action_prefix_steps", None) is not None:
        policy_params["action_prefix_steps"] = str(args.action_prefix_steps)
    if args.checkpoint:
        policy_params["checkpoint"] = str(Path(args.checkpoint).resolve())
    return {
        "sim": cmd("sim_node", _ros_args(
            graph.SIM_NODE, params_file, graph.remaps(graph.SIM_NODE, "sim"),
            {"episodes": str(args.episodes), "seed": str(args.seed)},
        )),
        "policy": cmd("policy_node", _ros_args(
            graph.POLICY_NODE, params_file, graph.remaps(graph.POLICY_NODE, "sim"), policy_params,
        )),
        "executor": cmd("executor_node", _ros_args(
            graph.EXECUTOR_NODE, params_file, graph.remaps(graph.EXECUTOR_NODE, "sim"),
            {"blend_mode": args.blend_mode},
        )),
    }


def start_nodes(commands: dict[str, list[str]]) -> dict[str, subprocess.Popen]:
    """Start the node processes, each in its own session: a terminal Ctrl-C reaches the demo only,
    which then stops the nodes in order (recorder last) instead of all of them racing."""
    return {name: subprocess.Popen(cmd, start_new_session=True) for name, cmd in commands.items()}


def _stop(procs: dict[str, subprocess.Popen], timeout_s: float = 15.0) -> dict[str, int | None]:
    """SIGINT every process (what Ctrl-C in a launch does), then wait; kill only what hangs."""
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout_s
    codes: dict[str, int | None] = {}
    for name, p in procs.items():
        try:
            codes[name] = p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            codes[name] = None
    return codes


def summarize(bag: Path, wall_s: float, exit_codes: dict[str, int | None]) -> str:
    """Short summary from the recorded bag (same analysis as fast-dvla-eval).

    The loop's outcome comes first (success with its 95% Wilson interval, failure causes, how well
    aimed the first grasp was), then where the observation -> command time went, then the timing.
    """
    from fast_dvla_ros.evaluation.analysis import analyze

    a = analyze(bag, nominal_rate_hz=30.0)
    lines = [f"\n=== fast_dvla_ros demo summary ({wall_s:.0f} s wall) ===", f"bag: {bag}"]
    if a.outcomes:
        o = a.outcomes
        lines.append(f"loop success {o.describe_success()}")
        lines.append(f"failure causes: {o.describe_causes()}")
        lines.append(f"first-close hand-to-block distance: {o.describe_first_close()}")
    else:
        lines.append("loop success: no episode finished")
    split = a.obs_to_command.split if a.obs_to_command else None
    lines.append(f"observation -> command: {split.describe() if split else 'no chunk was followed by a command'}")
    status = a.series.status
    if status is not None and status.time_s.size > 2:
        span = float(status.time_s[-1] - status.time_s[0])
        lines.append(f"executor tick: {(status.time_s.size - 1) / max(span, 1e-9):.2f} Hz (ExecutorStatus)")
    if a.rate:
        r = a.rate
        # More than the tick rate: an accepted chunk is also sent at once (executor command_on_chunk).
        lines.append(
            f"trajectory messages: {r.mean_rate_hz:.2f}/s over {r.count} (ticks + sends on chunk arrival; "
            f"gaps > 1.5 tick periods: {len(r.gaps)})"
        )
    else:
        lines.append("trajectory messages: none recorded")
    for name, d in a.decoders.items():
        lines.append(
            f"decode latency [{name}]: p50 {1000 * d.latency.p50:.1f} ms, p99 {1000 * d.latency.p99:.1f} ms "
            f"over {d.latency.count} chunks, {d.mean_tokens_per_second:.0f} tokens/s, "
            f"{d.mean_tokens_per_forward:.2f} tokens/forward"
        )
    if a.executor:
        t = a.executor.totals
        lines.append(
            f"executor: underruns {t.get('underruns', 0)}, watchdog trips {t.get('watchdog_trips', 0)}, "
            f"chunks rejected {t.get('chunks_rejected', 0)}, values clamped {t.get('clamped_values', 0)}"
        )
    lines.append("exit codes: " + ", ".join(f"{k} {v}" for k, v in exit_codes.items()))
    lines.append(f"full report: fast-dvla-eval {bag} --out {bag}_report")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=3, help="simulated episodes (0 = until Ctrl-C/--duration)")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0 = no limit)")
    p.add_argument("--decoder", default="", type=decoder_spec_argument,
                   help="decoder spec, e.g. bidirectional or pipelined:n=2 (default: the params file's; there '' = "
                   "the checkpoint's decoder and settings)")
    p.add_argument("--checkpoint", help="checkpoint directory (default: the policy node's shipped default)")
    p.add_argument("--blend-mode", default="temporal_ensemble", choices=BLEND_MODES)
    p.add_argument("--seed", type=int, default=0, help="first episode seed of the simulator")
    p.add_argument("--params-file", type=Path, default=ROOT / "config" / "sim_conveyor.yaml")
    p.add_argument("--out", type=Path, help="bag folder (default runs/demo/<UTC time>)")
    a = p.parse_args(argv)

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    bag = a.out or ROOT / "runs" / "demo" / datetime.now(timezone.utc).strftime("fast_dvla_%Y%m%d_%H%M%S")
    bag.parent.mkdir(parents=True, exist_ok=True)

    from fast_dvla_ros.bag.recorder import BagRecorder, TopicSpec

    recorder = BagRecorder(bag, [TopicSpec(t, ty) for t, ty in RECORDED])
    recorder.start()
    procs: dict[str, subprocess.Popen] = {}
    interrupted = False
    previous = signal.getsignal(signal.SIGINT)

    def _on_sigint(signum, frame) -> None:
        nonlocal interrupted
        interrupted = True

    signal.signal(signal.SIGINT, _on_sigint)
    t0 = time.monotonic()
    try:
        procs.update(start_nodes(node_commands(a, a.params_file)))
        print(f"[demo] started {', '.join(procs)}; recording to {bag}; Ctrl-C stops", flush=True)
        while not interrupted:
            if procs["sim"].poll() is not None:
                print(f"[demo] simulator finished (exit {procs['sim'].returncode})", flush=True)
                break
            dead = [n for n, pr in procs.items() if pr.poll() is not None and n != "sim"]
            if dead:
                print(f"[demo] {', '.join(dead)} exited early (exit {procs[dead[0]].returncode})", flush=True)
                break
            if a.duration and time.monotonic() - t0 > a.duration:
                print(f"[demo] --duration {a.duration:.0f} s reached", flush=True)
                break
            time.sleep(0.2)
        time.sleep(0.5)  # let the last outcome/status reach the recorder
    finally:
        codes = _stop(procs)
        recorder.stop()
        signal.signal(signal.SIGINT, previous)
    wall = time.monotonic() - t0
    print(summarize(bag, wall, codes), flush=True)
    failed = [n for n, c in codes.items() if c not in (0, None) and not (n == "sim" and c == 0)]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
