"""Decoder exactness and bookkeeping on the tiny config with random weights (CPU, seconds)."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from fast_dvla_ros.core.config import DVLAConfig
from fast_dvla_ros.core.decoders import (
    DECODERS,
    BlockCacheDecoder,
    ObservationBatch,
    PipelinedDecoder,
    make_decoder,
)
from fast_dvla_ros.core.decoders import unmasking as U
from fast_dvla_ros.core.model import DVLA, MASKED_BIN


@pytest.fixture(scope="module")
def model() -> DVLA:
    torch.manual_seed(0)
    return DVLA(DVLAConfig.preset("tiny")).eval()


def _batch(model: DVLA, batch: int = 1, seed: int = 0) -> ObservationBatch:
    g = torch.Generator().manual_seed(seed)
    s = model.config.image_size
    texts = ["pick the red block", "stop", "place it left"]
    return ObservationBatch(
        images=torch.randint(0, 256, (batch, 3, s, s), generator=g, dtype=torch.uint8),
        instruction_ids=torch.as_tensor(model.instruction_tokenizer.encode_batch([texts[i % 3] for i in range(batch)])),
        proprio=torch.randn(batch, model.config.proprio_dim, generator=g),
    )


def _row(b: ObservationBatch, i: int) -> ObservationBatch:
    return ObservationBatch(b.images[i : i + 1], b.instruction_ids[i : i + 1], b.proprio[i : i + 1])


def test_cached_block_causal_logits_equal_full_forward(model: DVLA) -> None:
    b = _batch(model, 2)
    g = torch.Generator().manual_seed(1)
    bins = torch.randint(0, 256, (2, 64), generator=g)
    bins[torch.rand(bins.shape, generator=g) < 0.4] = MASKED_BIN
    P, D = model.prefix_len, model.config.action_dim
    with torch.inference_mode():
        ref = model.forward_train(b.images, b.instruction_ids, b.proprio, bins, attention="block_causal")
        full = model.attention_mask("block_causal")
        cache = DynamicCache()
        model.run_backbone(model.embed_prefix(b.images, b.instruction_ids, b.proprio), full[:P, :P], 0, cache)
        for h in range(model.config.horizon):
            lo, hi = h * D, (h + 1) * D
            embeds = model.embed_actions(bins[:, lo:hi], lo)
            hidden = model.run_backbone(embeds, full[P + lo : P + hi, : P + hi], P + lo, cache)
            assert torch.allclose(model.action_logits(hidden), ref[:, lo:hi], atol=1e-5), f"block {h}"
    assert cache.get_seq_length() == model.seq_len


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pipelined_one_block_in_flight_equals_block_cache(model: DVLA, seed: int) -> None:
    b = _batch(model, 1, seed)
    block = BlockCacheDecoder(model, tau_conf=1.01).decode(b)  # threshold never met: one token per step
    pipe = PipelinedDecoder(model, tau_conf=1.01, n=100, tau_add=1.0).decode(b)
    assert torch.equal(block.tokens, pipe.tokens)
    assert block.stats.forward_passes == pipe.stats.forward_passes == 64  # the prefix rides in the first


@pytest.mark.parametrize("kwargs", [{"tokens_per_step": 2}, {"tokens_per_step": 3, "tau_add": 0.1, "tau_act": 0.2},
                                    {"tau_conf": 0.002, "tau_add": 0.1, "tau_act": 0.3}])
def test_pipelined_cache_is_exact_with_blocks_in_flight(model: DVLA, kwargs: dict) -> None:
    """Same decisions with the KV cache as with a full recomputation every step, several blocks in flight."""
    b = _batch(model, 2, seed=3)
    cached = PipelinedDecoder(model, **kwargs).decode(b)
    plain = PipelinedDecoder(model, use_kv_cache=False, **kwargs).decode(b)
    assert torch.equal(cached.tokens, plain.tokens)
    assert cached.stats.forward_passes == plain.stats.forward_passes < 64


@pytest.mark.parametrize("name", sorted(DECODERS))
@pytest.mark.parametrize("fixed", [None, 3])
def test_every_token_committed_once(model: DVLA, name: str, fixed: int | None) -> None:
    dec = make_decoder(name, model, tokens_per_step=fixed)
    out = dec.decode(_batch(model, 2))
    assert torch.equal(dec.commit_counts, torch.ones(2, 64, dtype=torch.long))
    assert out.tokens.shape == (2, 8, 8) and out.actions.shape == (2, 8, 8)
    assert out.tokens.min() >= 0 and out.tokens.max() < 256
    assert out.stats.tokens_committed == 128
    assert out.stats.tokens_per_forward == pytest.approx(128 / out.stats.forward_passes)


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_batch_equals_each_item_alone(model: DVLA, name: str) -> None:
    b = _batch(model, 3, seed=5)
    dec = make_decoder(name, model)
    together = dec.decode(b).tokens
    for i in range(3):
        assert torch.equal(dec.decode(_row(b, i)).tokens[0], together[i]), f"row {i}"


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_deterministic_for_fixed_seed(model: DVLA, name: str) -> None:
    b = _batch(model, 2)
    kw = {"temperature": 1.0, "tokens_per_step": 4}  # sampling; a fixed schedule keeps the test short
    first = make_decoder(name, model, seed=7, **kw).decode(b).tokens
    again = make_decoder(name, model, seed=7, **kw).decode(b).tokens
    other = make_decoder(name, model, seed=8, **kw).decode(b).tokens
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_forward_counts_follow_the_schedules(model: DVLA) -> None:
    b = _batch(model)
    assert make_decoder("bidirectional", model).decode(b).stats.forward_passes == 12
    assert make_decoder("bidirectional", model, tokens_per_step=4).decode(b).stats.forward_passes == 16
    assert make_decoder("prefix_cache", model, tokens_per_step=4).decode(b).stats.forward_passes == 1 + 16
    # lower bound: one forward per block, the prefix riding in the first (prefix_cache keeps a prefix pass)
    assert make_decoder("block_cache", model, tokens_per_step=8).decode(b).stats.forward_passes == 8
    blk = make_decoder("block_cache", model, tokens_per_step=2).decode(b).stats.forward_passes
    pipe = make_decoder("pipelined", model, tokens_per_step=2).decode(b).stats.forward_passes
    assert blk == 32 and pipe < blk


def test_selection_rules_row_wise() -> None:
    conf = torch.tensor([[0.9, 0.1, 0.8, 0.3], [0.2, 0.6, 0.1, 0.7]])
    masked = torch.tensor([[True, True, False, True], [True, True, True, False]])
    assert U.select_top_k(conf, masked, 2).tolist() == [[True, False, False, True], [True, True, False, False]]
    assert U.select_top_k(conf, masked, torch.tensor([1, 3])).tolist() == [
        [True, False, False, False], [True, True, True, False]
    ]
    assert U.select_threshold(conf, masked, 0.95, at_least_one=True).tolist() == [
        [True, False, False, False], [False, True, False, False]
    ]
    # 3 masked, n=2 -> k=1, plus everything >= tau
    assert U.select_pipelined_full(conf, masked, 0.5, 2).tolist() == [
        [True, False, False, False], [False, True, False, False]
    ]
    nothing = torch.zeros_like(masked)
    assert not U.select_pipelined_full(conf, nothing, 0.0, 2).any()
    # [batch, blocks, D] with one k per block: each block selected as it would be on its own
    conf3, masked3 = torch.stack([conf, conf.flip(0)]), torch.stack([masked, masked.flip(0)])
    k3 = torch.tensor([[1, 3], [2, 1]])
    got = U.select_top_k(conf3, masked3, k3)
    for b in range(2):
        for blk in range(2):
            alone = U.select_top_k(conf3[b, blk][None], masked3[b, blk][None], int(k3[b, blk]))[0]
            assert torch.equal(got[b, blk], alone)
    full3 = U.select_pipelined_full(conf3, masked3, 0.5, 2)
    assert torch.equal(full3[0], U.select_pipelined_full(conf, masked, 0.5, 2))


@pytest.mark.parametrize(("total", "steps"), [(64, 12), (56, 12), (5, 12), (64, 1), (8, 8)])
def test_cosine_schedule(total: int, steps: int) -> None:
    counts = U.cosine_schedule(total, steps)
    assert sum(counts) == total and min(counts) >= 1 and len(counts) == min(total, steps)


def test_bad_parameters() -> None:
    m = DVLA(DVLAConfig.preset("tiny"))
    with pytest.raises(ValueError, match="unknown decoder"):
        make_decoder("greedy", m)
    with pytest.raises(ValueError):
        make_decoder("pipelined", m, tokens_per_step=0)
    with pytest.raises(ValueError, match="has no option 'tau_add'"):
        make_decoder("block_cache", m, tau_add=0.5)
    with pytest.raises(ValueError, match="readout"):
        make_decoder("pipelined", m, readout="median")


def test_mean_readout_on_ordinal_positions_argmax_elsewhere() -> None:
    """A wide, skewed distribution: the mode (bin 2) is far from the mean (bin 6); the gripper-like
    position keeps its mode, and the confidence is the mode's probability under both readouts."""
    probs = torch.zeros(1, 2, 12)
    probs[0, :, 2], probs[0, :, 9], probs[0, :, 10] = 0.40, 0.35, 0.25
    logits = probs.clamp_min(1e-9).log()
    pred, conf = U.predict(logits, mean_positions=torch.tensor([True, False]))
    assert pred.tolist() == [[6, 2]]
    assert torch.allclose(conf, torch.tensor([[0.40, 0.40]]), atol=1e-5)
    pred_argmax, _ = U.predict(logits)
    assert pred_argmax.tolist() == [[2, 2]]


