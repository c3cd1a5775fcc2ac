"""Benchmark of the simulated closed loop over real DDS (a script, not a test).

    .venv/bin/python bench/loop.py --episodes 50 --seed 0 [--evaluator sync|realtime|none] [--json out.json]
    .venv/bin/python bench/loop.py --duration 600 [--decoder pipelined] [--blend-mode temporal_ensemble]

Runs the same three processes as `make demo` (simulator, policy, executor) and records the loop to an
MCAP bag: with --episodes N exactly N seeded episodes (seeds S, S+1, ...; the simulator exits after the
last one), else for a fixed wall time with the simulator looping episodes forever. It prints, from the
bag: success k/N with its 95% Wilson interval, failures by cause, the hand-to-block distance at the
first close command, the seeds of successes and failures; achieved command rate, period jitter p50/p99
(|interval - 1/30 s|), observation -> command latency split into camera age, decode, delivery and
executor wait; executor underruns and watchdog trips, the largest joint velocity and acceleration jump
between consecutive commands (first point of consecutive JointTrajectory messages; the arm's reflexes
care about exactly these), the arm's measured peak joint speed, and CPU use per process.

Beside the evaluator (--evaluator sync, the default): after the loop, the synchronous closed-loop
evaluator (fast_dvla_ros/evaluation/closed_loop.py) runs in this process on the same seeds, checkpoint,
decoder options and blend mode (a chunk every control step, execute_steps=1), and the two success rates
are printed side by side. The gap between them is what real time costs the policy (late chunks, camera
age, executor blending on a live arm); `realtime` asks the evaluator for its real-time mode instead.
Loop targets: 30.0 Hz, p99 period error < 3 ms, zero underruns.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fast_dvla_ros.core.decoder_options import decoder_spec_argument  # noqa: E402
from fast_dvla_ros.demo import RECORDED, TOPICS, _stop, node_commands, start_nodes  # noqa: E402
from fast_dvla_ros.params_file import node_parameters  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
WARMUP_S = 10.0  # start-up and warm-up decode are not part of the CPU measurement
LAST_OUTCOME_S = 0.5  # after the simulator exits, for its last EpisodeOutcome to reach the recorder
LOOP_LABEL = "real-time ROS loop"
EVALUATOR_LABELS = {"sync": "evaluator (sync, loop's mode)", "realtime": "evaluator (real-time)"}


# ---------------------------------------------------------------------------------------------- bag metrics
def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (from /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def command_motion(bag: Path) -> dict[str, float]:
    """Velocity/acceleration jumps between consecutive commands and the arm's measured peak speed."""
    from fast_dvla_ros.bag.reader import read_messages

    t, vel, pos = [], [], []
    js_t, js_v = [], []
    for topic, stamp_ns, msg in read_messages(bag, [TOPICS["trajectory"], TOPICS["joint_states"]]):
        if topic == TOPICS["trajectory"] and msg.points:
            p0 = msg.points[0]
            t.append(stamp_ns * 1e-9)
            pos.append(np.asarray(p0.positions, float))
            vel.append(np.asarray(p0.velocities, float) if len(p0.velocities) else np.zeros(len(p0.positions)))
        elif topic == TOPICS["joint_states"] and len(msg.velocity):
            js_t.append(stamp_ns * 1e-9)
            js_v.append(np.abs(np.asarray(msg.velocity[:7], float)).max())
    out = {"commands": float(len(t))}
    if len(t) > 2:
        tt, v = np.asarray(t), np.stack(vel)
        dt = np.diff(tt)
        ok = dt < 3.0 / 30.0  # ignore recorder-side gaps
        dv = np.abs(np.diff(v, axis=0)).max(axis=1)
        out["max_velocity_jump_rad_s"] = float(dv[ok].max()) if ok.any() else float("nan")
        out["max_accel_jump_rad_s2"] = float((dv[ok] / np.maximum(dt[ok], 1e-3)).max()) if ok.any() else float("nan")
        out["max_commanded_speed_rad_s"] = float(np.abs(v).max())
    if js_v:
        out["arm_peak_speed_rad_s"] = float(max(js_v))
    return out


