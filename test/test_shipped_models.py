"""The checkpoints shipped in models/ load and decode a valid chunk from a real simulator frame.

Fast on purpose (one decode per checkpoint); their closed-loop success is measured by
``fast-dvla-sim-eval`` and recorded in bench/RESULTS.md, not asserted here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fast_dvla_ros.core.policy import Observation, Policy
from fast_dvla_ros.sim.conveyor_env import ConveyorPickEnv, SimConfig

MODELS = Path(__file__).resolve().parents[1] / "models"
SHIPPED = {  # checkpoint -> (attention it must have been trained with, decoders that must run on it)
    "teacher_bidirectional": ("bidirectional", ["bidirectional", "prefix_cache"]),
    "student_distilled": ("block_causal", ["block_cache", "pipelined"]),
    "student_scratch_long": ("block_causal", ["block_cache", "pipelined"]),
    "student_prefix": ("block_causal", ["block_cache", "pipelined"]),
}


@pytest.fixture(scope="module")
def observation() -> Observation:
    env = ConveyorPickEnv(SimConfig())
    try:
        obs, info = env.reset(seed=3)
    finally:
        env.close()
    proprio = np.concatenate([obs["joint_pos"], [obs["gripper_width"]]]).astype(np.float32)
    return Observation(image=obs["image"], proprio=proprio, instruction=info["instruction"])


def test_shipped_models_fit_the_budget() -> None:
    files = [f for f in MODELS.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) <= 50 * 2**20
    assert not [f for f in files if f.suffix in (".pt", ".pth", ".bin", ".pkl")], "pickle checkpoints are not shipped"


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_checkpoint_decodes_a_valid_chunk(name: str, observation: Observation) -> None:
    attention, decoders = SHIPPED[name]
    ckpt = MODELS / name
    assert json.loads((ckpt / "config.json").read_text())["attention"] == attention
    for decoder in decoders:
        policy = Policy.load(ckpt, decoder=decoder)
        result = policy.predict(observation)
        space = policy.model.action_tokenizer.space
        assert result.actions.shape == (policy.horizon, len(space.names))
        assert np.all(np.isfinite(result.actions))
        lo, hi = np.asarray(space.low), np.asarray(space.high)
        tokens_range = space.to_relative(result.actions[None], observation.proprio[None])[0]
        assert np.all(tokens_range >= lo - 1e-6) and np.all(tokens_range <= hi + 1e-6)
        # A trained policy starts its chunk near where the arm is (the untrained one lands anywhere).
        assert np.max(np.abs(result.actions[0, :7] - observation.proprio[:7])) < 0.3, (decoder, result.actions[0])
        assert result.stats.forward_passes >= 1 and result.stats.tokens_committed == result.actions.size


def test_the_prefix_checkpoint_continues_its_own_first_steps(observation: Observation) -> None:
    """Given the first steps of its own chunk as an action prefix, the block-causal student decodes the same
    rest (the prefix's KV is what those tokens would have produced), and only the shipped prefix checkpoint
    says it was trained for prefixes."""
    import dataclasses

    policy = Policy.load(MODELS / "student_prefix")
    assert policy.max_prefix_steps == 5 and Policy.load(MODELS / "student_distilled").max_prefix_steps == 0
    whole = policy.predict(observation)
    given = policy.predict(dataclasses.replace(observation, action_prefix=whole.actions[:3]))
    assert given.prefix_steps == 3 and given.stats.forward_passes < whole.stats.forward_passes
    assert np.array_equal(given.tokens, whole.tokens)
