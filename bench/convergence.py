"""Distillation vs training from scratch: steps-to-target ratios from two stages' ``log.csv``.

For each distillation step k (``--at``), the validation CE the distilled student had there, the first step
at which the from-scratch student was as good, and the ratio (the paper: ~10x fewer steps with
distillation). Both logs must come from runs on the same data, since the validation batch is drawn from it.

    .venv/bin/python bench/convergence.py --distill runs/s10/distill_1800/log.csv \\
        --scratch runs/s10/scratch_3000/log.csv --at 50 100 200 300 600 1200 1800
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fast_dvla_ros.train.pipeline import read_log, speedup_table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--distill", type=Path, required=True, help="distillation stage's log.csv")
    p.add_argument("--scratch", type=Path, required=True, help="from-scratch stage's log.csv")
    p.add_argument("--at", type=int, nargs="+", default=[50, 100, 200, 300, 600], help="distillation steps")
    p.add_argument("--metric", default="val_ce", help="log column, lower is better (val_ce, val_abs_err)")
    a = p.parse_args(argv)
    d_rows, s_rows = read_log(a.distill), read_log(a.scratch)
    s_len = max(int(r["step"]) for r in s_rows)
    print(f"# {a.distill} vs {a.scratch} (scratch ran {s_len} steps), metric {a.metric}")
    print(f"| distill step | distill {a.metric} | scratch steps to reach it | ratio |")
    print("|---|---|---|---|")
    for row in speedup_table(d_rows, s_rows, a.at, a.metric):
        s = row["scratch_steps"]
        reach = str(s) if s is not None else f"not within {s_len}"
        ratio = f"{'>' if row['ratio_is_bound'] else ''}{row['ratio']:.1f}x"
        print(f"| {row['distill_step']} | {row[a.metric]:.4g} | {reach} | {ratio} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