def chunk_metrics(bag: Path) -> dict[str, Any]:
    """Per chunk: backbone forwards and action-prefix steps (ActionChunk), and the executor's switch-over jumps
    (ExecutorStatus.seam_*: one value per accepted chunk after the first; the status of every tick names the last)."""
    from fast_dvla_ros.bag.reader import read_messages

    forwards, prefix, seams = [], [], {}
    for topic, _, msg in read_messages(bag, [TOPICS["action_chunk"], TOPICS["status"]]):
        if topic == TOPICS["action_chunk"]:
            forwards.append(int(msg.stats.forward_passes))
            prefix.append(int(getattr(msg, "prefix_steps", 0)))
        elif math.isfinite(getattr(msg, "seam_velocity_jump", math.nan)) and msg.last_sequence_id:
            seams[int(msg.last_sequence_id)] = (float(msg.seam_velocity_jump), float(msg.seam_acceleration_jump))
    out: dict[str, Any] = {"chunks": len(forwards)}
    if forwards:
        out["forwards_per_chunk"] = float(np.mean(forwards))
        out["prefix_steps_per_chunk"] = float(np.mean(prefix))
    if seams:
        v, acc = np.asarray(list(seams.values())).T
        out["seam_velocity_jump_rad_s"] = {"p50": float(np.percentile(v, 50)), "p99": float(np.percentile(v, 99)),
                                           "count": int(v.size)}
        out["seam_acceleration_jump_rad_s2"] = {"p50": float(np.percentile(acc, 50)),
                                                "p99": float(np.percentile(acc, 99))}
    return out


def reset_drift(bag: Path, threshold_rad: float = 0.03) -> dict[str, Any] | None:
    """How far the arm moved from its reset pose between each EpisodeStart and the first chunk of that episode.

    Nothing of the new episode commands the arm before its first chunk arrives: any motion then comes from
    commands issued for the previous scene (the simulator's reset_settle_s). The first episode is left out
    (it waits for the policy's first command). Max over joints 1-7, radians."""
    from fast_dvla_ros.bag.reader import read_messages

    def stamp(h: Any) -> float:
        return h.stamp.sec + 1e-9 * h.stamp.nanosec

    starts, chunks, js_t, js_q = [], [], [], []
    for topic, t_ns, msg in read_messages(bag, [TOPICS["episode_start"], TOPICS["action_chunk"],
                                                TOPICS["joint_states"]]):
        if topic == TOPICS["episode_start"]:
            starts.append(stamp(msg.header))
        elif topic == TOPICS["action_chunk"]:
            chunks.append((t_ns * 1e-9, stamp(msg.header)))
        elif len(msg.position) >= 7:
            js_t.append(stamp(msg.header))
            js_q.append(np.asarray(msg.position[:7], float))
    if len(starts) < 2 or not js_t:
        return None
    t, q = np.asarray(js_t), np.stack(js_q)
    drift = []
    for t0 in sorted(starts)[1:]:
        first = min((arrival for arrival, observed in chunks if observed > t0), default=math.inf)
        window = np.flatnonzero((t > t0) & (t < first))
        if window.size:
            drift.append(float(np.abs(q[window] - q[window[0]]).max()))
    if not drift:
        return None
    d = np.asarray(drift)
    return {"p50": float(np.median(d)), "max": float(d.max()), "resets": int(d.size),
            "above_threshold": int((d > threshold_rad).sum()), "threshold_rad": threshold_rad}


def tick_period_errors(bag: Path) -> np.ndarray:
    """|interval - 1/30 s| (ms) of the executor's ticks, from ExecutorStatus header stamps (publisher side).

    The bag's receive times add the recorder's own scheduling delay; the status stamp is taken in the
    tick itself, so this is the jitter of the control loop as the controller would see it leave.
    """
    from fast_dvla_ros.bag.reader import read_messages

    stamps = [m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec for _, _, m in read_messages(bag, [TOPICS["status"]])]
    if len(stamps) < 3:
        return np.zeros(0)
    return np.abs(np.diff(np.asarray(stamps)) - 1.0 / 30.0) * 1000.0


def _ms(d: Any) -> dict[str, float] | None:
    """A Distribution (seconds) as a dict in ms; None stays None (unknown)."""
    if d is None:
        return None
    return {"count": d.count, "mean": 1000 * d.mean, "p50": 1000 * d.p50, "p90": 1000 * d.p90,
            "p99": 1000 * d.p99, "max": 1000 * d.max}


