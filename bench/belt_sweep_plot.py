"""Belt sweeps of several policies side by side: one table, one PNG, the paper's picks-per-minute ratio.

    .venv/bin/python bench/belt_sweep_plot.py --png bench/belt_sweep.png \
        "teacher + bidirectional=runs/sweep_teacher.json" "student + pipelined=runs/sweep_student.json"

Each argument is LABEL=JSON, a `bench/belt_sweep.py --json` file; the first is the baseline. The PNG has
success with its 95% interval and picks per minute against belt speed, one line per policy. The table
gives, per policy, success and picks/min at each speed, and the ratio the paper reports: at the fastest
belt where the baseline still picks anything, each policy's picks per minute over the baseline's
(measured on the same seeds; rows from runs with different seeds or episode counts are refused).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path
from typing import Any


def load_sweep(arg: str) -> tuple[str, dict[str, Any]]:
    label, sep, path = arg.rpartition("=")  # labels may hold "=" ("n = 1"), paths rarely do
    if not sep or not label or not path:
        raise SystemExit(f"bench/belt_sweep_plot.py: expected LABEL=JSON, got {arg!r}")
    return label, json.loads(Path(path).read_text())


def _by_speed(sweep: dict[str, Any]) -> dict[float, dict[str, Any]]:
    return {round(float(r["belt_speed"]), 4): r for r in sweep["rows"]}


def seed_args(args: str) -> tuple[str, ...]:
    """The --episodes and --seed words of a sweep's command line: which seeded episodes it ran."""
    words = args.split()
    picked: list[str] = []
    for flag, value in itertools.pairwise(words):
        if flag in ("--episodes", "--seed"):
            picked += [flag, value]
    return tuple(picked)


def check_comparable(sweeps: list[tuple[str, dict[str, Any]]]) -> None:
    """Same --episodes and --seed in every sweep, or the side-by-side rows are not the same episodes."""
    first = seed_args(sweeps[0][1]["args"])
    for label, s in sweeps[1:]:
        if seed_args(s["args"]) != first:
            raise SystemExit(f"bench/belt_sweep_plot.py: {label!r} ran {s['args']!r}, the baseline "
                             f"{sweeps[0][1]['args']!r}: not the same seeded episodes")


def fastest_baseline_ratio(baseline: dict[str, Any], policy: dict[str, Any]) -> dict[str, Any] | None:
    """At the fastest belt (in both sweeps) where the baseline picked anything: picks/min policy / baseline."""
    base, pol = _by_speed(baseline), _by_speed(policy)
    picked = [v for v in sorted(base) if v in pol and base[v]["successes"] > 0]
    if not picked:
        return None
    v = picked[-1]
    b, p = base[v]["picks_per_minute"], pol[v]["picks_per_minute"]
    return {"belt_speed": v, "baseline": b, "policy": p, "ratio": p / b if b > 0 else math.inf}


def format_table(sweeps: list[tuple[str, dict[str, Any]]]) -> list[str]:
    speeds = sorted({v for _, s in sweeps for v in _by_speed(s)})
    head = "| policy | " + " | ".join(f"{v:.2f} m/s" for v in speeds) + " | picks/min vs baseline |"
    lines = [head, "|" + "---|" * (len(speeds) + 2)]
    base = sweeps[0][1]
    for i, (label, s) in enumerate(sweeps):
        rows = _by_speed(s)
        cells = []
        for v in speeds:
            r = rows.get(v)
            cells.append("-" if r is None else
                         f"{r['successes']}/{r['episodes']} ({r['picks_per_minute']:.2f}/min)")
        ratio = "baseline" if i == 0 else "no speed where the baseline picks"
        if i:
            cmp = fastest_baseline_ratio(base, s)
            if cmp is not None:
                ratio = (f"{cmp['ratio']:.2f}x at {cmp['belt_speed']:.2f} m/s "
                         f"({cmp['policy']:.2f} / {cmp['baseline']:.2f})")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")
    return lines


def plot(sweeps: list[tuple[str, dict[str, Any]]], png: Path) -> list[str]:
    """Write the PNG; returns the picks/min panel's line labels (one per policy)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_s, ax_p) = plt.subplots(1, 2, figsize=(10, 4))
    for label, s in sweeps:
        rows = [r for _, r in sorted(_by_speed(s).items())]
        v = [r["belt_speed"] for r in rows]
        rate = [100.0 * r["successes"] / r["episodes"] if r["episodes"] else math.nan for r in rows]
        lo = [max(0.0, x - 100.0 * r["ci95"][0]) for x, r in zip(rate, rows, strict=True)]
        hi = [max(0.0, 100.0 * r["ci95"][1] - x) for x, r in zip(rate, rows, strict=True)]
        ax_s.errorbar(v, rate, yerr=[lo, hi], marker="o", capsize=3, label=label)
        ax_p.plot(v, [r["picks_per_minute"] for r in rows], marker="o", label=label)
    ax_s.set(xlabel="belt speed (m/s)", ylabel="success in the real-time loop (%, 95% CI)", ylim=(-3, 103))
    ax_p.set(xlabel="belt speed (m/s)", ylabel="picks per minute (failures' time included)")
    for ax in (ax_s, ax_p):
        ax.grid(alpha=0.3)
    ax_p.legend(fontsize=8)
    fig.suptitle(f"real-time ROS loop, bench/belt_sweep.py {' '.join(seed_args(sweeps[0][1]['args']))}", fontsize=9)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    labels = [line.get_label() for line in ax_p.get_lines()]
    plt.close(fig)
    return labels


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sweeps", nargs="+", help="LABEL=JSON from bench/belt_sweep.py --json; the first is the baseline")
    p.add_argument("--png", type=Path, help="write the plot here")
    a = p.parse_args(argv)
    sweeps = [load_sweep(s) for s in a.sweeps]
    check_comparable(sweeps)
    print("\n".join(format_table(sweeps)))
    if a.png:
        plot(sweeps, a.png)
        print(f"\npng: {a.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
