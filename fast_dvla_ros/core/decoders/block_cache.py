"""Block-causal sequential block decoding with an exact KV cache (the Block Diffusion row)."""

from __future__ import annotations

from typing import Any

import torch

from fast_dvla_ros.core.decoder_options import BlockCacheOptions
from fast_dvla_ros.core.decoders import unmasking as U
from fast_dvla_ros.core.decoders.base import Decoder, ObservationBatch
from fast_dvla_ros.core.model import DVLA


class BlockCacheDecoder(Decoder):
    """Prefix encoded once; blocks decoded one after another with confidence-threshold unmasking.

    Caching a finished block exactly: the KV produced in the step that *finishes* a block was
    computed while some of its tokens were still [MASK], so keeping it would be approximate.
    Instead the finished block (now with its final tokens) rides along in the first forward of
    the next block; that forward's KV for the finished block is exact (final tokens, attending to
    the exact cache before it), and it is kept while the active block's KV is cropped away. This
    costs no extra forward, and the prefix rides along in the first step's forward: forwards = decode steps.
    """

    name = "block_cache"
    Options = BlockCacheOptions

    def __init__(self, model: DVLA, options: BlockCacheOptions | None = None, **kwargs: Any) -> None:
        super().__init__(model, options, **kwargs)
        self.tau_conf = self.options.tau_conf

    def _select(self, conf: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        if self.tokens_per_step is not None:
            return U.select_top_k(conf, masked, self.tokens_per_step)
        return U.select_threshold(conf, masked, self.tau_conf, at_least_one=True)

    def _decode(self, batch: ObservationBatch) -> torch.Tensor:
        model, P, D = self.model, self.P, self.D
        prefix = model.embed_prefix(batch.images, batch.instruction_ids, batch.proprio)
        cache = self._new_cache(batch)  # filled by the first forward, prefix and first block together
        full_mask = model.attention_mask("block_causal")
        bins = self._empty_bins(batch)
        steps = 0
        # an action prefix (known leading blocks) rides along in the first forward with the observation
        # prefix: its KV is exact (final tokens) and kept by the first crop below
        for h in range(self._prefix_blocks(batch), self.H):
            lo, hi = h * D, (h + 1) * D
            while bool((bins[:, lo:hi] < 0).any()):
                steps += 1
                if steps > self.max_steps:
                    raise RuntimeError("block_cache decoder made no progress")
                start = max(cache.get_seq_length() - P, 0)  # action index where the window begins
                hidden = self._forward_block_window(prefix, bins, start, hi, full_mask, cache)
                self._truncate(cache, P + lo)  # keep finished blocks (exact), drop the active one
                pred, conf = self._predict(model.action_logits(hidden[:, lo - start :]))
                self._commit(bins, lo, hi, self._select(conf, bins[:, lo:hi] < 0), pred)
        return bins