def _percentiles(values: np.ndarray) -> dict[str, float] | None:
    if values.size == 0:
        return None
    p50, p99 = np.percentile(values, [50, 99])
    return {"p50": float(p50), "p99": float(p99), "max": float(values.max())}


def outcome_metrics(analysis: Any) -> dict[str, Any] | None:
    """Success with its Wilson interval, causes, first-close distance and every episode with its seed."""
    o = analysis.outcomes
    if o is None:
        return None
    d = o.first_close_distance_m
    return {
        "episodes": o.episodes,
        "successes": o.successes,
        "success_rate": o.success_rate,
        "ci95": list(o.ci95),
        "failure_causes": o.failure_causes,
        "first_close_distance_m": {"count": d.count, "p50": d.p50, "p90": d.p90},
        "success_seeds": o.success_seeds,
        "failure_seeds": o.failure_seeds,
        "per_episode": [dataclasses.asdict(e) for e in analysis.series.outcomes],
    }


def split_metrics(analysis: Any) -> dict[str, Any] | None:
    """The observation -> command split (ms), parts and total; camera_age None for bags without it."""
    split = analysis.obs_to_command.split if analysis.obs_to_command else None
    if split is None:
        return None
    return {name: _ms(getattr(split, name)) for name in (*split.PARTS, "total")}


def loop_metrics(bag: Path) -> dict[str, Any]:
    """Every number the loop report prints, computed from the bag alone (JSON-ready)."""
    from fast_dvla_ros.evaluation.analysis import analyze

    a = analyze(bag, nominal_rate_hz=30.0)
    out: dict[str, Any] = {"bag": str(bag), "outcomes": outcome_metrics(a), "latency_split_ms": split_metrics(a)}
    if a.rate:
        r = a.rate
        err = np.abs(r.intervals_s - r.nominal_period_s) * 1000.0
        out["rate"] = {"mean_hz": r.mean_rate_hz, "commands": r.count, "gaps": len(r.gaps),
                       "period_error_ms": _percentiles(err)}
    out["tick_period_error_ms"] = _percentiles(tick_period_errors(bag))
    out["decode_ms"] = {name: _ms(d.latency) for name, d in a.decoders.items()}
    if a.executor:
        out["executor"] = {k: int(v) for k, v in a.executor.totals.items()}
    out["motion"] = command_motion(bag)
    out["chunks"] = chunk_metrics(bag)
    out["reset_drift_rad"] = reset_drift(bag)
    if a.discontinuity is not None:  # fast-dvla-eval's chunk-to-chunk jump: new chunk vs old at the same step
        j = a.discontinuity.joint_jump
        out["chunks"]["chunk_joint_jump_rad"] = {"p50": j.p50, "p99": j.p99, "count": j.count}
    out["gripper_changes"] = gripper_changes(a)
    return out


def gripper_changes(analysis: Any) -> dict[str, Any] | None:
    """Open/close changes of the gripper command per episode (each one a franka_gripper goal on a robot)."""
    from fast_dvla_ros.evaluation.gripper import changes_per_episode

    outcomes = analysis.series.outcomes
    if not outcomes:
        return None
    n = changes_per_episode(analysis.gripper, [(o.time_s - o.duration_s, o.time_s) for o in outcomes])
    failed = [c for c, o in zip(n, outcomes, strict=True) if not o.success]
    return {"per_episode": n, "p50": float(np.median(n)), "p90": float(np.percentile(n, 90)), "max": int(max(n)),
            "failed_p50": float(np.median(failed)) if failed else None}


def _fmt_ms(d: dict[str, float] | None, key: str = "p50") -> str:
    return "n/a" if d is None or not math.isfinite(d[key]) else f"{d[key]:.1f}"


def success_cell(successes: int, n: int) -> str:
    """'k/N = x% [lo, hi]' with the 95% Wilson interval in percent."""
    from fast_dvla_ros.evaluation.intervals import wilson_interval

    lo, hi = wilson_interval(successes, n)
    rate = f"{100 * successes / n:.0f}%" if n else "n/a"
    return f"{successes}/{n} = {rate} [{100 * lo:.0f}, {100 * hi:.0f}]"


def _causes(causes: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in causes.items()) or "none"


