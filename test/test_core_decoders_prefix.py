"""Latency-compensated decoding: an action prefix committed as known blocks (tiny config, random weights)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fast_dvla_ros.core.config import DVLAConfig
from fast_dvla_ros.core.decoders import DECODERS, ObservationBatch, PipelinedDecoder, make_decoder
from fast_dvla_ros.core.fast_backbone import StaticKVCache
from fast_dvla_ros.core.model import DVLA
from fast_dvla_ros.core.policy import Observation, Policy


@pytest.fixture(scope="module")
def model() -> DVLA:
    torch.manual_seed(0)
    return DVLA(DVLAConfig.preset("tiny")).eval()


def _batch(model: DVLA, batch: int = 1, seed: int = 0, prefix_steps: int = 0) -> ObservationBatch:
    g = torch.Generator().manual_seed(seed)
    s, D = model.config.image_size, model.config.action_dim
    prefix = torch.randint(0, model.config.num_bins, (batch, prefix_steps * D), generator=g)
    return ObservationBatch(
        images=torch.randint(0, 256, (batch, 3, s, s), generator=g, dtype=torch.uint8),
        instruction_ids=torch.as_tensor(model.instruction_tokenizer.encode_batch(["pick the red block"] * batch)),
        proprio=torch.randn(batch, model.config.proprio_dim, generator=g),
        prefix_bins=prefix if prefix_steps else None,
    )


@pytest.mark.parametrize("name", sorted(DECODERS))
@pytest.mark.parametrize("d", [1, 3, 7])
def test_prefix_tokens_come_back_unchanged_and_the_rest_is_decoded(model: DVLA, name: str, d: int) -> None:
    b = _batch(model, 2, seed=d, prefix_steps=d)
    out = make_decoder(name, model).decode(b)  # the base class checks every token committed exactly once
    D = model.config.action_dim
    assert torch.equal(out.tokens.reshape(2, -1)[:, : d * D], b.prefix_bins)


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_an_empty_prefix_changes_nothing(model: DVLA, name: str) -> None:
    b = _batch(model, 2, seed=4)
    empty = ObservationBatch(b.images, b.instruction_ids, b.proprio, torch.zeros(2, 0, dtype=torch.long))
    plain, with_empty = make_decoder(name, model).decode(b), make_decoder(name, model).decode(empty)
    assert torch.equal(plain.tokens, with_empty.tokens)
    assert plain.stats.forward_passes == with_empty.stats.forward_passes


@pytest.mark.parametrize("name", ["block_cache", "pipelined"])
@pytest.mark.parametrize("d", [0, 2, 5])
def test_block_decoders_spend_no_forward_on_the_prefix(model: DVLA, name: str, d: int) -> None:
    """A whole block per step: H - d forwards, the known blocks riding in the first with the observation."""
    out = make_decoder(name, model, tokens_per_step=model.config.action_dim).decode(_batch(model, 1, 1, d))
    assert out.stats.forward_passes == model.config.horizon - d


@pytest.mark.parametrize("kwargs", [{"tokens_per_step": 2}, {"tau_conf": 0.002, "tau_add": 0.1, "tau_act": 0.3}])
def test_pipelined_with_a_prefix_is_exact_against_full_recomputation(model: DVLA, kwargs: dict) -> None:
    b = _batch(model, 2, seed=5, prefix_steps=3)
    cached = PipelinedDecoder(model, **kwargs).decode(b)
    plain = PipelinedDecoder(model, use_kv_cache=False, **kwargs).decode(b)
    assert torch.equal(cached.tokens, plain.tokens)


@pytest.mark.parametrize("name", ["block_cache", "pipelined"])
def test_prefix_blocks_kv_equals_a_forward_with_those_tokens_clean(model: DVLA, name: str) -> None:
    d, D, P = 3, model.config.action_dim, model.prefix_len
    b = _batch(model, 1, seed=6, prefix_steps=d)
    decoder = make_decoder(name, model)
    caches: list[StaticKVCache] = []
    new_cache = decoder._new_cache
    decoder._new_cache = lambda batch: caches.append(new_cache(batch)) or caches[-1]  # type: ignore[method-assign]
    decoder.decode(b)
    # reference: observation prefix + the known blocks alone, in one block-causal forward
    ref = decoder.runner.new_cache(1, model.seq_len)
    with torch.inference_mode():
        embeds = torch.cat([model.embed_prefix(b.images, b.instruction_ids, b.proprio),
                            model.embed_actions(b.prefix_bins, 0)], dim=1)
        n = P + d * D
        decoder.runner(embeds, model.attention_mask("block_causal")[:n, :n], 0, ref)
    (cache,) = caches
    for layer in range(len(ref.keys)):
        assert torch.allclose(cache.keys[layer][:, :, :n], ref.keys[layer][:, :, :n], atol=1e-5)
        assert torch.allclose(cache.values[layer][:, :, :n], ref.values[layer][:, :, :n], atol=1e-5)


@pytest.mark.parametrize("tokens", [5, 64])
def test_bad_prefix_lengths_are_refused(model: DVLA, tokens: int) -> None:
    b = _batch(model)
    bad = ObservationBatch(b.images, b.instruction_ids, b.proprio, torch.zeros(1, tokens, dtype=torch.long))
    with pytest.raises(ValueError, match="prefix"):
        make_decoder("pipelined", model).decode(bad)


def test_policy_tokenises_an_absolute_prefix_relative_to_the_observation(model: DVLA) -> None:
    policy = Policy(model, make_decoder("pipelined", model))
    proprio = model.proprio_mean.numpy().astype(np.float64)
    space = model.action_tokenizer.space
    prefix = np.tile(np.clip(proprio, space.low, space.high), (2, 1))
    prefix[1, 0] += 0.1
    s = model.config.image_size
    obs = Observation(np.zeros((s, s, 3), np.uint8), proprio, "pick", action_prefix=prefix)
    result = policy.predict(obs)
    assert result.prefix_steps == 2
    tok = model.action_tokenizer
    back = space.to_absolute(tok.decode(result.tokens[None, :2]), proprio[None])[0]
    assert np.all(np.abs(back - prefix) <= tok.bin_width / 2 + 1e-9)
    assert np.allclose(result.actions[:2], back)
    far = prefix.copy()
    far[0, 0] = space.high[0] + 1.0
    with pytest.raises(ValueError, match="outside"):
        policy.predict(Observation(obs.image, proprio, "pick", action_prefix=far))
    with pytest.raises(ValueError, match="leaves none"):
        policy.predict(Observation(obs.image, proprio, "pick", action_prefix=np.tile(prefix[:1], (8, 1))))