def test_decoders_read_the_gripper_by_argmax(model: DVLA) -> None:
    gripper = model.action_tokenizer.space.gripper_index
    d = model.config.action_dim
    positions = make_decoder("pipelined", model)._mean_positions  # block decoders: mean by default
    assert gripper is not None and positions.shape == (model.config.horizon * d,)
    assert not bool(positions[gripper::d].any()) and int(positions.sum()) == model.config.horizon * (d - 1)
    assert make_decoder("pipelined", model, readout="argmax")._mean_positions is None
    assert torch.equal(make_decoder("bidirectional", model)._mean_positions, positions)  # mean everywhere now
    assert make_decoder("bidirectional", model, readout="argmax")._mean_positions is None
    # both readouts decode complete chunks; argmax and mean differ only where the distribution is not peaked
    for readout in ("mean", "argmax"):
        out = make_decoder("bidirectional", model, readout=readout).decode(_batch(model))
        assert out.tokens.shape == (1, model.config.horizon, model.config.action_dim)


def test_fast_backbone_matches_transformers_full_and_cached(model: DVLA) -> None:
    from fast_dvla_ros.core.fast_backbone import FastQwen2

    fast = FastQwen2(model.backbone, model.seq_len)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, model.seq_len, model.config.hidden_size, generator=g)
    P = model.prefix_len
    with torch.inference_mode():
        for kind in ("bidirectional", "block_causal"):
            mask = model.attention_mask(kind)
            ref = model.run_backbone(x, mask, 0, None)
            assert torch.allclose(fast(x, mask, 0, None), ref, atol=1e-5), kind
        mask = model.attention_mask("block_causal")
        cache = fast.new_cache(2, model.seq_len)
        fast(x[:, :P], mask[:P, :P], 0, cache)
        out = fast(x[:, P : P + 24], mask[P : P + 24, : P + 24], P, cache)
        assert torch.allclose(out, ref[:, P : P + 24], atol=1e-5)
        cache.crop(-16)  # drop two blocks, run them again: same result (static buffers overwritten)
        again = fast(x[:, P + 8 : P + 24], mask[P + 8 : P + 24, : P + 24], P + 8, cache)
        assert torch.allclose(again, ref[:, P + 8 : P + 24], atol=1e-5)
        with pytest.raises(RuntimeError):
            fast(x[:, :8], mask[:8, :8], 0, cache)  # not where the cache ends


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_fast_and_transformers_backends_decode_the_same_tokens(model: DVLA, name: str) -> None:
    b = _batch(model, 2, seed=4)
    fast = make_decoder(name, model, backend="fast")
    ref = make_decoder(name, model, backend="transformers")
    assert fast.backend == "fast" and ref.backend == "transformers"
    out_fast, out_ref = fast.decode(b), ref.decode(b)
    assert torch.equal(out_fast.tokens, out_ref.tokens)
    assert out_fast.stats.forward_passes == out_ref.stats.forward_passes


