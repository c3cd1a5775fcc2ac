"""Mask schedules of the training stages (pure functions)."""

from __future__ import annotations

import pytest
import torch

from fast_dvla_ros.train.noise import block_monotone_mask, block_ratios, uniform_ratio_mask


def test_block_ratios_are_non_decreasing_and_capped() -> None:
    g = torch.Generator().manual_seed(0)
    r = block_ratios(4096, 8, g, first=(0.2, 0.7), max_increment=0.2, cap=0.7)
    assert r.shape == (4096, 8)
    assert torch.all(r[:, 1:] >= r[:, :-1] - 1e-7)
    assert torch.all(r[:, 0] >= 0.2) and torch.all(r[:, 0] <= 0.7)
    assert torch.all(r <= 0.7 + 1e-7)
    # the increments are real: later blocks are on average noisier than the first
    assert (r[:, -1] - r[:, 0]).mean() > 0.05


def test_block_monotone_mask_follows_ratios_on_average() -> None:
    g = torch.Generator().manual_seed(1)
    m = block_monotone_mask(20000, 8, 8, g, full_tail_prob=0.0)
    per_block = m.float().mean(dim=(0, 2))
    assert torch.all(per_block[1:] >= per_block[:-1] - 0.01)
    assert 0.35 < per_block[0] < 0.55  # E[U(0.2, 0.7)] = 0.45
    assert per_block[-1] <= 0.71


def test_full_tail_masks_whole_trailing_blocks() -> None:
    g = torch.Generator().manual_seed(2)
    m = block_monotone_mask(4000, 8, 8, g, full_tail_prob=1.0)
    full_blocks = m.all(dim=2)
    # every sample ends in a fully masked suffix starting uniformly in 0..7 (mean length 4.5 of 8
    # blocks), plus the odd block that a 0.7 ratio masks fully by chance
    assert full_blocks[:, -1].all()
    assert 0.5 < full_blocks.float().mean() < 0.65
    assert full_blocks[:, 0].float().mean() > 0.1  # the whole chunk masked, as the decoder starts


def test_every_sample_has_a_masked_token() -> None:
    g = torch.Generator().manual_seed(3)
    m = uniform_ratio_mask(5000, 2, 2, g, min_ratio=0.0)
    assert m.reshape(5000, -1).any(dim=1).all()
    ratios = m.float().mean(dim=(1, 2))
    assert 0.4 < ratios.mean() < 0.6


def test_action_prefix_leaves_leading_blocks_clean_and_something_masked() -> None:
    from fast_dvla_ros.train.noise import with_action_prefix

    g = torch.Generator().manual_seed(0)
    base = torch.ones(4000, 8, 8, dtype=torch.bool)
    out = with_action_prefix(base, 0.5, 5, g)
    clean_blocks = (~out.any(dim=2)).long().cumprod(dim=1).sum(dim=1)  # leading all-visible blocks per sample
    assert 0.45 < float((clean_blocks > 0).float().mean()) < 0.55
    assert int(clean_blocks.max()) == 5 and set(clean_blocks.tolist()) == set(range(6))
    assert bool(out.reshape(4000, -1).any(dim=1).all())
    sparse = torch.zeros(50, 8, 8, dtype=torch.bool)
    sparse[:, 0, 0] = True  # the only masked token sits in the prefix: one moves to the last block
    moved = with_action_prefix(sparse, 1.0, 3, g)
    assert bool(moved.reshape(50, -1).any(dim=1).all()) and not bool(moved[:, 0].any())
    with pytest.raises(ValueError):
        with_action_prefix(base, 0.5, 8, g)
