"""Belt-speed sweep of the simulated closed loop over real DDS (a script, not a test).

    .venv/bin/python bench/belt_sweep.py --speeds 0.03 0.06 0.09 0.12 0.15 0.18 --episodes 50 \
        [--checkpoint models/teacher_bidirectional --decoder bidirectional:steps=12] [--evaluator realtime]

For each belt speed, `bench/loop.py --episodes N --seed S` runs the three nodes with the simulator's belt
fixed at that speed (belt_speed_min = belt_speed_max, in a copy of the parameter file), on the same seeds
at every speed, and the rows are printed side by side: success with its 95% Wilson interval, **picks per
minute** (successes over the episodes' summed wall time, failures included: what a conveyor cell
cares about), the mean successful episode time, obs -> command and decode latency p50, executor
underruns; with --evaluator, the evaluator's success on the same seeds beside the loop's.

One policy per run; run it once per policy (the student with its checkpoint's decoder, the teacher with
the bidirectional baseline) and compare the tables (or the --json files). Each loop row is a full
`bench/loop.py` run with its own bag under --out, so any row can be analysed again with fast-dvla-eval.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import loop  # noqa: E402  (bench/loop.py: the loop run and its report)

from fast_dvla_ros.evaluation.outcomes import picks_per_minute as rate_of_picks  # noqa: E402
from fast_dvla_ros.sim.config import CONTROL_HZ  # noqa: E402

SIM_NODE_KEY = "/**/conveyor_sim"


def params_at_speed(params_file: Path, speed: float, out: Path) -> Path:
    """A copy of ``params_file`` whose simulator runs every episode at ``speed`` m/s."""
    params = yaml.safe_load(params_file.read_text())
    sim = params.get(SIM_NODE_KEY, {}).get("ros__parameters")
    if sim is None:
        raise SystemExit(f"bench/belt_sweep.py: {params_file} has no {SIM_NODE_KEY} ros__parameters section")
    sim["belt_speed_min"] = sim["belt_speed_max"] = float(speed)
    path = out / f"params_belt_{speed:.3f}.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def episode_seconds(episode: dict[str, Any]) -> float:
    """An episode's length: the loop's EpisodeOutcome.duration_s, or the evaluator's control steps at 30 Hz."""
    return float(episode["duration_s"]) if "duration_s" in episode else float(episode["steps"]) / CONTROL_HZ


def picks_per_minute(per_episode: list[dict[str, Any]]) -> float:
    """Successes per minute of episode time (failed episodes' time included); NaN without episodes."""
    return rate_of_picks(sum(bool(e["success"]) for e in per_episode),
                         sum(episode_seconds(e) for e in per_episode))


def sweep_row(speed: float, result: dict[str, Any]) -> dict[str, Any]:
    """One speed's figures from a bench/loop.py --json result."""
    m = result["loop"]
    o = m.get("outcomes") or {"episodes": 0, "successes": 0, "per_episode": [], "failure_causes": {}}
    split = m.get("latency_split_ms") or {}
    ok = [episode_seconds(e) for e in o["per_episode"] if e["success"]]
    row = {
        "belt_speed": speed,
        "episodes": o["episodes"],
        "successes": o["successes"],
        "ci95": o.get("ci95", [0.0, 1.0]),  # bench/loop.py's Wilson interval
        "failure_causes": o["failure_causes"],
        "picks_per_minute": picks_per_minute(o["per_episode"]),
        "mean_success_time_s": sum(ok) / len(ok) if ok else float("nan"),
        "obs_to_command_p50_ms": (split.get("total") or {}).get("p50"),
        "decode_p50_ms": (split.get("decode") or {}).get("p50"),
        "underruns": (m.get("executor") or {}).get("underruns"),
        "bag": m.get("bag"),
        "evaluators": [],
    }
    for ev in result.get("evaluators", []):
        eps = ev["per_episode"]
        row["evaluators"].append({"label": ev["label"], "episodes": ev["episodes"], "successes": ev["successes"],
                                  "picks_per_minute": picks_per_minute(eps)})
    return row


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None or value != value else format(value, fmt)


def format_sweep(rows: list[dict[str, Any]], what: str) -> list[str]:
    head = ("| belt (m/s) | success, loop [95% CI] | picks/min, loop | mean success time (s) | obs->command p50 (ms) "
            "| decode p50 (ms) | underruns | failures |")
    evs = [e["label"] for e in rows[0]["evaluators"]] if rows else []
    head += "".join(f" {label}: success, picks/min |" for label in evs)
    lines = [f"# bench/belt_sweep.py {what}", "", head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        cell = loop.success_cell(r["successes"], r["episodes"])
        causes = ", ".join(f"{k} {v}" for k, v in r["failure_causes"].items()) or "none"
        line = (f"| {r['belt_speed']:.3f} | {cell} | {_num(r['picks_per_minute'], '.2f')} | "
                f"{_num(r['mean_success_time_s'], '.2f')} | {_num(r['obs_to_command_p50_ms'], '.1f')} | "
                f"{_num(r['decode_p50_ms'], '.1f')} | {r['underruns'] if r['underruns'] is not None else 'n/a'} | "
                f"{causes} |")
        for e in r["evaluators"]:
            line += f" {e['successes']}/{e['episodes']}, {_num(e['picks_per_minute'], '.2f')} |"
        line += " n/a |" * (len(evs) - len(r["evaluators"]))  # a speed whose loop finished no episode
        lines.append(line)
    return lines


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Other options (--decoder, --checkpoint, --blend-mode, ...) go to loop.py.")
    p.add_argument("--speeds", type=float, nargs="+", default=[0.03, 0.06, 0.09, 0.12, 0.15, 0.18])
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--evaluator", default="none", help="passed to bench/loop.py: none, sync, realtime")
    p.add_argument("--params-file", type=Path, default=ROOT / "config" / "sim_conveyor.yaml")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "belt_sweep")
    p.add_argument("--json", type=Path, help="write the sweep's rows here")
    a, rest = p.parse_known_args(argv)
    if a.episodes <= 0:
        p.error("--episodes must be positive: the sweep compares the same seeds at every speed")
    if any(s < 0 for s in a.speeds):
        p.error("belt speeds must be >= 0 m/s")
    return a, rest


def main(argv: list[str] | None = None) -> int:
    a, loop_args = parse_args(argv)
    run_dir = a.out / time.strftime("sweep_%Y%m%d_%H%M%S", time.gmtime())
    run_dir.mkdir(parents=True, exist_ok=True)
    rows, rc = [], 0
    for speed in a.speeds:
        params = params_at_speed(a.params_file, speed, run_dir)
        out_json = run_dir / f"loop_belt_{speed:.3f}.json"
        print(f"\n[belt_sweep] belt {speed:.3f} m/s: bench/loop.py --episodes {a.episodes} --seed {a.seed}", flush=True)
        rc |= loop.main(["--episodes", str(a.episodes), "--seed", str(a.seed), "--evaluator", a.evaluator,
                         "--params-file", str(params), "--out", str(run_dir), "--json", str(out_json), *loop_args])
        rows.append(sweep_row(speed, json.loads(out_json.read_text())))
    what = f"--episodes {a.episodes} --seed {a.seed} {' '.join(loop_args)}".strip()
    print("\n" + "\n".join(format_sweep(rows, what)))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(loop._json_safe({"args": what, "rows": rows}), indent=2) + "\n")
        print(f"\njson: {a.json}")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