@pytest.mark.parametrize("backend", ["fast", "transformers"])
def test_prefix_riding_in_the_first_forward_equals_a_prefix_only_pass(model: DVLA, backend: str) -> None:
    """The block decoders' first forward runs prefix + first window together; its action hidden states
    and the prefix KV left in the cache must equal those of a prefix-only pass followed by the window."""
    b = _batch(model, 2, seed=5)
    dec = PipelinedDecoder(model, backend=backend)
    P, D = dec.P, dec.D
    full = model.attention_mask("block_causal")
    bins = torch.full((2, dec.N), MASKED_BIN, dtype=torch.long)
    bins[:, :3] = 7  # a partly committed first block
    with torch.inference_mode():
        prefix = model.embed_prefix(b.images, b.instruction_ids, b.proprio)
        fused_cache = dec._new_cache(b)
        fused = dec._forward_block_window(prefix, bins, 0, 2 * D, full, fused_cache)
        dec._truncate(fused_cache, P + D)  # keep the first block's KV too, as a decoder does once it is final
        _, split_cache = dec._encode_prefix(b, "block_causal")
        split = dec._forward(model.embed_actions(bins[:, : 2 * D], 0), full[P : P + 2 * D, : P + 2 * D], P, split_cache)
        dec._truncate(split_cache, P + D)
        # the next window against either cache gives the same hidden states (the cached KV agree)
        after_fused = dec._forward_block_window(prefix, bins, D, 3 * D, full, fused_cache)
        after_split = dec._forward_block_window(prefix, bins, D, 3 * D, full, split_cache)
    assert fused.shape == split.shape == (2, 2 * D, model.config.hidden_size)
    assert torch.allclose(fused, split, atol=1e-5)
    assert torch.allclose(after_fused, after_split, atol=1e-5)
    with pytest.raises(RuntimeError, match="first forward"):
        dec._forward_block_window(prefix, bins, D, 2 * D, full, dec._new_cache(b))


