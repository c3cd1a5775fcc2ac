"""Benchmark the scripted conveyor-picking expert over seeded episodes.

    .venv/bin/python bench/expert.py --episodes 100

Prints the success rate with its 95% Wilson score interval, episode lengths, failure causes
and the simulation throughput. Seeds are ``seed0 .. seed0 + episodes - 1``, so a run is
reproducible and can be compared across code changes.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time

from fast_dvla_ros.evaluation.intervals import wilson_interval
from fast_dvla_ros.sim.conveyor_env import ConveyorPickEnv, SimConfig
from fast_dvla_ros.sim.expert import ScriptedExpert


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--seed0", type=int, default=0)
    ap.add_argument("--speed-min", type=float, default=None, help="override the belt speed range (m/s)")
    ap.add_argument("--speed-max", type=float, default=None)
    ap.add_argument("--image-size", type=int, default=SimConfig().image_size)
    args = ap.parse_args()

    cfg = SimConfig(image_size=args.image_size)
    if args.speed_min is not None or args.speed_max is not None:
        lo = args.speed_min if args.speed_min is not None else cfg.belt_speed_range[0]
        hi = args.speed_max if args.speed_max is not None else cfg.belt_speed_range[1]
        cfg = SimConfig(belt_speed_range=(lo, hi), image_size=args.image_size)
    env = ConveyorPickEnv(cfg)
    expert = ScriptedExpert()
    causes: collections.Counter[str] = collections.Counter()
    lengths, success_lengths, retries = [], [], 0
    successes = 0
    max_steps = int(cfg.episode_time_limit * env.control_hz) + 5
    t0 = time.perf_counter()
    for ep in range(args.episodes):
        seed = args.seed0 + ep
        obs, info = env.reset(seed=seed)
        expert.reset(obs, info)
        steps = 0
        for steps in range(1, max_steps + 1):  # noqa: B007 - the last value is the episode length
            obs, _, terminated, truncated, info = env.step(expert.act(obs, info))
            if terminated or truncated:
                break
        lengths.append(steps)
        retries += expert.retries
        if info["success"]:
            successes += 1
            success_lengths.append(steps)
        else:
            causes[info["failure_cause"] or "unfinished"] += 1
            print(f"  seed {seed}: {info['failure_cause']} after {steps} steps (belt {info['belt_speed']:.3f} m/s)")
    wall = time.perf_counter() - t0
    env.close()
    expert.close()

    n = args.episodes
    lo, hi = wilson_interval(successes, n)
    seeds = f"{args.seed0}..{args.seed0 + n - 1}"
    print(f"belt speed range {cfg.belt_speed_range} m/s, image {cfg.image_size} px, seeds {seeds}")
    print(f"success rate     {successes}/{n} = {successes / n:.1%}  (95% Wilson CI {lo:.1%} .. {hi:.1%})")
    print(
        f"episode length   mean {statistics.mean(lengths):.1f} steps ({statistics.mean(lengths) / 30:.2f} s), "
        f"min {min(lengths)}, max {max(lengths)}"
    )
    if success_lengths:
        print(f"successful eps   mean {statistics.mean(success_lengths):.1f} steps")
    print(f"failure causes   {dict(causes) if causes else 'none'}")
    print(f"grasp retries    {retries}")
    print(
        f"throughput       {n / wall * 60:.1f} episodes/min, {sum(lengths) / wall:.0f} control steps/s "
        f"(rendering included, wall {wall:.1f} s)"
    )


if __name__ == "__main__":
    main()
