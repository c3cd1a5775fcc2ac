"""``fast-dvla-eval``: Markdown + PNG report of a bag, or two bags side by side.

    fast-dvla-eval BAG [--out DIR]
    fast-dvla-eval --compare BASELINE_BAG FAST_DVLA_BAG [--out DIR]

Topics are found by type; ``--commands-topic`` etc. override the choice.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from fast_dvla_ros.bag.reader import BagReadError
from fast_dvla_ros.evaluation.analysis import analyze
from fast_dvla_ros.evaluation.report import write_report
from fast_dvla_ros.evaluation.topics import Role, TopicSelectionError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fast-dvla-eval", description="Timing, safety and outcome report from rosbag2 recordings (no ROS needed)."
    )
    parser.add_argument("bag", nargs="?", type=Path, help="rosbag2 folder or .mcap file")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"), help="two bags side by side")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: <bag>_report)")
    parser.add_argument("--rate", type=float, default=None, help="nominal command rate in Hz (default: median)")
    for role in Role:
        parser.add_argument(f"--{role.value}-topic", default=None, help=f"topic to use as {role.value}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns 0, or 2 with a one-line error for bad input."""
    args = _parser().parse_args(argv)
    if bool(args.bag) == bool(args.compare):
        print("fast-dvla-eval: give one BAG or --compare A B", file=sys.stderr)
        return 2
    bags = [args.bag] if args.bag else list(args.compare)
    overrides = {role: value for role in Role if (value := getattr(args, f"{role.value}_topic"))}
    names = [b.name for b in bags]
    if len(set(names)) < len(names):
        names = [str(b) for b in bags]
    try:
        analyses = [analyze(b, overrides, nominal_rate_hz=args.rate, name=n) for b, n in zip(bags, names, strict=True)]
    except (BagReadError, TopicSelectionError) as err:
        print(f"fast-dvla-eval: {err}", file=sys.stderr)
        return 2
    out = args.out or bags[0].with_name(bags[0].stem + ("_report" if len(bags) == 1 else "_comparison"))
    path = write_report(analyses, out)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
