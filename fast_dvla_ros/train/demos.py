"""Demonstrations from the scripted expert in the conveyor simulator: generation, format, loading.

``python -m fast_dvla_ros.train.demos --episodes 200 --out runs/demos``

Format (``format_version`` 1), one directory:

* ``shard_00000.npz`` ... — ``np.savez_compressed`` archives of whole episodes, frames concatenated:
  ``images`` uint8 [N, S, S, 3] (scene camera at meta.json's control_hz), ``proprio`` float32 [N, 8]
  (7 joint positions rad + gripper width m, measured *before* the action), ``actions`` float32 [N, 8]
  (7 absolute joint targets rad + gripper width m, docs/CONTRACTS.md), ``episode`` int64 [N] (global
  episode index), ``step`` int32 [N] (index within the episode), and per episode: ``episode_ids``,
  ``instructions`` (unicode), ``seeds``, ``lengths``, ``belt_speed``, ``lateral_offset``, ``block_color``.
  ``scene_state`` float32 [N, 8] (``SCENE_STATE_NAMES``): the block's position, its offset from the grasp
  point and its yaw (as cos/sin of 4*yaw: a cube looks the same every 90 deg) at frame t. Privileged
  simulator state, never a policy input: the trainer uses it as an auxiliary target so the vision
  layers must localise the block (see ``TrainConfig.aux_weight``). Sets written before it existed load
  without it.
* ``meta.json`` — format name/version, image size, control rate, action and proprio names, counts,
  the shard list, the simulator and expert configs and the generation summary.
* ``stats.json`` — per dimension min/max/mean/std and 1/5/50/95/99th percentiles of ``actions`` and
  ``proprio`` (the tokenizer's bin ranges and the proprio normalisation come from here).

Why not LeRobotDataset: it stores video (needs ffmpeg/torchcodec decoding and the ``lerobot`` +
``datasets`` stack, large pinned dependencies that the node and training images do not otherwise
need), and its value is hub sharing, which this offline package does not use. Small compressed numpy
shards load with numpy alone, without pickle (``allow_pickle=False``), are written atomically (an
interrupted run never leaves a half shard that loads) and a whole 200-episode set fits in memory
for training on two CPU cores. Converting to LeRobot later is a straight mapping of these arrays.

Only successful episodes are kept: the policy imitates the expert, and a failed episode would
teach it the failure. Episode seeds are ``seed0, seed0+1, ...``; with N workers the output is
identical to one worker because results are consumed in seed order.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_NAME = "fast_dvla_ros.demos"
FORMAT_VERSION = 1
PROPRIO_NAMES = (*(f"panda_joint{i}_pos" for i in range(1, 8)), "gripper_width")
STAT_PERCENTILES = (1, 5, 50, 95, 99)
SCENE_STATE_NAMES = (
    "block_x", "block_y", "block_z",
    "block_minus_grasp_x", "block_minus_grasp_y", "block_minus_grasp_z",
    "block_cos4yaw", "block_sin4yaw",
)
# Column ranges of the scene state, for the code that reads a part of it by name.
BLOCK_POSITION = slice(SCENE_STATE_NAMES.index("block_x"), SCENE_STATE_NAMES.index("block_z") + 1)
BLOCK_MINUS_GRASP = slice(SCENE_STATE_NAMES.index("block_minus_grasp_x"),
                          SCENE_STATE_NAMES.index("block_minus_grasp_z") + 1)


def scene_state(env) -> np.ndarray:
    """Privileged state of the current frame (``SCENE_STATE_NAMES``), for auxiliary supervision."""
    block = env.block_state()
    grasp, _ = env.grasp_pose()
    yaw4 = 4.0 * float(block["yaw"])
    return np.r_[block["pos"], block["pos"] - grasp, np.cos(yaw4), np.sin(yaw4)].astype(np.float32)


# ------------------------------------------------------------------------------------------------
# generation
# ------------------------------------------------------------------------------------------------
@dataclass
class EpisodeRecord:
    """One expert episode at the control rate: frame t holds the observation and the action taken."""

    seed: int
    success: bool
    failure_cause: str
    images: np.ndarray
    proprio: np.ndarray
    actions: np.ndarray
    instruction: str
    belt_speed: float
    lateral_offset: float
    block_color: str
    scene_state: np.ndarray | None = None

    @property
    def length(self) -> int:
        return len(self.actions)


_worker_env = None
_worker_expert = None


_worker_noise = 0.0
_worker_takeover: tuple[Any, tuple[int, int]] | None = None


def _init_worker(
    sim_config: dict[str, Any], action_noise: float = 0.0, takeover: tuple[str, tuple[int, int]] | None = None
) -> None:
    global _worker_env, _worker_expert, _worker_noise, _worker_takeover
    from fast_dvla_ros.sim.conveyor_env import ConveyorPickEnv, SimConfig
    from fast_dvla_ros.sim.expert import ScriptedExpert

    _worker_env = ConveyorPickEnv(SimConfig.from_dict(sim_config))
    _worker_expert = ScriptedExpert()
    _worker_noise = action_noise
    _worker_takeover = None
    if takeover is not None:
        import torch

        from fast_dvla_ros.core.policy import Policy

        torch.set_num_threads(1)
        checkpoint, steps = takeover
        decoder = "bidirectional" if "bidirectional" in json.loads(
            (Path(checkpoint) / "config.json").read_text()
        )["attention"] else "pipelined"
        _worker_takeover = (Policy.load(checkpoint, decoder=decoder), steps)


def _run_policy(env, policy, obs: dict, info: dict, steps: int) -> tuple[dict, dict, bool]:
    """Let ``policy`` drive for ``steps`` control steps (4 actions per chunk, as in the evaluation);
    returns obs, info, done."""
    from fast_dvla_ros.evaluation.episodes import PolicyDriver

    driver = PolicyDriver(policy, env.control_hz)
    driver.reset(obs)
    while driver.steps < steps:
        chunk = driver.decide(obs, info["instruction"]).actions
        for action in chunk[: min(4, steps - driver.steps)]:
            obs, _, terminated, truncated, info = env.step(action)
            driver.stepped(obs)
            if terminated or truncated:
                return obs, info, True
    return obs, info, False


def run_expert_episode(
    env, expert, seed: int, action_noise: float = 0.0, takeover: tuple[Any, tuple[int, int]] | None = None
) -> EpisodeRecord:
    """Roll out the expert for one seeded episode and record every control step.

    ``action_noise`` (rad, DART-style): the *executed* joint targets get slowly varying noise (AR(1),
    correlation 0.9 per step, this stationary std) while the *recorded* label stays the expert's
    clean target. The arm then visits states off the expert's path, labelled with the way back,
    which is what a cloned policy needs once its own small errors compound in closed loop.

    ``takeover`` = (policy, (lo, hi)): a trained policy drives for a random lo..hi steps first, then
    the expert takes over from wherever the policy left the arm, and only the expert's part is
    recorded (DAgger-style recovery data: the states a cloned policy really reaches, labelled with
    how the expert gets from there to a pick).
    """
    obs, info = env.reset(seed=seed)
    if takeover is not None:
        policy, (lo, hi) = takeover
        k = int(np.random.default_rng(seed + 104729).integers(lo, hi + 1))
        obs, info, done = _run_policy(env, policy, obs, info, k)
        if done:  # the policy ended the episode (rare: a drop or a pick); nothing for the expert to show
            return EpisodeRecord(seed, False, "policy_ended", np.zeros((0, 1, 1, 3), np.uint8), np.zeros((0, 8)),
                                 np.zeros((0, 8)), str(info["instruction"]), float(info["belt_speed"]),
                                 float(info["lateral_offset"]), str(info["block_color"]))
    expert.reset(obs, info)
    images, proprio, actions, states = [], [], [], []
    max_steps = int(env.config.episode_time_limit * env.control_hz) + 2
    rng = np.random.default_rng(seed + 7919)
    drift = np.zeros(7)
    for _ in range(max_steps):
        label = expert.act(obs, info)
        action = label
        if action_noise > 0.0:
            drift = 0.9 * drift + math.sqrt(1.0 - 0.81) * action_noise * rng.standard_normal(7)
            action = label.copy()
            action[:7] += drift
        images.append(obs["image"])
        proprio.append(np.r_[obs["joint_pos"], obs["gripper_width"]])
        states.append(scene_state(env))
        actions.append(label)
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return EpisodeRecord(
        seed=seed,
        success=bool(info["success"]),
        failure_cause=str(info["failure_cause"] or ("" if info["success"] else "unfinished")),
        images=np.stack(images).astype(np.uint8),
        proprio=np.asarray(proprio, dtype=np.float32),
        actions=np.asarray(actions, dtype=np.float32),
        instruction=str(info["instruction"]),
        belt_speed=float(info["belt_speed"]),
        lateral_offset=float(info["lateral_offset"]),
        block_color=str(info["block_color"]),
        scene_state=np.stack(states),
    )


def _worker_episode(seed: int) -> EpisodeRecord:
    return run_expert_episode(_worker_env, _worker_expert, seed, _worker_noise, _worker_takeover)


def _episodes(
    sim_config: dict[str, Any], seeds: range, workers: int, action_noise: float = 0.0,
    takeover: tuple[str, tuple[int, int]] | None = None,
) -> Iterator[EpisodeRecord]:
    """Episodes in seed order, from this process or a pool of spawned workers."""
    if workers <= 1:
        _init_worker(sim_config, action_noise, takeover)
        try:
            for seed in seeds:
                yield _worker_episode(seed)
        finally:
            _worker_env.close()
            _worker_expert.close()
        return
    ctx = multiprocessing.get_context("spawn")  # no inherited pybullet/torch state in the workers
    with ctx.Pool(workers, initializer=_init_worker, initargs=(sim_config, action_noise, takeover)) as pool:
        yield from pool.imap(_worker_episode, seeds, chunksize=1)


def _write_shard(path: Path, episodes: list[EpisodeRecord], first_index: int) -> int:
    ids = np.arange(first_index, first_index + len(episodes), dtype=np.int64)
    arrays: dict[str, np.ndarray] = {
        "images": np.concatenate([e.images for e in episodes]),
        "proprio": np.concatenate([e.proprio for e in episodes]),
        "actions": np.concatenate([e.actions for e in episodes]),
        "episode": np.concatenate([np.full(e.length, i, np.int64) for i, e in zip(ids, episodes, strict=True)]),
        "step": np.concatenate([np.arange(e.length, dtype=np.int32) for e in episodes]),
        "episode_ids": ids,
        "instructions": np.array([e.instruction for e in episodes]),
        "seeds": np.array([e.seed for e in episodes], dtype=np.int64),
        "lengths": np.array([e.length for e in episodes], dtype=np.int64),
        "belt_speed": np.array([e.belt_speed for e in episodes], dtype=np.float64),
        "lateral_offset": np.array([e.lateral_offset for e in episodes], dtype=np.float64),
        "block_color": np.array([e.block_color for e in episodes]),
    }
    if all(e.scene_state is not None for e in episodes):
        arrays["scene_state"] = np.concatenate([e.scene_state for e in episodes])
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    return int(arrays["actions"].shape[0])


def dimension_stats(values: np.ndarray, names: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Per-dimension summary of an [N, D] array (lists of floats, JSON-ready)."""
    v = np.asarray(values, dtype=np.float64)
    out: dict[str, Any] = {
        "names": list(names),
        "count": int(v.shape[0]),
        "min": v.min(axis=0).tolist(),
        "max": v.max(axis=0).tolist(),
        "mean": v.mean(axis=0).tolist(),
        "std": v.std(axis=0).tolist(),
    }
    for p in STAT_PERCENTILES:
        out[f"p{p:02d}"] = np.percentile(v, p, axis=0).tolist()
    return out