def outcome_rows(o: dict[str, Any] | None, requested: int) -> list[str]:
    """Table rows of the episode outcomes (success first: it is what the benchmark is for)."""
    if o is None:
        return ["| success | no episode finished |"]
    rows = [f"| success (95% Wilson) | {success_cell(o['successes'], o['episodes'])} |"]
    if requested and o["episodes"] != requested:
        rows.append(f"| episodes finished / requested | {o['episodes']} / {requested} (the loop stopped early) |")
    rows.append(f"| failures by cause | {_causes(o['failure_causes'])} |")
    d = o["first_close_distance_m"]
    close = "n/a" if d["count"] == 0 else (
        f"median {1000 * d['p50']:.1f} / p90 {1000 * d['p90']:.1f} mm ({d['count']} episodes)")
    rows.append(f"| first-close hand-to-block distance | {close} |")
    rows.append(f"| seeds of successes | {', '.join(map(str, o['success_seeds'])) or '-'} |")
    failed = [f"{e['seed']} {e['failure_cause'] or 'unknown'}" for e in o["per_episode"] if not e["success"]]
    rows.append(f"| seeds of failures | {', '.join(failed) or '-'} |")
    return rows


def split_row(split: dict[str, Any] | None) -> list[str]:
    """One row: p50 of camera age / decode / delivery / executor wait / total."""
    if split is None:
        return ["| obs -> command split | no chunk was followed by a command |"]
    delivery = "delivery" if split["camera_age"] is not None else "delivery (incl. camera age)"
    values = " / ".join(_fmt_ms(split[k]) for k in ("camera_age", "decode", "delivery", "executor_wait", "total"))
    return [f"| obs -> command p50: camera age / decode / {delivery} / executor wait / total | {values} ms |",
            f"| obs -> command p99 | {_fmt_ms(split['total'], 'p99')} ms ({split['total']['count']} chunks) |"]


def format_loop_report(m: dict[str, Any], requested: int = 0) -> list[str]:
    """The loop's table (Markdown), from :func:`loop_metrics` plus CPU and exit codes when present."""
    lines = ["| metric | value |", "|---|---|", *outcome_rows(m["outcomes"], requested)]
    if "rate" in m:
        r, err = m["rate"], m["rate"]["period_error_ms"]
        lines.append(f"| trajectory messages (ticks + sends on chunk arrival) | {r['mean_hz']:.2f}/s "
                     f"({r['commands']} messages) |")
        if err:
            lines.append(f"| period error p50 / p99 / max (bag receive times) | {err['p50']:.2f} / {err['p99']:.2f} / "
                         f"{err['max']:.2f} ms |")
        lines.append(f"| gaps > 1.5 periods | {r['gaps']} |")
    tick = m["tick_period_error_ms"]
    if tick:
        lines.append(f"| executor tick period error p50 / p99 / max (status stamps) | {tick['p50']:.2f} / "
                     f"{tick['p99']:.2f} / {tick['max']:.2f} ms |")
    lines += split_row(m["latency_split_ms"])
    for name, d in m["decode_ms"].items():
        lines.append(f"| decode latency [{name}] p50 / p99 | {d['p50']:.1f} / {d['p99']:.1f} ms "
                     f"({d['count']} chunks) |")
    if "executor" in m:
        tot = m["executor"]
        lines.append(f"| executor underruns / watchdog trips | {tot.get('underruns', 0)} / "
                     f"{tot.get('watchdog_trips', 0)} |")
    g = m.get("gripper_changes")
    if g:
        failed = "n/a" if g["failed_p50"] is None else f"{g['failed_p50']:.0f}"
        lines.append(f"| gripper open/close changes per episode p50 / p90 / max (failed episodes p50) | "
                     f"{g['p50']:.0f} / {g['p90']:.0f} / {g['max']} ({failed}) |")
    c = m.get("chunks") or {}
    if "forwards_per_chunk" in c:
        lines.append(f"| forwards / action-prefix steps per chunk | {c['forwards_per_chunk']:.2f} / "
                     f"{c['prefix_steps_per_chunk']:.2f} ({c['chunks']} chunks) |")
    if "seam_velocity_jump_rad_s" in c:
        v, acc = c["seam_velocity_jump_rad_s"], c["seam_acceleration_jump_rad_s2"]
        lines.append(f"| seam velocity jump p50 / p99 (executor, at each switch-over) | {v['p50']:.3f} / "
                     f"{v['p99']:.3f} rad/s; acceleration p99 {acc['p99']:.1f} rad/s^2 ({v['count']} seams) |")
    if "chunk_joint_jump_rad" in c:
        j = c["chunk_joint_jump_rad"]
        lines.append(f"| chunk-to-chunk joint jump at the switch p50 / p99 (fast-dvla-eval) | {j['p50']:.4f} / "
                     f"{j['p99']:.4f} rad |")
    r = m.get("reset_drift_rad")
    if r:
        lines.append(f"| arm drift after a reset, before the episode's first chunk p50 / max | {r['p50']:.3f} / "
                     f"{r['max']:.3f} rad ({r['above_threshold']} of {r['resets']} resets > "
                     f"{r['threshold_rad']} rad) |")
    for k, v in m["motion"].items():
        lines.append(f"| {k} | {v:.3f} |")
    for n, c in m.get("cpu", {}).items():
        lines.append(f"| CPU {n} | {100 * c:.0f}% of one core |")
    if "exit_codes" in m:
        lines.append(f"| exit codes | {m['exit_codes']} |")
    return lines


