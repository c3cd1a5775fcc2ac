"""Which masked tokens to commit in a step. All rules work row by row on [B, N] tensors.

No flat ``nonzero()`` anywhere: selections are boolean masks built from per-row ranks, so rows
with different numbers of masked tokens never mix (a documented batch>1 pitfall).
"""

from __future__ import annotations

import math

import torch


def predict(
    logits: torch.Tensor,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
    mean_positions: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [B, N, V] -> (predicted bins [B, N], confidence = probability of the most likely bin [B, N]).

    ``mean_positions`` (bool [N] on the logits' device, greedy decoding only): those positions read out
    the bin nearest the predictive *mean* instead of the most likely bin. Action bins are ordinal (a
    discretised joint motion): a wide or skewed distribution over them has its mode away from its mean, and
    a decoder that commits a chunk in time order conditions every later step on that choice. Measured
    (bench/RESULTS.md section 1): the block-causal students picked 0/50 with argmax and 38-42% with the
    mean. Confidence stays the mode's probability, so the commit schedules see the same certainty signal
    either way. Bimodal dimensions (the gripper: open or closed) must stay argmax.
    """
    probs = torch.softmax(logits.float(), dim=-1)
    if temperature > 0:
        u = torch.rand(probs.shape, generator=generator, device=probs.device).clamp_(1e-12, 1 - 1e-12)
        gumbel = -torch.log(-torch.log(u))
        pred = (torch.log(probs.clamp_min(1e-30)) / temperature + gumbel).argmax(-1)
        conf = probs.gather(-1, pred.unsqueeze(-1)).squeeze(-1)
        return pred, conf
    conf, pred = probs.max(dim=-1)
    if mean_positions is not None:
        bins = torch.arange(probs.shape[-1], device=probs.device, dtype=probs.dtype)
        mean = (probs * bins).sum(-1).round().long().clamp_(0, probs.shape[-1] - 1)
        pred = torch.where(mean_positions, mean, pred)
    return pred, conf


def _rank_among_masked(conf: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Per-row rank (0 = most confident) of each masked position; unmasked positions rank last."""
    score = conf.masked_fill(~masked, float("-inf"))
    order = score.argsort(dim=-1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(order.shape[-1], device=order.device).expand_as(order))
    return rank


def select_top_k(conf: torch.Tensor, masked: torch.Tensor, k: torch.Tensor | int) -> torch.Tensor:
    """The k most confident masked positions of each row (fewer if fewer are masked).

    Rows are the last dimension: conf/masked [..., N], k an int or a tensor of shape [...] (one k per row).
    """
    k_t = torch.as_tensor(k, device=conf.device).reshape(conf.shape[:-1]).unsqueeze(-1) if not isinstance(k, int) else k
    return masked & (_rank_among_masked(conf, masked) < k_t)


def select_threshold(conf: torch.Tensor, masked: torch.Tensor, tau: float, at_least_one: bool) -> torch.Tensor:
    """Masked positions with confidence >= tau; with ``at_least_one`` also each row's most confident one."""
    chosen = masked & (conf >= tau)
    if at_least_one:
        chosen |= select_top_k(conf, masked, 1)
    return chosen


def select_pipelined_full(conf: torch.Tensor, masked: torch.Tensor, tau: float, n: int) -> torch.Tensor:
    """Fast-dVLA rule for a fully activated block: commit conf >= min(tau, k-th largest), k = max(1, rem // n).

    Implemented as (top-k) OR (conf >= tau), which equals the min-threshold rule up to ties at the
    k-th value and always commits >= 1 token when any is masked (k is clamped to 1).
    """
    remaining = masked.sum(dim=-1)
    k = torch.clamp(remaining // n, min=1)
    return select_top_k(conf, masked, k) | (masked & (conf >= tau))


def cosine_schedule(total: int, steps: int) -> list[int]:
    """MaskGIT cosine schedule: tokens committed at each of ``steps`` steps (each >= 1, sum = total)."""
    if steps < 1 or total < 1:
        raise ValueError("steps and total must be >= 1")
    steps = min(steps, total)
    remaining = [round(total * math.cos(math.pi / 2 * (t + 1) / steps)) for t in range(steps)]
    counts, left = [], total
    for t in range(steps):
        target = 0 if t == steps - 1 else min(remaining[t], left - 1)
        commit = max(1, left - target)
        commit = min(commit, left - (steps - t - 1))  # leave >= 1 token for each later step
        counts.append(commit)
        left -= commit
    counts[-1] += left
    return counts
