"""Bidirectional masked-diffusion decoding (DD-VLA / MaskGIT baseline: no KV reuse)."""

from __future__ import annotations

from typing import Any

import torch

from fast_dvla_ros.core.decoder_options import BidirectionalOptions
from fast_dvla_ros.core.decoders import unmasking as U
from fast_dvla_ros.core.decoders.base import Decoder, ObservationBatch
from fast_dvla_ros.core.model import DVLA


class BidirectionalDecoder(Decoder):
    """All action tokens start masked; each of ``steps`` refinement steps re-runs the backbone over
    prefix + all actions with full bidirectional attention and commits the most confident masked
    tokens, as many as the cosine schedule says (or ``tokens_per_step``).

    The image/instruction/proprio *embeddings* are computed once per chunk (they do not depend on
    the actions); every backbone forward still covers the full prefix, which is the cost this
    baseline pays and the cached decoders avoid.
    """

    name = "bidirectional"
    Options = BidirectionalOptions
    attention = "bidirectional"

    def __init__(self, model: DVLA, options: BidirectionalOptions | None = None, **kwargs: Any) -> None:
        super().__init__(model, options, **kwargs)
        self.steps = self.options.steps

    def schedule(self, known: int = 0) -> list[int]:
        """Tokens to commit per step when ``known`` of the chunk's tokens are given (an action prefix)."""
        total = self.N - known
        if self.tokens_per_step is not None:
            k = self.tokens_per_step
            return [min(k, total - i) for i in range(0, total, k)]
        return U.cosine_schedule(total, self.steps)

    def _decode(self, batch: ObservationBatch) -> torch.Tensor:
        model = self.model
        prefix = model.embed_prefix(batch.images, batch.instruction_ids, batch.proprio)
        mask = model.attention_mask("bidirectional")
        bins = self._empty_bins(batch)
        for count in self.schedule(batch.prefix_tokens):
            embeds = torch.cat([prefix, model.embed_actions(bins)], dim=1)
            hidden = self._forward(embeds, mask, 0, None)
            pred, conf = self._predict(model.action_logits(hidden[:, self.P :]))
            masked = bins < 0
            self._commit(bins, 0, self.N, U.select_top_k(conf, masked, count), pred)
        return bins
