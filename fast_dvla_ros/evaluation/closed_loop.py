"""Closed-loop evaluation of a checkpoint + decoder in the conveyor simulator, without ROS.

``fast-dvla-sim-eval --checkpoint models/student_distilled --decoder pipelined --episodes 50``

Each seeded episode runs synchronously: observe, decode a chunk, execute its first
``execute_steps`` actions at the simulator's control rate, repeat (openpi-style receding horizon). The
simulator waits for the decoder, so success measures the policy's skill, not the machine's speed;
decode latency is measured alongside and reported separately. Seeds are the same for every
checkpoint/decoder, so rows of one table are paired comparisons.

``--blend temporal_ensemble`` (or ``latest``, ``rtc_freeze``) runs the ROS executor's own
``ChunkBlender`` instead: every decoded chunk is stamped with the simulated observation time and
added to the blender, and each executed action is the blended plan at that step's time, as the
chunk executor does on the arm (with ``--execute-steps 1``: a new chunk every control step, the
ROS loop when decoding keeps up). Without it the evaluation measures the policy alone.

``--realtime`` replays the ROS loop's asynchrony instead (fast_dvla_ros/evaluation/realtime.py): the
loop's executor, policy runner and JTC follower on one simulated clock, decode times as measured (or
``--decode-latency-ms``, or drawn from a loop bag's recorded decodes with ``--decode-latencies-from BAG``:
then the result does not depend on the machine's load), node settings from ``--params-file``
(config/sim_conveyor.yaml, what the loop runs). Its success is the one that predicts the real-time ROS
loop's (bench/RESULTS.md section 3).

Printed table per run: success rate with a 95% Wilson interval, failure causes, mean/p50/p99
decode latency, forwards per chunk, tokens per forward, tokens/s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from fast_dvla_ros.core.checkpoint import CheckpointError
from fast_dvla_ros.core.decoder_options import decoder_spec_argument
from fast_dvla_ros.core.policy import Policy
from fast_dvla_ros.evaluation.episodes import ChunkStepper, PolicyDriver, run_episode
from fast_dvla_ros.evaluation.intervals import wilson_interval
from fast_dvla_ros.execution.blender import BLEND_MODES

if TYPE_CHECKING:
    from fast_dvla_ros.evaluation.realtime import RealtimeSettings


@dataclass
class EvalResult:
    checkpoint: str
    decoder: str
    episodes: int
    successes: int
    success_rate: float
    ci95: tuple[float, float]
    failure_causes: dict[str, int]
    latency_mean_ms: float
    latency_p50_ms: float
    latency_p99_ms: float
    forwards_per_chunk: float
    tokens_per_forward: float
    tokens_per_second: float
    chunks: int
    belt_speed: tuple[float, float] | None = None
    execute_steps: int = 4
    blend: str | None = None
    latency_steps: int = 0
    realtime: bool = False
    obs_to_command_p50_ms: float = float("nan")  # realtime mode: image stamp -> first command using the chunk
    camera_age_p50_ms: float = float("nan")
    # realtime mode: mean action-prefix steps per chunk, and the executor's switch-over jumps (ExecutorCounters)
    prefix_steps_mean: float = 0.0
    seam_velocity_jump_p50: float = float("nan")  # rad/s
    seam_velocity_jump_p99: float = float("nan")
    seam_acceleration_jump_p99: float = float("nan")  # rad/s^2
    per_episode: list[dict] = field(default_factory=list)

    def row(self) -> str:
        lo, hi = self.ci95
        causes = ", ".join(f"{k}:{v}" for k, v in sorted(self.failure_causes.items())) or "-"
        return (
            f"| {self.checkpoint} | {self.decoder} | {self.successes}/{self.episodes} = {100 * self.success_rate:.0f}% "
            f"[{100 * lo:.0f}, {100 * hi:.0f}] | {causes} | {self.latency_mean_ms:.1f} | {self.latency_p50_ms:.1f} | "
            f"{self.latency_p99_ms:.1f} | {self.forwards_per_chunk:.2f} | {self.tokens_per_forward:.2f} | "
            f"{self.tokens_per_second:.0f} |"
        )


TABLE_HEADER = (
    "| checkpoint | decoder | success [95% CI] | failures | latency mean ms | p50 ms | p99 ms | forwards/chunk "
    "| tokens/forward | tokens/s |\n|---|---|---|---|---|---|---|---|---|---|"
)


def evaluate(
    policy: Policy,
    episodes: int,
    seed0: int = 1000,
    execute_steps: int = 4,
    sim_overrides: dict | None = None,
    progress: bool = True,
    blend: str | None = None,
    ensemble_m: float = 0.1,
    latency_steps: int = 0,
    realtime: bool = False,
    realtime_settings: RealtimeSettings | None = None,
) -> EvalResult:
    """Run ``episodes`` seeded episodes (seeds seed0, seed0+1, ...) and aggregate.

    ``blend`` (one of ``BLEND_MODES``, None = execute the newest chunk as decoded): chunks go through
    the executor's ``ChunkBlender`` (``ensemble_m`` = its temporal-ensemble weight), module doc.
    ``realtime``: the ROS loop's asynchrony on a simulated clock (``realtime_settings``, default: the
    loop's parameter file; ``sim_overrides`` still apply); ``execute_steps``/``blend``/``latency_steps``
    do not apply there (the executor's own settings do).
    """
    if realtime:
        return _evaluate_realtime(policy, episodes, seed0, sim_overrides, progress, realtime_settings)
    from fast_dvla_ros.sim.conveyor_env import ConveyorPickEnv, SimConfig

    env = ConveyorPickEnv(SimConfig(**(sim_overrides or {})))
    latencies: list[float] = []
    forwards: list[int] = []
    tokens: list[int] = []
    per_episode: list[dict] = []
    policy.warmup()
    driver = PolicyDriver(policy, env.control_hz)
    stepper = ChunkStepper(execute_steps, 1.0 / env.control_hz, blend, ensemble_m)

    def record(result) -> None:
        latencies.append(result.stats.latency_s)
        forwards.append(result.stats.forward_passes)
        tokens.append(result.stats.tokens_committed)

    bar = tqdm(range(episodes), desc=f"eval {policy.checkpoint_name}/{policy.decoder_name}", disable=not progress)
    try:
        for i in bar:
            info = run_episode(env, driver, stepper, seed0 + i, on_decision=record, latency_steps=latency_steps)
            per_episode.append({
                "seed": seed0 + i, "success": bool(info.get("success")), "steps": driver.steps,
                "failure_cause": info.get("failure_cause", ""), "belt_speed": info.get("belt_speed"),
                "first_close_distance": float(info.get("first_close_distance", float("nan"))),
            })
            bar.set_postfix(success=f"{sum(e['success'] for e in per_episode)}/{len(per_episode)}")
    finally:
        env.close()
    return _result(policy, per_episode, latencies, forwards, tokens, execute_steps=execute_steps, blend=blend,
                   latency_steps=latency_steps)


def _result(policy: Policy, per_episode: list[dict], latencies_s: list[float], forwards: list[int],
            tokens: list[int], **mode: Any) -> EvalResult:
    """Aggregate per-episode outcomes and per-chunk decode figures (``mode``: the EvalResult fields of the mode)."""
    successes = sum(e["success"] for e in per_episode)
    causes: dict[str, int] = {}
    for e in per_episode:
        if not e["success"]:
            causes[e["failure_cause"] or "unknown"] = causes.get(e["failure_cause"] or "unknown", 0) + 1
    lat = np.asarray(latencies_s) * 1000.0
    speeds = [e["belt_speed"] for e in per_episode if e["belt_speed"] is not None]
    episodes = len(per_episode)
    return EvalResult(
        checkpoint=policy.checkpoint_name,
        decoder=policy.decoder_name,
        episodes=episodes,
        successes=successes,
        success_rate=successes / max(1, episodes),
        ci95=wilson_interval(successes, episodes),
        failure_causes=causes,
        latency_mean_ms=float(lat.mean()),
        latency_p50_ms=float(np.percentile(lat, 50)),
        latency_p99_ms=float(np.percentile(lat, 99)),
        forwards_per_chunk=float(np.mean(forwards)),
        tokens_per_forward=float(np.sum(tokens) / max(1, np.sum(forwards))),
        tokens_per_second=float(np.sum(tokens) / max(1e-9, lat.sum() / 1000.0)),
        chunks=len(latencies_s),
        belt_speed=(min(speeds), max(speeds)) if speeds else None,
        per_episode=per_episode,
        **mode,
    )


def _evaluate_realtime(
    policy: Policy, episodes: int, seed0: int, sim_overrides: dict | None, progress: bool,
    settings: RealtimeSettings | None,
) -> EvalResult:
    from fast_dvla_ros.evaluation.realtime import RealtimeSettings, run_realtime

    settings = settings or RealtimeSettings.from_params_file()
    if sim_overrides:
        settings.sim = {**settings.sim, **sim_overrides}
    policy.warmup()
    bar = tqdm(total=episodes, desc=f"realtime {policy.checkpoint_name}/{policy.decoder_name}", disable=not progress)
    done: list[dict] = []

    def tick(outcome: dict) -> None:
        done.append(outcome)
        bar.update(1)
        bar.set_postfix(success=f"{sum(e['success'] for e in done)}/{len(done)}")

    try:
        per_episode, stats = run_realtime(policy, list(range(seed0, seed0 + episodes)), settings, tick)
    finally:
        bar.close()
    return _result(
        policy, per_episode, stats.decode, stats.forwards, stats.tokens, execute_steps=1,
        blend=settings.blend_mode, realtime=True,
        obs_to_command_p50_ms=float(np.percentile(stats.obs_to_command, 50) * 1000.0),
        camera_age_p50_ms=float(np.percentile(stats.camera_age, 50) * 1000.0),
        prefix_steps_mean=float(np.mean(stats.prefix_steps)) if stats.prefix_steps else 0.0,
        **_seams(stats.seam_velocity_jump, stats.seam_acceleration_jump),
    )


def _seams(velocity: list[float], acceleration: list[float]) -> dict[str, float]:
    if not velocity:
        return {}
    return {"seam_velocity_jump_p50": float(np.percentile(velocity, 50)),
            "seam_velocity_jump_p99": float(np.percentile(velocity, 99)),
            "seam_acceleration_jump_p99": float(np.percentile(acceleration, 99))}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Closed-loop success of a checkpoint + decoder in the conveyor simulator.")
    p.add_argument("--checkpoint", action="append", required=True, help="checkpoint dir (repeatable)")
    p.add_argument("--decoder", action="append", type=decoder_spec_argument,
                   help="decoder spec (repeatable; paired with --checkpoint), optionally with settings for that row "
                   "only: pipelined:n=1,tau_conf=0.3; default: the checkpoint's recommended decoder and settings")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=1000, help="first episode seed")
    p.add_argument("--execute-steps", type=int, default=4, help="actions executed per decoded chunk")
    p.add_argument("--blend", choices=BLEND_MODES, default=None,
                   help="blend chunks with the ROS executor's ChunkBlender (default: execute the newest chunk as is; "
                        "--realtime: the params file's blend_mode)")
    p.add_argument("--action-prefix-steps", type=int, default=None,
                   help="realtime: longest action prefix to commit (latency-compensated decoding; default: the params "
                        "file's; 0 = off); pair with --blend action_prefix")
    p.add_argument("--ensemble-m", type=float, default=None,
                   help="temporal_ensemble weight exp(-m*i), i=0 oldest (default 0.1; --realtime: the params file's)")
    p.add_argument("--latency-steps", type=int, default=0,
                   help="decode from the observation this many control steps old, as the real-time ROS loop does "
                        "(~3 for the distilled student, ~6 for the baseline; bench/RESULTS.md section 3)")
    p.add_argument("--realtime", action="store_true",
                   help="replay the real-time ROS loop's asynchrony on a simulated clock (module doc); "
                        "--execute-steps/--latency-steps then do not apply")
    p.add_argument("--decode-latency-ms", type=float,
                   help="realtime: every decode takes this long (default: its measured wall time)")
    p.add_argument("--decode-latencies-from", type=Path, metavar="BAG",
                   help="realtime: draw each decode's time from the ActionChunk latencies recorded in this bag "
                        "(a bench/loop.py or make demo run: the decode times the loop had beside the other nodes)")
    p.add_argument("--latency-scale", type=float, default=1.0,
                   help="realtime: multiply measured decode times (the loop shares the CPU with two more nodes)")
    p.add_argument("--params-file", type=Path, help="realtime: node parameters of the loop "
                   "(default config/sim_conveyor.yaml)")
    p.add_argument("--belt-speed", type=float, nargs=2, metavar=("MIN", "MAX"), help="override the belt speed range")
    p.add_argument("--json", type=Path, help="also write the results as JSON")
    p.add_argument("--tau-conf", type=float, help="decoder confidence threshold override")
    p.add_argument("--n", type=int, help="pipelined: commit at least remaining/n tokens of fully active blocks "
                   "(1 = a fully active block is committed whole in one forward)")
    p.add_argument("--tau-add", type=float, help="pipelined: add a block when the last is this decoded")
    p.add_argument("--tau-act", type=float,
                   help="pipelined: fully activate a block when its predecessor is this decoded")
    p.add_argument("--bidirectional-steps", type=int, default=None,
                   help="refinement steps T of the bidirectional baseline (default: its own, 12 as in the paper)")
    p.add_argument("--readout", choices=["mean", "argmax"], default=None,
                   help="joint bins by the predictive mean (gripper: argmax) or argmax everywhere; "
                   "default: the decoder's own (mean for every decoder)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (1 when other jobs share the CPU)")
    return p


def decoder_settings(a: argparse.Namespace) -> dict[str, Any]:
    """The command line's decoder flags as option values (None = not given).

    Each row's decoder takes the ones it has (``resolve_decoder_spec``): one run compares decoders side by
    side, and e.g. ``--n 1`` means nothing to the bidirectional baseline. Settings in a row's decoder spec
    (``pipelined:n=1``) win over the flags for that row.
    """
    return {"tau_conf": a.tau_conf, "n": a.n, "tau_add": a.tau_add, "tau_act": a.tau_act,
            "steps": a.bidirectional_steps, "readout": a.readout}


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    decoders = a.decoder or [""] * len(a.checkpoint)
    if len(decoders) == 1 and len(a.checkpoint) > 1:
        decoders = decoders * len(a.checkpoint)
    if len(decoders) != len(a.checkpoint):
        p.error("give one --decoder per --checkpoint (or one for all)")
    if a.latency_steps < 0:
        p.error("--latency-steps must be >= 0")
    overrides = {"belt_speed_range": tuple(a.belt_speed)} if a.belt_speed else {}
    results = []
    t0 = time.perf_counter()
    for ckpt, dec in zip(a.checkpoint, decoders, strict=True):
        try:
            policy = Policy.load(ckpt, decoder=dec, settings=decoder_settings(a))
        except (CheckpointError, ValueError) as exc:  # corrupt/truncated/missing: one line, no traceback
            print(f"fast-dvla-sim-eval: cannot load checkpoint {ckpt}: {exc}", file=sys.stderr)
            return 2
        settings = None
        if a.realtime:
            from fast_dvla_ros.evaluation.realtime import DEFAULT_PARAMS, RealtimeSettings

            drawn = None
            if a.decode_latencies_from is not None:
                from fast_dvla_ros.evaluation.analysis import analyze

                decoders = analyze(a.decode_latencies_from).decoders
                name = policy.decoder_name
                if name not in decoders:
                    p.error(f"{a.decode_latencies_from} has no chunks of decoder {name!r} (it has {sorted(decoders)})")
                drawn = decoders[name].latencies_s
            settings = RealtimeSettings.from_params_file(
                a.params_file or DEFAULT_PARAMS, latency_scale=a.latency_scale, decode_latencies_s=drawn,
                decode_latency_s=None if a.decode_latency_ms is None else a.decode_latency_ms / 1000.0,
                **({} if a.ensemble_m is None else {"ensemble_m": a.ensemble_m}),
                **({} if a.blend is None else {"blend_mode": a.blend}),
                **({} if a.action_prefix_steps is None else {"action_prefix_steps": a.action_prefix_steps}),
            )
        result = evaluate(policy, a.episodes, a.seed, a.execute_steps, overrides, blend=a.blend,
                          ensemble_m=0.1 if a.ensemble_m is None else a.ensemble_m,
                          latency_steps=a.latency_steps, realtime=a.realtime,
                          realtime_settings=settings)
        # rows of one decoder with different settings stay apart in the table and the JSON
        result.decoder = policy.decoder_spec.label() if policy.decoder_spec else policy.decoder_name
        results.append(result)
    mode = ("real-time loop replay (executor, camera and decode timing of the loop)" if a.realtime else
            f"execute {a.execute_steps} steps per chunk, blend {a.blend or 'none'}, latency {a.latency_steps} steps")
    print(f"\n{a.episodes} episodes per row, seeds {a.seed}..{a.seed + a.episodes - 1}, {mode}, "
          f"belt {overrides or 'default range'}, {time.perf_counter() - t0:.0f} s total\n")
    print(TABLE_HEADER)
    for r in results:
        print(r.row())
    if a.realtime:
        print("\n| checkpoint | decoder | blend | obs->command p50 ms | camera age p50 ms | prefix steps/chunk "
              "| seam velocity jump p50 / p99 rad/s | seam acceleration jump p99 rad/s^2 |\n"
              "|---|---|---|---|---|---|---|---|")
        for r in results:
            print(f"| {r.checkpoint} | {r.decoder} | {r.blend} | {r.obs_to_command_p50_ms:.1f} | "
                  f"{r.camera_age_p50_ms:.1f} | {r.prefix_steps_mean:.2f} | {r.seam_velocity_jump_p50:.3f} / "
                  f"{r.seam_velocity_jump_p99:.3f} | {r.seam_acceleration_jump_p99:.1f} |")
    if a.json:
        a.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