def generate(
    out: str | Path,
    episodes: int,
    seed0: int = 0,
    workers: int = 1,
    episodes_per_shard: int = 50,
    sim_config: dict[str, Any] | None = None,
    max_attempts: int | None = None,
    progress: bool = True,
    action_noise: float = 0.0,
    takeover: tuple[str, tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """Generate ``episodes`` successful expert episodes into ``out``; returns the generation summary."""
    from tqdm import tqdm

    from fast_dvla_ros.sim import scene
    from fast_dvla_ros.sim.config import CONTROL_HZ
    from fast_dvla_ros.sim.conveyor_env import SimConfig
    from fast_dvla_ros.sim.expert import ExpertConfig

    if episodes < 1:
        raise ValueError("episodes must be >= 1")
    if episodes_per_shard < 1:
        raise ValueError("episodes_per_shard must be >= 1")
    cfg = SimConfig.from_dict(sim_config or {})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if any(out.glob("shard_*.npz")) or (out / "meta.json").exists():
        raise FileExistsError(f"{out} already holds demonstrations; choose an empty directory")
    max_attempts = max_attempts or int(episodes * 1.5) + 10
    seeds = range(seed0, seed0 + max_attempts)

    kept: list[EpisodeRecord] = []
    shards: list[dict[str, Any]] = []
    all_actions: list[np.ndarray] = []
    all_proprio: list[np.ndarray] = []
    all_state: list[np.ndarray] = []
    failures: Counter[str] = Counter()
    n_kept = attempts = frames = 0
    t0 = time.perf_counter()
    bar = tqdm(total=episodes, desc="expert demos", unit="ep", disable=not progress, dynamic_ncols=True)
    gen = _episodes(cfg.to_dict(), seeds, workers, action_noise, takeover)
    try:
        for rec in gen:
            attempts += 1
            if not rec.success:
                failures[rec.failure_cause] += 1
            else:
                kept.append(rec)
                all_actions.append(rec.actions)
                all_proprio.append(rec.proprio)
                all_state.append(rec.scene_state)
                n_kept += 1
                bar.update(1)
                if len(kept) == episodes_per_shard or n_kept == episodes:
                    name = f"shard_{len(shards):05d}.npz"
                    n = _write_shard(out / name, kept, n_kept - len(kept))
                    shards.append({"file": name, "episodes": len(kept), "frames": n})
                    frames += n
                    kept = []
            bar.set_postfix(kept=f"{n_kept}/{attempts}")
            if n_kept == episodes:
                break
    finally:
        gen.close()
        bar.close()
    wall = time.perf_counter() - t0
    if n_kept == 0:
        raise RuntimeError(f"the expert succeeded in none of {attempts} episodes; failures: {dict(failures)}")

    action_names = list(scene.ACTION_NAMES)
    stats = {
        "action_names": action_names,
        "proprio_names": list(PROPRIO_NAMES),
        "actions": dimension_stats(np.concatenate(all_actions), action_names),
        "proprio": dimension_stats(np.concatenate(all_proprio), PROPRIO_NAMES),
        "scene_state": dimension_stats(np.concatenate(all_state), SCENE_STATE_NAMES),
    }
    summary = {
        "episodes_kept": n_kept,
        "episodes_attempted": attempts,
        "expert_success_rate": n_kept / attempts,
        "failure_causes": dict(failures),
        "frames": frames,
        "mean_episode_length": frames / n_kept,
        "wall_s": wall,
        "episodes_per_min": attempts / wall * 60.0,
        "workers": workers,
        "action_noise": action_noise,
        "takeover": None if takeover is None else {"checkpoint": str(takeover[0]), "steps": list(takeover[1])},
    }
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "image_size": cfg.image_size,
        "image_key": "images",
        "control_hz": CONTROL_HZ,
        "action_names": action_names,
        "proprio_names": list(PROPRIO_NAMES),
        "scene_state_names": list(SCENE_STATE_NAMES),
        "action_convention": "7 absolute joint position targets (rad) + gripper opening width (m, 0..0.08)",
        "num_episodes": n_kept,
        "num_frames": frames,
        "seed0": seed0,
        "shards": shards,
        "sim_config": cfg.to_dict(),
        "expert_config": asdict(ExpertConfig()),
        "generation": summary,
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=2))
    (out / "meta.json").write_text(json.dumps(meta, indent=2))  # written last: marks a complete set
    return summary


