"""Distillation vs training without the teacher: steps-to-target ratios, on validation CE and closed loop.

For each distillation step k (``--at``), the validation CE the distilled student had there, the first step
at which the other student was as good, and the ratio (the paper: ~10x fewer steps with distillation).
Both logs must come from runs on the same data, since the validation batch is drawn from it.

With ``--distill-success STEP=JSON`` and ``--scratch-success STEP=JSON`` (``fast-dvla-sim-eval --json`` files
of checkpoints saved at those steps, the same seeds), the closed-loop race too: each checkpoint's success
with its 95% interval, and the first distillation step whose success reaches the other run's final one,
as a ratio of steps (the issue's "steps for (a) to reach (b)'s final closed-loop success").

    .venv/bin/python bench/convergence.py --distill runs/s22/train/distill/log.csv \\
        --scratch runs/s22/train/sft/log.csv --at 50 150 300 600 \\
        --distill-success 150=eval_d150.json 600=eval_d600.json --scratch-success 600=eval_s600.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fast_dvla_ros.train.pipeline import read_log, speedup_table


def success_at(args: list[str]) -> dict[int, dict[str, Any]]:
    """STEP=JSON pairs -> {step: the evaluation's first result (successes, episodes, ci95, seeds)}."""
    out = {}
    for arg in args:
        step, sep, path = arg.partition("=")
        if not sep or not step.isdigit():
            raise SystemExit(f"bench/convergence.py: expected STEP=JSON, got {arg!r}")
        result = json.loads(Path(path).read_text())
        result = result[0] if isinstance(result, list) else result
        out[int(step)] = {"successes": int(result["successes"]), "episodes": int(result["episodes"]),
                          "ci95": result.get("ci95"), "seeds": [e["seed"] for e in result.get("per_episode", [])]}
    return out


def closed_loop_race(distill: dict[int, dict[str, Any]], scratch: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The first distillation step whose success >= the scratch run's final success, and the step ratio.

    Point estimates are compared (the intervals are printed beside them); the evaluations must cover the
    same seeds. ``distill_step`` None: distillation never reached it in the steps evaluated.
    """
    seeds = {tuple(r["seeds"]) for r in (*distill.values(), *scratch.values())}
    if len(seeds) > 1:
        raise SystemExit("bench/convergence.py: the evaluations did not run the same seeds")
    last = max(scratch)
    target = scratch[last]["successes"] / scratch[last]["episodes"]
    reached = [k for k in sorted(distill) if distill[k]["successes"] / distill[k]["episodes"] >= target]
    k = reached[0] if reached else None
    return {"scratch_steps": last, "scratch_success": target, "distill_step": k,
            "ratio": last / k if k else None}


def _cell(r: dict[str, Any]) -> str:
    ci = r["ci95"]
    interval = f" [{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]" if ci else ""
    return f"{r['successes']}/{r['episodes']} = {100 * r['successes'] / r['episodes']:.0f}%{interval}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--distill", type=Path, required=True, help="distillation stage's log.csv")
    p.add_argument("--scratch", type=Path, required=True, help="the run without the teacher: its log.csv")
    p.add_argument("--at", type=int, nargs="+", default=[50, 100, 200, 300, 600], help="distillation steps")
    p.add_argument("--metric", default="val_ce", help="log column, lower is better (val_ce, val_abs_err)")
    p.add_argument("--distill-success", nargs="*", default=[], metavar="STEP=JSON")
    p.add_argument("--scratch-success", nargs="*", default=[], metavar="STEP=JSON")
    a = p.parse_args(argv)
    d_rows, s_rows = read_log(a.distill), read_log(a.scratch)
    s_len = max(int(r["step"]) for r in s_rows)
    print(f"# {a.distill} vs {a.scratch} (scratch ran {s_len} steps), metric {a.metric}")
    # the same step side by side: with a shared initialisation both runs start at the same value, so "first
    # step that reaches it" alone can answer step 1 for a target the other run passed on its way down
    s_at = {int(r["step"]): r[a.metric] for r in s_rows if a.metric in r}
    print(f"| distill step | distill {a.metric} | scratch at the same step | scratch steps to reach it | ratio |")
    print("|---|---|---|---|---|")
    for row in speedup_table(d_rows, s_rows, a.at, a.metric):
        s = row["scratch_steps"]
        reach = str(s) if s is not None else f"not within {s_len}"
        ratio = f"{'>' if row['ratio_is_bound'] else ''}{row['ratio']:.1f}x"
        same = f"{s_at[row['distill_step']]:.4g}" if row["distill_step"] in s_at else "-"
        print(f"| {row['distill_step']} | {row[a.metric]:.4g} | {same} | {reach} | {ratio} |")
    if a.distill_success and a.scratch_success:
        d, s = success_at(a.distill_success), success_at(a.scratch_success)
        print("\n| run | " + " | ".join(f"step {k}" for k in sorted({*d, *s})) + " |")
        print("|---|" + "---|" * len({*d, *s}))
        for name, runs in (("distillation", d), ("without the teacher", s)):
            print(f"| {name} | " + " | ".join(_cell(runs[k]) if k in runs else "-" for k in sorted({*d, *s})) + " |")
        race = closed_loop_race(d, s)
        final = f"{100 * race['scratch_success']:.0f}% at {race['scratch_steps']} steps"
        if race["distill_step"] is None:
            print(f"\ndistillation did not reach the other run's final success ({final}) in the steps evaluated")
        else:
            print(f"\ndistillation reaches the other run's final success ({final}) at step {race['distill_step']}: "
                  f"{race['ratio']:.1f}x fewer steps (the first evaluated step that reaches it; an upper bound "
                  "on the step, so a lower bound on the ratio)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