@pytest.mark.parametrize("prefix_sees_actions", [False, True])
def test_prefix_cache_is_exact_when_the_prefix_does_not_attend_to_actions(prefix_sees_actions: bool) -> None:
    """With ``prefix_sees_actions=False`` the prefix KV cannot change as actions are unmasked, so the
    prefix-cached decoder commits exactly what the full-forward baseline commits; with full attention
    it is the Fast-dLLM approximation and the chunks differ."""
    torch.manual_seed(0)
    cfg = DVLAConfig.preset("tiny", attention="bidirectional", prefix_sees_actions=prefix_sees_actions)
    model = DVLA(cfg).eval()
    b = _batch(model, 2)
    with torch.inference_mode():
        full = make_decoder("bidirectional", model, tokens_per_step=4).decode(b)
        cached = make_decoder("prefix_cache", model, tokens_per_step=4).decode(b)
        hidden = [
            model.run_backbone(torch.cat([model.embed_prefix(b.images, b.instruction_ids, b.proprio),
                                          model.embed_actions(bins)], dim=1), model.attention_mask("bidirectional"), 0)
            for bins in (torch.full((2, 64), MASKED_BIN), torch.randint(0, 256, (2, 64)))
        ]
    prefix_moved = not torch.allclose(hidden[0][:, : model.prefix_len], hidden[1][:, : model.prefix_len], atol=1e-5)
    assert prefix_moved == prefix_sees_actions
    assert torch.equal(full.tokens, cached.tokens) == (not prefix_sees_actions)