# ---------------------------------------------------------------------------------------------- the evaluator
def decoder_spec(decoder: str, params_file: Path) -> str:
    """The decoder spec the loop's policy node runs: --decoder, else the params file's ('' = the checkpoint's)."""
    return decoder or str(node_parameters(params_file, "fast_dvla_policy").get("decoder") or "").strip()


def checkpoint_dir(a: argparse.Namespace) -> Path:
    """--checkpoint, else the params file's, else the policy node's default (what the loop's node loaded)."""
    if a.checkpoint:
        return Path(a.checkpoint).resolve()
    configured = str(node_parameters(a.params_file, "fast_dvla_policy").get("checkpoint") or "").strip()
    if configured:
        return Path(configured).expanduser()
    from fast_dvla_ros.nodes.policy_node import default_checkpoint

    return default_checkpoint()


def evaluator_setup(params_file: Path) -> tuple[dict[str, Any], float]:
    """The simulator's SimConfig overrides and the executor's ensemble weight, as the loop's nodes use them,
    so the evaluator plays the same scenes with the same blending (read as the real-time replay reads them)."""
    from fast_dvla_ros.evaluation.realtime import RealtimeSettings

    settings = RealtimeSettings.from_params_file(params_file)
    return dict(settings.sim), settings.ensemble_m


def accepts_keyword(fn: Any, name: str) -> bool:
    """Whether ``fn`` takes keyword ``name`` (explicitly or through **kwargs)."""
    params = inspect.signature(fn).parameters.values()
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def run_evaluator(
    mode: str, a: argparse.Namespace, seed0: int, episodes: int, decode_latencies_s: np.ndarray | None = None
) -> dict[str, Any] | None:
    """The closed-loop evaluator on seeds seed0..seed0+episodes-1; None when skipped.

    ``realtime`` replays the loop's timing: node settings from the same parameter file, and each decode
    takes a time drawn from ``decode_latencies_s`` (the loop's own measured decodes), so the replay sees
    the decode times the loop had with the other two nodes on the CPU.
    """
    import torch

    from fast_dvla_ros.core.policy import Policy
    from fast_dvla_ros.evaluation.closed_loop import evaluate

    realtime = mode == "realtime"
    if realtime and not accepts_keyword(evaluate, "realtime"):
        print("[loop] --evaluator realtime: fast_dvla_ros.evaluation.closed_loop.evaluate() has no `realtime` keyword "
              "in this tree yet; the real-time evaluator was skipped", flush=True)
        return None
    torch.set_num_threads(1)  # the policy node's num_threads: same per-decode cost as in the loop
    ckpt = checkpoint_dir(a)
    overrides, ensemble_m = evaluator_setup(a.params_file)
    policy = Policy.load(ckpt, decoder=decoder_spec(a.decoder, a.params_file))
    extra: dict[str, Any] = {}
    if realtime:
        from fast_dvla_ros.evaluation.realtime import RealtimeSettings

        prefix = {} if a.action_prefix_steps is None else {"action_prefix_steps": a.action_prefix_steps}
        extra = {"realtime": True, "realtime_settings": RealtimeSettings.from_params_file(
            a.params_file, decode_latencies_s=decode_latencies_s, blend_mode=a.blend_mode, **prefix)}
    seeds = f"{seed0}..{seed0 + episodes - 1}"
    print(f"[loop] evaluator ({mode}): {ckpt.name}/{policy.decoder_spec}, seeds {seeds}", flush=True)
    t0 = time.monotonic()
    res = evaluate(policy, episodes, seed0, execute_steps=1, sim_overrides=overrides, blend=a.blend_mode,
                   ensemble_m=ensemble_m, progress=False, **extra)
    out = dataclasses.asdict(res)
    out.update(mode=mode, label=EVALUATOR_LABELS[mode], wall_s=time.monotonic() - t0, checkpoint_dir=str(ckpt))
    return out


