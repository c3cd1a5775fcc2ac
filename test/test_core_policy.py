"""Policy: checkpoint loading, preprocessing of any image size, bad-input errors, and decoding a model that learned."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fast_dvla_ros.core.checkpoint import CheckpointError
from fast_dvla_ros.core.config import DVLAConfig
from fast_dvla_ros.core.decoders import DECODERS
from fast_dvla_ros.core.model import DVLA, MASKED_BIN
from fast_dvla_ros.core.policy import Observation, Policy, preprocess_image


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    torch.manual_seed(0)
    model = DVLA(DVLAConfig.preset("tiny"))
    model.set_proprio_stats(np.zeros(8), np.ones(8))
    return str(model.save_pretrained(tmp_path_factory.mktemp("ck") / "tiny_ck"))


def _obs(h: int = 50, w: int = 70, seed: int = 0) -> Observation:
    rng = np.random.default_rng(seed)
    return Observation(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), rng.normal(size=8).astype(np.float32), "pick")


@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_predict_contract(checkpoint: str, decoder: str) -> None:
    policy = Policy.load(checkpoint, decoder=decoder, device="cpu")
    assert policy.horizon == 8 and policy.decoder_name == decoder and policy.checkpoint_name == "tiny_ck"
    assert policy.action_names[0] == "panda_joint1" and len(policy.action_names) == 8
    res = policy.predict(_obs())
    assert res.actions.shape == (8, 8) and res.actions.dtype == np.float64
    space = policy.model.action_tokenizer.space
    assert np.all(res.actions >= np.array(space.low)) and np.all(res.actions <= np.array(space.high))
    assert res.stats.forward_passes >= 1 and res.stats.tokens_committed == 64 and res.stats.latency_s > 0
    assert policy.warmup(1).tokens_committed == 64


def test_bad_observations_raise_value_errors(checkpoint: str) -> None:
    policy = Policy.load(checkpoint, decoder="pipelined")
    good = _obs()
    for bad in (
        Observation(np.zeros((10, 10), np.uint8), good.proprio, "x"),
        Observation(good.image.astype(np.float32), good.proprio, "x"),
        Observation(good.image, np.full(8, np.nan), "x"),
        Observation(good.image, np.zeros(3), "x"),
        Observation(good.image, good.proprio, None),  # type: ignore[arg-type]
    ):
        with pytest.raises(ValueError):
            policy.predict(bad)
    assert policy.predict(good).actions.shape == (8, 8)  # still usable afterwards


def test_load_errors(checkpoint: str, tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown decoder"):
        Policy.load(checkpoint, decoder="nope")
    with pytest.raises(CheckpointError):
        Policy.load(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="pickle"):
        Policy.load(tmp_path / "weights.pth")


def test_preprocess_resizes_and_keeps_content() -> None:
    img = np.zeros((100, 60, 4), np.uint8)
    img[..., 0] = 200
    out = preprocess_image(img, 32)
    assert out.shape == (3, 32, 32) and out.dtype == torch.uint8
    assert int(out[0].min()) == 200 and int(out[1].max()) == 0


def _train_structured(steps: int = 150) -> tuple[DVLA, callable]:
    """Teach tiny a chunk that depends on the instruction, with both masks, as the trainer would."""
    torch.manual_seed(0)
    model = DVLA(DVLAConfig.preset("tiny"))
    tok = model.action_tokenizer
    texts = ["move left", "move right"]

    def target(i: int) -> np.ndarray:
        t = np.linspace(0, 1, 8)[:, None]
        base = np.array(tok.space.low) + (np.array(tok.space.high) - np.array(tok.space.low)) * (0.3 + 0.4 * i)
        return base + 0.2 * (1 - 2 * i) * t * (np.array(tok.space.high) - np.array(tok.space.low)) * 0.5

    bins = torch.as_tensor(np.stack([tok.encode(target(i)) for i in range(2)])).reshape(2, -1)
    images = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    instr = torch.as_tensor(model.instruction_tokenizer.encode_batch(texts))
    proprio = torch.zeros(2, 8)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    for step in range(steps):
        ratio = torch.rand(2, 1, generator=g)
        masked = torch.rand(2, 64, generator=g) < ratio.clamp_min(0.05)
        attention = "block_causal" if step % 2 else "bidirectional"
        logits = model.forward_train(images, instr, proprio, bins.masked_fill(masked, MASKED_BIN), attention=attention)
        loss = model.loss(logits, bins, masked)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), target


def test_trained_model_decodes_in_parallel(tmp_path) -> None:
    model, target = _train_structured()
    ck = model.save_pretrained(tmp_path / "trained")
    results = {}
    for name in sorted(DECODERS):
        policy = Policy.load(ck, decoder=name)
        for i, text in enumerate(["move left", "move right"]):
            obs = Observation(np.zeros((32, 32, 3), np.uint8), np.zeros(8), text)
            res = policy.predict(obs)
            err = np.abs(res.actions - target(i)) / policy.model.action_tokenizer.bin_width
            assert np.mean(err <= 1.0) > 0.9, (name, i, float(np.mean(err <= 1.0)))
            results[(name, i)] = res.stats.forward_passes
    # confident model: the threshold decoders commit several tokens per forward
    assert results[("pipelined", 0)] < 1 + 64 // 2
    assert results[("pipelined", 0)] <= results[("block_cache", 0)]