# ------------------------------------------------------------------------------------------------
# loading
# ------------------------------------------------------------------------------------------------
def _read_meta(root: Path) -> dict[str, Any]:
    meta_path = root / "meta.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{root} has no meta.json: not a (complete) demonstration directory")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT_NAME or meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{meta_path}: format {meta.get('format')!r} v{meta.get('format_version')}, "
            f"this loader reads {FORMAT_NAME!r} v{FORMAT_VERSION}"
        )
    return meta


def load_demo_arrays(root: str | Path) -> dict[str, Any]:
    """All shards of a demonstration directory as contiguous arrays (frames of all episodes).

    Keys: ``images`` uint8 [N,S,S,3], ``proprio`` float32 [N,8], ``actions`` float32 [N,8],
    ``episode`` int64 [N], ``step`` int32 [N], ``instructions`` list[str] per frame,
    ``episode_instructions`` dict id -> str, ``episode_info`` list of per-episode dicts,
    ``stats`` (stats.json) and ``meta`` (meta.json). ``scene_state`` when recorded.
    """
    root = Path(root)
    meta = _read_meta(root)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("images", "proprio", "actions", "episode", "step")}
    states: list[np.ndarray] = []
    episode_info: list[dict[str, Any]] = []
    for shard in meta["shards"]:
        with np.load(root / shard["file"], allow_pickle=False) as z:
            for k in parts:
                parts[k].append(z[k])
            if "scene_state" in z.files:
                states.append(z["scene_state"])
            for i, ep in enumerate(z["episode_ids"].tolist()):
                episode_info.append(
                    {
                        "episode": int(ep),
                        "instruction": str(z["instructions"][i]),
                        "seed": int(z["seeds"][i]),
                        "length": int(z["lengths"][i]),
                        "belt_speed": float(z["belt_speed"][i]),
                        "lateral_offset": float(z["lateral_offset"][i]),
                        "block_color": str(z["block_color"][i]),
                    }
                )
    arrays: dict[str, Any] = {k: np.concatenate(v) for k, v in parts.items()}
    if len(arrays["actions"]) != meta["num_frames"]:
        raise ValueError(f"{root}: shards hold {len(arrays['actions'])} frames, meta.json says {meta['num_frames']}")
    by_id = {e["episode"]: e["instruction"] for e in episode_info}
    arrays["instructions"] = [by_id[int(e)] for e in arrays["episode"]]
    arrays["episode_instructions"] = by_id
    arrays["episode_info"] = episode_info
    if states and len(states) == len(meta["shards"]):
        arrays["scene_state"] = np.concatenate(states)
    arrays["stats"] = json.loads((root / "stats.json").read_text())
    arrays["meta"] = meta
    return arrays


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Generate scripted-expert demonstrations in the conveyor simulator.")
    p.add_argument("--episodes", type=int, required=True, help="successful episodes to keep")
    p.add_argument("--out", type=Path, required=True, help="output directory (must not hold demos yet)")
    p.add_argument("--seed0", type=int, default=0, help="first episode seed")
    p.add_argument("--workers", type=int, default=1, help="parallel simulator processes")
    p.add_argument("--episodes-per-shard", type=int, default=50)
    p.add_argument("--image-size", type=int, default=None, help="scene camera size (px); default: SimConfig's")
    p.add_argument("--sim-config", type=Path, default=None, help="JSON file with SimConfig fields")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--action-noise", type=float, default=0.0,
                   help="std (rad) of slowly varying noise on the executed joint targets; labels stay clean (DART)")
    p.add_argument("--takeover-checkpoint", type=Path, default=None,
                   help="a trained policy drives first, then the expert takes over (recovery data)")
    p.add_argument("--takeover-steps", type=int, nargs=2, default=(10, 60), metavar=("LO", "HI"),
                   help="policy steps before the takeover, uniform in LO..HI")
    a = p.parse_args(argv)
    sim = json.loads(a.sim_config.read_text()) if a.sim_config else {}
    if a.image_size is not None:
        sim["image_size"] = a.image_size
    summary = generate(
        a.out,
        a.episodes,
        seed0=a.seed0,
        workers=a.workers,
        episodes_per_shard=a.episodes_per_shard,
        sim_config=sim,
        progress=not a.no_progress,
        action_noise=a.action_noise,
        takeover=None if a.takeover_checkpoint is None else (str(a.takeover_checkpoint), tuple(a.takeover_steps)),
    )
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