def comparison_table(loop: dict[str, Any] | None, evaluators: list[dict[str, Any]]) -> list[str]:
    """'| where | success [95% CI] | failures |', the loop first, plus the seeds on which they disagree."""
    lines = ["| where | success [95% CI] | failures |", "|---|---|---|"]
    if loop is not None:
        lines.append(f"| {LOOP_LABEL} | {success_cell(loop['successes'], loop['episodes'])} | "
                     f"{_causes(loop['failure_causes'])} |")
    for ev in evaluators:
        lines.append(f"| {ev['label']} | {success_cell(ev['successes'], ev['episodes'])} | "
                     f"{_causes(ev['failure_causes'])} |")
    if loop is not None:
        in_loop = {e["seed"]: e for e in loop["per_episode"]}
        for ev in evaluators:
            differ = [f"{e['seed']} (loop {_result(in_loop[e['seed']])}, evaluator {_result(e)})"
                      for e in ev["per_episode"]
                      if e["seed"] in in_loop and in_loop[e["seed"]]["success"] != e["success"]]
            lines.append(f"\nseeds where the loop and the {ev['label']} disagree: {', '.join(differ) or 'none'}")
    return lines


def _result(episode: dict[str, Any]) -> str:
    return "ok" if episode["success"] else episode["failure_cause"] or "unknown"


# ---------------------------------------------------------------------------------------------- running the loop
def _sample_cpu(procs: dict[str, Any], cpu: dict[str, tuple[float, float]]) -> None:
    """Newest (cpu seconds, monotonic time) of each live process; a process that ended keeps its last sample."""
    for name, pr in procs.items():
        if pr.poll() is None:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # it ended just now
                cpu[name] = (cpu_seconds(pr.pid), time.monotonic())


def _deadline_s(a: argparse.Namespace) -> float:
    """Wall seconds the loop may run: --duration (plus warm-up), or a generous bound for N episodes."""
    if a.episodes <= 0:
        return a.duration + WARMUP_S
    return a.timeout if a.timeout > 0 else 180.0 + 40.0 * a.episodes


def wait_for_loop(a: argparse.Namespace, procs: dict[str, Any]) -> dict[str, float]:
    """Wait until the simulator finished its episodes (or the duration/timeout passed, or a node died);
    returns each process's CPU use (fraction of one core) after the warm-up."""
    t0 = time.monotonic()
    start: dict[str, tuple[float, float]] = {}
    last: dict[str, tuple[float, float]] = {}
    while True:
        if not start and time.monotonic() - t0 >= WARMUP_S:
            _sample_cpu(procs, start)
        _sample_cpu(procs, last)
        if a.episodes > 0 and procs["sim"].poll() is not None:
            print(f"[loop] simulator finished (exit {procs['sim'].returncode})", flush=True)
            time.sleep(LAST_OUTCOME_S)
            break
        dead = {n: pr.returncode for n, pr in procs.items() if pr.poll() is not None}
        if dead:
            print("[loop] a node exited early:", dead, flush=True)
            break
        if time.monotonic() - t0 >= _deadline_s(a):
            print(f"[loop] {'timeout' if a.episodes > 0 else 'duration'} reached after "
                  f"{time.monotonic() - t0:.0f} s", flush=True)
            break
        time.sleep(0.5)
    return {n: (last[n][0] - c0) / max(1e-6, last[n][1] - t_start)
            for n, (c0, t_start) in start.items() if n in last and last[n][1] > t_start}


