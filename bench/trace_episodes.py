"""Where does a policy fail? Print the grasp point's offset to the block through seeded episodes.

The closed-loop table (`fast-dvla-sim-eval`) says *that* an episode failed and the simulator's cause
("timeout", "missed", "dropped"); this trace says *how*: every ``--every`` control steps, the distance from
the point between the finger tips to the block (total, vertical, horizontal), the measured gripper width,
the commanded width and whether the simulator counts the block as grasped. A gripper that closes to
0.000 m holds nothing; one that closes while ``dz`` is still positive closed above the block.

    .venv/bin/python bench/trace_episodes.py --checkpoint models/teacher_bidirectional --decoder bidirectional \
        --seeds 1001 1002

Same execution as the evaluation's default (4 of 8 actions per chunk, no blending), privileged block state
from the simulator (never shown to the policy).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from fast_dvla_ros.core.policy import Policy
from fast_dvla_ros.evaluation.closed_loop import build_parser, decoder_settings
from fast_dvla_ros.evaluation.episodes import ChunkStepper, PolicyDriver, run_episode
from fast_dvla_ros.sim.conveyor_env import ConveyorPickEnv, SimConfig


def trace(policy: Policy, env: ConveyorPickEnv, seed: int, every: int, execute_steps: int) -> list[str]:
    """One episode; returns its lines (a header, then one line per ``every`` steps)."""
    driver = PolicyDriver(policy, env.control_hz)
    lines: list[str] = []

    def on_step(action: np.ndarray, obs: dict, info: dict) -> None:
        if driver.steps % every == 0:
            grasp, _ = env.grasp_pose()
            off = grasp - np.asarray(info["block_pos"])
            lines.append(f"  step {driver.steps:3d}  d {np.linalg.norm(off):.3f}  dz {off[2]:+.3f}  "
                         f"dxy {np.linalg.norm(off[:2]):.3f}  gripper {obs['gripper_width']:.3f}  "
                         f"command {action[-1]:.3f}  grasped {info['grasped']}")

    info = run_episode(env, driver, ChunkStepper(execute_steps, 1.0 / env.control_hz), seed, on_step=on_step)
    outcome = "picked" if info["success"] else info["failure_cause"]
    return [f"seed {seed}: belt {info['belt_speed']:.3f} m/s, {outcome} after {driver.steps} steps", *lines]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], parents=[build_parser()], add_help=False,
                                conflict_handler="resolve")
    p.add_argument("--seeds", type=int, nargs="+", default=[1000], help="episode seeds")
    p.add_argument("--every", type=int, default=15, help="control steps between lines")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads or 1)
    env = ConveyorPickEnv(SimConfig())
    try:
        for ckpt, dec in zip(a.checkpoint, a.decoder or [""] * len(a.checkpoint), strict=True):
            policy = Policy.load(ckpt, decoder=dec, settings=decoder_settings(a))
            policy.warmup()
            print(f"== {ckpt} + {policy.decoder_spec}")
            for seed in a.seeds:
                print("\n".join(trace(policy, env, seed, a.every, a.execute_steps)))
    finally:
        env.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
