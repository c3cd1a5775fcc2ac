"""Mask ("noise") schedules for masked-diffusion training of action chunks.

Two schedules, one per model kind:

* ``uniform_ratio_mask`` — the bidirectional teacher's masked-diffusion SFT: one mask ratio
  per sample, drawn uniformly, applied to every action token of the chunk. The teacher is later
  decoded by parallel unmasking over the whole chunk, so it must see all ratios everywhere.
* ``block_monotone_mask`` — the block-causal student's schedule (Fast-dVLA after D2F, diffusion
  forcing): every block gets its own ratio, non-decreasing along the chunk (first block's ratio
  from U[r_lo, r_hi], each later block adds a random increment, capped). At inference the
  pipelined decoder holds several blocks in flight with exactly this shape: early blocks almost
  decoded, later ones still mostly masked.

Both return a boolean mask [B, H, D] with at least one masked token per sample (an all-visible
sample carries no loss).

``with_action_prefix`` (latency-compensated decoding, core/decoders/base.py): some samples get their first k
blocks clean, k up to the longest action prefix the runtime will commit, so the student learns to continue
a given start of the chunk; half of those have every later block fully masked, the state of the first
forward after the prefix.

One addition to the paper's student schedule: with probability ``full_tail_prob`` a sample's
blocks after a random point are fully masked. The pipelined decoder appends every new block
all-masked, a state the capped (<= 0.7) ratios never show the student.
"""

from __future__ import annotations

import torch


def _ensure_one_masked(mask: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    flat = mask.reshape(mask.shape[0], -1)
    empty = ~flat.any(dim=1)
    if empty.any():
        idx = torch.randint(0, flat.shape[1], (int(empty.sum()),), generator=generator, device=flat.device)
        flat[empty.nonzero(as_tuple=True)[0], idx] = True
    return flat.reshape(mask.shape)


def uniform_ratio_mask(
    batch: int, horizon: int, dim: int, generator: torch.Generator | None = None, min_ratio: float = 0.05
) -> torch.Tensor:
    """One ratio r ~ U[min_ratio, 1] per sample; each token is masked with probability r."""
    ratio = min_ratio + (1.0 - min_ratio) * torch.rand(batch, 1, 1, generator=generator)
    mask = torch.rand(batch, horizon, dim, generator=generator) < ratio
    return _ensure_one_masked(mask, generator)


def block_ratios(
    batch: int,
    horizon: int,
    generator: torch.Generator | None = None,
    first: tuple[float, float] = (0.2, 0.7),
    max_increment: float = 0.2,
    cap: float = 0.7,
) -> torch.Tensor:
    """Non-decreasing per-block mask ratios [B, H]: r_0 ~ U[first], r_{i+1} = min(cap, r_i + U[0, max_increment])."""
    r0 = first[0] + (first[1] - first[0]) * torch.rand(batch, 1, generator=generator)
    inc = max_increment * torch.rand(batch, horizon - 1, generator=generator)
    ratios = torch.cat([r0, r0 + inc.cumsum(dim=1)], dim=1)
    # A first ratio above the cap stays as drawn (capping it down would break monotonicity only if
    # later blocks were lower; clamping all to max(cap, r0) keeps the sequence non-decreasing).
    return torch.minimum(ratios, torch.maximum(torch.full_like(r0, cap), r0))


def block_monotone_mask(
    batch: int,
    horizon: int,
    dim: int,
    generator: torch.Generator | None = None,
    first: tuple[float, float] = (0.2, 0.7),
    max_increment: float = 0.2,
    cap: float = 0.7,
    full_tail_prob: float = 0.2,
) -> torch.Tensor:
    """Mask [B, H, D] whose per-block ratios are non-decreasing along the chunk (see module doc)."""
    ratios = block_ratios(batch, horizon, generator, first, max_increment, cap)
    if full_tail_prob > 0:
        tail = torch.rand(batch, generator=generator) < full_tail_prob
        start = torch.randint(0, horizon, (batch,), generator=generator)
        blocks = torch.arange(horizon)[None, :]
        ratios = torch.where(tail[:, None] & (blocks >= start[:, None]), torch.ones_like(ratios), ratios)
    mask = torch.rand(batch, horizon, dim, generator=generator) < ratios[:, :, None]
    return _ensure_one_masked(mask, generator)


def with_action_prefix(
    mask: torch.Tensor, prob: float, max_steps: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``mask`` [B, H, D] with, in a ``prob`` share of the samples, the first k ~ U{1..max_steps} blocks
    visible (clean), and in half of those every later block masked; at least one token stays masked."""
    b, h, _ = mask.shape
    if prob <= 0 or max_steps < 1:
        return mask
    if max_steps >= h:
        raise ValueError(f"max_steps must leave a block to predict: {max_steps} >= horizon {h}")
    rows = torch.rand(b, generator=generator) < prob
    k = torch.randint(1, max_steps + 1, (b,), generator=generator)
    blocks = torch.arange(h)[None, :]
    clean = rows[:, None] & (blocks < k[:, None])
    masked_tail = rows & (torch.rand(b, generator=generator) < 0.5)
    out = (mask & ~clean[:, :, None]) | (masked_tail[:, None] & (blocks >= k[:, None]))[:, :, None]
    empty = ~out.reshape(b, -1).any(dim=1)
    if empty.any():  # every block after the prefix came out clean: mask one token of the last block
        idx = torch.randint(0, mask.shape[2], (int(empty.sum()),), generator=generator)
        out[empty.nonzero(as_tuple=True)[0], h - 1, idx] = True
    return out