def run_loop(a: argparse.Namespace, bag: Path) -> dict[str, Any]:
    """Record the three nodes' loop into ``bag``; CPU per process, exit codes and wall time."""
    from fast_dvla_ros.bag.recorder import BagRecorder, TopicSpec

    recorder = BagRecorder(bag, [TopicSpec(t, ty) for t, ty in RECORDED]).start()
    t0 = time.monotonic()
    procs = start_nodes(node_commands(a, a.params_file))
    cpu: dict[str, float] = {}
    try:
        cpu = wait_for_loop(a, procs)
    except KeyboardInterrupt:
        pass
    finally:
        codes = _stop(procs)
        recorder.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return {"cpu": cpu, "exit_codes": codes, "wall_s": time.monotonic() - t0}


def _json_safe(value: Any) -> Any:
    """NaN/inf -> None, tuples -> lists, numpy scalars -> Python: strict JSON for RESULTS.md tooling."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=0, help="run exactly N seeded episodes (0: run for --duration)")
    p.add_argument("--duration", type=float, default=600.0, help="wall seconds to run when --episodes is 0")
    p.add_argument("--timeout", type=float, default=0.0, help="with --episodes: give up after this many seconds "
                   "(0: 180 + 40 per episode)")
    p.add_argument("--decoder", default="", type=decoder_spec_argument,
                   help="decoder spec of the policy node (default: the params file's; there '' = the checkpoint's)")
    p.add_argument("--checkpoint")
    p.add_argument("--blend-mode", default="temporal_ensemble",
                   help="executor blend mode (action_prefix: latency-compensated decoding, with the policy's prefix)")
    p.add_argument("--action-prefix-steps", type=int, default=None,
                   help="policy node's action_prefix_steps (default: the params file's; -1 = the checkpoint's, "
                        "0 = off)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first episode (episode k: seed + k)")
    p.add_argument("--evaluator", default="sync",
                   help="after the loop, run the closed-loop evaluator on the same seeds and print both: "
                        "none, sync, realtime, or a comma list (sync,realtime)")
    p.add_argument("--json", type=Path, help="write every number (loop, evaluator, per-episode outcomes) here")
    p.add_argument("--params-file", type=Path, default=ROOT / "config" / "sim_conveyor.yaml")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_loop")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if bad := [m for m in a.evaluator.split(",") if m not in ("none", "sync", "realtime")]:
        raise SystemExit(f"bench/loop.py: unknown --evaluator {', '.join(bad)} (none, sync, realtime)")
    a.episodes = max(0, a.episodes)  # node_commands passes it to the simulator: 0 = loop forever

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    bag = a.out / time.strftime("loop_%Y%m%d_%H%M%S", time.gmtime())
    bag.parent.mkdir(parents=True, exist_ok=True)
    run = run_loop(a, bag)
    metrics = {**loop_metrics(bag), **run}

    what = f"--episodes {a.episodes} --seed {a.seed}" if a.episodes else f"--duration {a.duration:.0f}"
    print(f"\n# bench/loop.py {what} --decoder {a.decoder or '(checkpoint)'} --blend-mode {a.blend_mode}")
    print(f"bag: {bag} ({run['wall_s']:.0f} s wall)")
    print("\n".join(format_loop_report(metrics, a.episodes)))

    evaluators = []
    loop = metrics["outcomes"]
    modes = [m for m in a.evaluator.split(",") if m and m != "none"]
    if modes and loop is not None:
        # The seeds the loop actually played (all N, or those a --duration run finished).
        seeds = sorted(e["seed"] for e in loop["per_episode"])
        from fast_dvla_ros.evaluation.analysis import analyze

        decoded = [d.latencies_s for d in analyze(bag, nominal_rate_hz=30.0).decoders.values()]
        latencies = np.concatenate(decoded) if decoded else None
        for mode in modes:
            if (ev := run_evaluator(mode, a, seeds[0], seeds[-1] - seeds[0] + 1, latencies)) is not None:
                evaluators.append(ev)
    elif a.evaluator != "none":
        print("[loop] no episode finished in the loop: the evaluator has no seeds to compare on", flush=True)
    if evaluators:
        print("\n" + "\n".join(comparison_table(loop, evaluators)))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        args = {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()}
        a.json.write_text(json.dumps(_json_safe({"args": args, "loop": metrics, "evaluators": evaluators}),
                                     indent=2) + "\n")
        print(f"\njson: {a.json}")
    finished = loop["episodes"] if loop else 0
    return 1 if a.episodes and finished < a.episodes else 0


if __name__ == "__main__":
    raise SystemExit(main())
