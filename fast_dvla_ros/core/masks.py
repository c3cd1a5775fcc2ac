"""Attention masks for the DVLA sequence: bidirectional (optionally prefix-isolated) and block-causal.

Blocks: the prefix ([image][instruction][proprio]) is block 0; action block h is block h+1.
Block-causal: a query in block i sees every key in blocks <= i (itself bidirectionally).
Masks are pure functions of the layout, so callers build one per shape and slice it per step
(rebuilding a mask every decode step is measurable overhead on CPU).

Convention: bool masks are True = may attend. ``to_additive`` turns them into the float masks the
transformers backbone takes as a 4D ``attention_mask`` (0 = attend, dtype-min = blocked).
"""

from __future__ import annotations

import torch


def block_ids(prefix_len: int, num_blocks: int, block_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Block index of each position: prefix -> 0, action block h -> h + 1. Shape [L]."""
    if prefix_len < 0 or num_blocks < 0 or block_size <= 0:
        raise ValueError("prefix_len, num_blocks must be >= 0 and block_size > 0")
    pre = torch.zeros(prefix_len, dtype=torch.long, device=device)
    act = torch.arange(num_blocks, device=device).repeat_interleave(block_size) + 1
    return torch.cat([pre, act])


def bidirectional_mask(seq_len: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Every position sees every position. Bool [L, L]."""
    return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device)


def prefix_isolated_bidirectional_mask(
    prefix_len: int, seq_len: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Bidirectional except that the prefix sees only the prefix (prefix-LM). Bool [L, L]."""
    mask = bidirectional_mask(seq_len, device)
    mask[:prefix_len, prefix_len:] = False
    return mask


def block_causal_mask(
    prefix_len: int, num_blocks: int, block_size: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Query in block i sees keys in blocks <= i. Bool [L, L] with L = prefix_len + num_blocks*block_size."""
    ids = block_ids(prefix_len, num_blocks, block_size, device)
    return ids[:, None] >= ids[None, :]


def to_additive(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Bool mask (True = attend) -> float additive mask (0 / finfo.min) of the same shape."""
    if mask.dtype != torch.bool:
        raise TypeError("to_additive expects a bool mask")
    out = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return out.masked_fill_(~mask, torch.finfo(dtype).min)


def as_4d(mask: torch.Tensor, batch_size: int) -> torch.Tensor:
    """[Q, K] -> [B, 1, Q, K] view (expand, no copy) as the backbone expects."""
    return mask[None, None].expand(batch_size, 1, *mask.shape)
