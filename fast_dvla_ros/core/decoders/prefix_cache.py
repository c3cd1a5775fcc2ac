"""Bidirectional decoding with an approximate prefix KV cache (the Fast-dLLM row of Fast-dVLA's table 1)."""

from __future__ import annotations

from typing import Any

import torch

from fast_dvla_ros.core.decoder_options import PrefixCacheOptions
from fast_dvla_ros.core.decoders import unmasking as U
from fast_dvla_ros.core.decoders.base import Decoder, ObservationBatch
from fast_dvla_ros.core.model import DVLA


class PrefixCacheDecoder(Decoder):
    """Prefix KV computed once per chunk, then every step runs only the H*D action tokens.

    Approximation (deliberate, as in Fast-dLLM): in the bidirectional model the prefix tokens
    also attend to the action tokens, so their keys/values change as actions are unmasked. Here
    the prefix is encoded once attending only to itself and reused for all steps; the action
    tokens still attend bidirectionally to each other and to the whole prefix. The error this
    introduces is the price of the speed-up (the paper reports a small success drop).

    Unmasking: every masked token with confidence >= ``tau_conf``, and at least one per step
    (the most confident), so decoding always terminates; or ``tokens_per_step`` per step.
    """

    name = "prefix_cache"
    Options = PrefixCacheOptions
    attention = "bidirectional"

    def __init__(self, model: DVLA, options: PrefixCacheOptions | None = None, **kwargs: Any) -> None:
        super().__init__(model, options, **kwargs)
        self.tau_conf = self.options.tau_conf

    def _decode(self, batch: ObservationBatch) -> torch.Tensor:
        model = self.model
        _, cache = self._encode_prefix(batch, self.attention)
        mask = model.attention_mask(self.attention)[self.P :, :]
        bins = self._empty_bins(batch)
        for _ in range(self.max_steps):
            masked = bins < 0
            if not masked.any():
                break
            hidden = self._forward(model.embed_actions(bins), mask, self.P, cache)
            self._truncate(cache, self.P)
            pred, conf = self._predict(model.action_logits(hidden))
            if self.tokens_per_step is not None:
                chosen = U.select_top_k(conf, masked, self.tokens_per_step)
            else:
                chosen = U.select_threshold(conf, masked, self.tau_conf, at_least_one=True)
            self._commit(bins, 0, self.N, chosen, pred)
        return bins
