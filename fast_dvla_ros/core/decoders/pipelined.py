"""Fast-dVLA pipelined block decoding (Algorithm 1 of the paper, after D2F)."""

from __future__ import annotations

from typing import Any

import torch

from fast_dvla_ros.core.decoder_options import PipelinedOptions
from fast_dvla_ros.core.decoders import unmasking as U
from fast_dvla_ros.core.decoders.base import Decoder, ObservationBatch
from fast_dvla_ros.core.model import DVLA


class PipelinedDecoder(Decoder):
    """Several blocks in flight over a block-causal model with an exact KV cache of finished blocks.

    Per step, for each batch row:
      1. if the last added block's decoded ratio > tau_add (or it is complete) and blocks remain,
         add the next block, all [MASK], as *semi-activated*;
      2. block i becomes *fully activated* once block i-1's ratio > tau_act (or it is complete);
         block 0 is fully active from the start;
      3. ONE forward over the active window (block-causal inside it, cached KV before it);
      4. fully activated blocks commit masked tokens with conf >= min(tau_conf, k-th largest),
         k = max(1, floor(remaining / n)); semi-activated blocks commit conf >= tau_conf (maybe none).
         With the fixed ``tokens_per_step`` schedule, fully activated blocks commit exactly that many
         and semi-activated blocks none (a fixed schedule has no confidence to go by).
    Only a contiguous run of blocks that were complete *before* the forward (so their KV came
    from final tokens) is kept in the cache, never an active block. Rows of a batch share one
    window (the union); a block not yet added for a row is all [MASK] and invisible to earlier
    blocks under the block-causal mask, so it changes nothing for that row.
    """

    name = "pipelined"
    Options = PipelinedOptions

    def __init__(self, model: DVLA, options: PipelinedOptions | None = None, **kwargs: Any) -> None:
        super().__init__(model, options, **kwargs)
        o = self.options
        self.tau_conf, self.n, self.tau_add, self.tau_act = o.tau_conf, o.n, o.tau_add, o.tau_act
        # False = recompute prefix + all blocks every step (slow). Only for verifying that the cache is exact.
        self.use_kv_cache = o.use_kv_cache

    def _commit_rule(self, conf: torch.Tensor, masked: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
        """conf/masked [B, blocks, D], full [B, blocks] -> chosen [B, blocks, D]; each block on its own."""
        if self.tokens_per_step is not None:
            return U.select_top_k(conf, masked, self.tokens_per_step) & full[..., None]
        full_pick = U.select_pipelined_full(conf, masked, self.tau_conf, self.n)
        semi_pick = masked & (conf >= self.tau_conf)
        return torch.where(full[..., None], full_pick, semi_pick)

    def _decode(self, batch: ObservationBatch) -> torch.Tensor:
        model, P, D, H = self.model, self.P, self.D, self.H
        B = batch.batch_size
        dev = model.device
        prefix = model.embed_prefix(batch.images, batch.instruction_ids, batch.proprio)
        # filled by the first forward, prefix and first block together (none when verifying without cache)
        cache = self._new_cache(batch) if self.use_kv_cache else None
        full_mask = model.attention_mask("block_causal")
        bins = self._empty_bins(batch)
        # An action prefix's d blocks are complete from the start: the pipeline starts at block d, the known
        # blocks ride in the first forward and, being complete before it, their KV is kept in the cache.
        first = self._prefix_blocks(batch)
        added = torch.full((B,), first + 1, dtype=torch.long, device=dev)  # blocks [0, added) are active or done
        full = torch.zeros(B, H, dtype=torch.bool, device=dev)
        full[:, : first + 1] = True
        rows = torch.arange(B, device=dev)
        cached = 0  # action tokens whose (exact) KV is in the cache
        for _ in range(self.max_steps):
            ratio = (bins.view(B, H, D) >= 0).float().mean(-1)  # [B, H]
            done = ratio >= 1.0
            if bool(done.all()):
                break
            # 1. add one block per row when its last block is far enough along
            last = ratio[rows, added - 1]
            grow = (added < H) & ((last > self.tau_add) | (last >= 1.0))
            added = added + grow.long()
            # 2. activation: block i full once block i-1 passed tau_act (or finished)
            prev_ok = (ratio[:, :-1] > self.tau_act) | done[:, :-1]
            in_flight = torch.arange(H, device=dev)[None] < added[:, None]
            full[:, 1:] |= prev_ok & in_flight[:, 1:]
            # 3. one forward over the window [first uncached block, furthest added block)
            start = cached
            end = int(added.max()) * D
            if self.use_kv_cache:
                hidden = self._forward_block_window(prefix, bins, start, end, full_mask, cache)
            else:
                embeds = torch.cat([prefix, model.embed_actions(bins[:, :end])], dim=1)
                hidden = self._forward(embeds, full_mask[: P + end, : P + end], 0, None)[:, P + start :]
            # keep the KV of leading blocks that were complete before this forward, in every row
            lead = torch.cumprod(done.long(), dim=1).sum(dim=1)  # leading complete blocks per row
            keep = max(int(lead.min()) * D, start)
            if self.use_kv_cache:
                self._truncate(cache, P + keep)
            cached = keep
            pred, conf = self._predict(model.action_logits(hidden))
            # 4. commit per block, per row: every block of the window at once (rules act on each block's
            # own D tokens), not a Python loop per block: at one forward per block the bookkeeping costs
            # as much as a fifth of the chunk
            blocks = (end - start) // D
            ids = torch.arange(start // D, end // D, device=dev)
            masked = (bins[:, start:end].view(B, blocks, D) < 0) & (ids[None] < added[:, None])[..., None]
            chosen = self._commit_rule(conf.view(B, blocks, D), masked, full[:, start // D : end // D])
            self._commit(bins, start, end, chosen.view(B, -1), pred)
        return bins
