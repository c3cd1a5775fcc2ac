"""Shared decoder machinery: the observation batch, outputs, statistics and the ``Decoder`` base class.

Every decoder implements ``_decode(batch) -> bins [B, H*D]``; the base class times it, counts
backbone forwards, checks that every action token was committed exactly once, and converts bins
to actions. Decoding runs under ``torch.inference_mode``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import DynamicCache

from fast_dvla_ros.core.config import Attention
from fast_dvla_ros.core.decoder_options import DecoderOptions, build_options
from fast_dvla_ros.core.decoders import unmasking as U
from fast_dvla_ros.core.fast_backbone import FastQwen2, StaticKVCache
from fast_dvla_ros.core.model import DVLA, MASKED_BIN

log = logging.getLogger(__name__)

KVCache = DynamicCache | StaticKVCache


@dataclass
class ObservationBatch:
    """Model-ready inputs: images [B,3,S,S] (uint8 or float 0..1), instruction ids [B,T], raw proprio [B,P].

    ``prefix_bins`` (optional, int64 [B, d*D], bins in [0, num_bins)): the first d steps of the chunk are
    known (latency-compensated decoding: the steps the executor will run while this chunk is decoded).
    Every decoder commits them before decoding; the block decoders run them through the first forward
    like the observation prefix, so their KV is cached and only the H - d remaining blocks are decoded.
    """

    images: torch.Tensor
    instruction_ids: torch.Tensor
    proprio: torch.Tensor
    prefix_bins: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return int(self.images.shape[0])

    @property
    def prefix_tokens(self) -> int:
        return 0 if self.prefix_bins is None else int(self.prefix_bins.shape[1])


@dataclass
class DecodeStats:
    """Cost of one decode call (whole batch)."""

    latency_s: float
    forward_passes: int
    tokens_committed: int
    tokens_per_forward: float
    tokens_per_second: float


@dataclass
class DecodeOutput:
    tokens: torch.Tensor  # int64 bins [B, H, D]
    actions: np.ndarray  # float64 [B, H, D] in action units
    stats: DecodeStats


class Decoder:
    """Base class. ``tokens_per_step`` (if set) replaces the confidence rule by a fixed schedule:
    exactly that many tokens per step per decoding unit (the whole chunk for full-sequence
    decoders, each committing block for block decoders), so benchmarks on random weights compare
    equal schedules.

    ``temperature`` 0 = greedy (argmax); > 0 samples with a generator seeded by ``seed`` at
    construction, so a fixed seed gives a fixed sequence of outputs.

    ``readout`` (greedy decoding): "mean" commits, for every action dimension except the gripper,
    the bin nearest the predictive mean; "argmax" the most likely bin everywhere (see
    ``unmasking.predict`` for why the mode is a biased estimate of an ordinal action bin). None = the
    decoder's ``default_readout``, "mean" for every decoder since 2026-11-30, chosen by closed-loop
    measurement (bench/RESULTS.md section 1): the block decoders picked nothing with "argmax" (0/50 ->
    38-42% for the first distilled student), and the round-1 teacher picked 38% (50 episodes) with "mean"
    against 1/20 with "argmax" (the earlier teacher, trained from random weights, was the exception:
    22% vs 10%).

    ``backend``: "fast" runs the backbone through ``FastQwen2`` (same maths, fused projections,
    static KV cache; the backbone's weights are copied when the decoder is built, so build the
    decoder after training/loading), "transformers" through the transformers module with a
    ``DynamicCache``. "fast" falls back to "transformers" for backbones it does not support.
    """

    name = "base"
    Options: type[DecoderOptions] = DecoderOptions  # the decoder's options, declared once (core/decoder_options.py)
    attention: Attention = "block_causal"  # the mask this decoder runs the model with
    default_readout = "mean"  # see the class docstring

    def __init__(self, model: DVLA, options: DecoderOptions | None = None, **kwargs: Any) -> None:
        """Built from ``options`` (an instance of ``Options``) or from keyword arguments naming its fields."""
        if options is None:
            options = build_options(self.Options, kwargs)
        elif kwargs:
            raise TypeError(f"{self.name}: pass either options or keyword arguments, not both")
        if not isinstance(options, self.Options):
            raise TypeError(f"{self.name} takes {self.Options.__name__}, got {type(options).__name__}")
        self.options = options
        self.model = model
        self.tokens_per_step = options.tokens_per_step
        self.temperature = options.temperature
        self.generator = torch.Generator(device=model.device).manual_seed(options.seed)
        self._forwards = 0
        self.commit_counts = torch.zeros(0, dtype=torch.long)
        cfg = model.config
        self.P, self.H, self.D = model.prefix_len, cfg.horizon, cfg.action_dim
        self.N = self.H * self.D
        self.max_steps = self.N + self.H + 4  # every step commits >= 1 token: a hard bound against livelock
        self.readout = readout = self.default_readout if options.readout is None else options.readout
        gripper = model.action_tokenizer.space.gripper_index
        # per chunk position: read out by the predictive mean (ordinal joint motion) or not (gripper);
        # built once on the model's device, None = argmax everywhere
        dims = torch.tensor([readout == "mean" and d != gripper for d in range(self.D)])
        self._mean_positions = dims.repeat(self.H).to(model.device) if bool(dims.any()) else None
        self.runner = (
            FastQwen2(model.backbone, model.seq_len)
            if options.backend == "fast" and FastQwen2.supports(model.backbone)
            else None
        )
        self.backend = "fast" if self.runner is not None else "transformers"
        if model.config.attention != self.attention:
            # allowed (benchmarks on random weights do it), but a trained model decodes best with its own mask
            log.warning(
                "%s decoder uses %s attention but the model was trained with %s",
                self.name, self.attention, model.config.attention,
            )

    # ---- hooks --------------------------------------------------------------------------------
    def _decode(self, batch: ObservationBatch) -> torch.Tensor:
        raise NotImplementedError

    # ---- helpers for subclasses ---------------------------------------------------------------
    def _forward(self, embeds: torch.Tensor, mask: torch.Tensor, start: int, cache: KVCache | None):
        self._forwards += 1
        if self.runner is not None:
            return self.runner(embeds, mask, start, cache)
        return self.model.run_backbone(embeds, mask, start, cache)

    def _predict(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Bins and confidences of a window of action logits [B, n, V]; every decoder's window starts
        at a block boundary, so position i holds action dimension i % D."""
        positions = self._mean_positions
        if positions is not None:
            n = logits.shape[1]
            if n % self.D:
                raise RuntimeError(f"{self.name}: logits window of {n} tokens does not start at a block boundary")
            positions = positions[:n]
        return U.predict(logits, self.temperature, self.generator, positions)

    def _new_cache(self, batch: ObservationBatch) -> KVCache:
        return self.runner.new_cache(batch.batch_size, self.model.seq_len) if self.runner else DynamicCache()

    def _encode_prefix(self, batch: ObservationBatch, kind: Attention) -> tuple[torch.Tensor, KVCache]:
        """Embed the prefix and run it once into a fresh KV cache (prefix attends to itself only)."""
        pre = self.model.embed_prefix(batch.images, batch.instruction_ids, batch.proprio)
        cache = self._new_cache(batch)
        mask = self.model.attention_mask(kind)[: self.P, : self.P]
        self._forward(pre, mask, 0, cache)
        return pre, cache

    def _forward_block_window(
        self, prefix: torch.Tensor, bins: torch.Tensor, start: int, end: int, mask: torch.Tensor, cache: KVCache
    ) -> torch.Tensor:
        """Hidden states of action positions [start, end) of a block-causal model, against ``cache``.

        While the cache is still empty the prefix rides along in the same forward: under the block-causal
        mask the prefix attends only to itself, so its keys/values come out as from a prefix-only pass,
        and a chunk costs one backbone call fewer (what bounds these decoders at small model sizes is the
        number of calls, not the tokens per call; bench/RESULTS.md section 1). ``mask`` is the model's
        full block-causal mask; the caller crops the cache afterwards as before.
        """
        P = self.P
        window = self.model.embed_actions(bins[:, start:end], start)
        if cache.get_seq_length() == 0:
            if start != 0:
                raise RuntimeError(f"{self.name}: the first forward must start at the first action token")
            embeds = torch.cat([prefix, window], dim=1)
            return self._forward(embeds, mask[: P + end, : P + end], 0, cache)[:, P:]
        return self._forward(window, mask[P + start : P + end, : P + end], P + start, cache)

    @staticmethod
    def _truncate(cache: KVCache, length: int) -> None:
        extra = cache.get_seq_length() - length
        if extra < 0:
            raise RuntimeError(f"cache holds {cache.get_seq_length()} < {length} positions")
        if extra:
            cache.crop(-extra)

    def _prefix_blocks(self, batch: ObservationBatch) -> int:
        """Number of leading blocks given by ``batch.prefix_bins`` (checked: whole blocks, at least one left)."""
        n = batch.prefix_tokens
        if n % self.D or not 0 <= n // self.D < self.H:
            raise ValueError(
                f"{self.name}: an action prefix must be whole steps and leave at least one of the {self.H} to "
                f"decode, got {n} tokens ({n / self.D:g} steps)"
            )
        return n // self.D

    def _empty_bins(self, batch: ObservationBatch) -> torch.Tensor:
        """All positions [MASK], except the action prefix's, which count as committed (exactly once)."""
        dev = self.model.device
        self.commit_counts = torch.zeros(batch.batch_size, self.N, dtype=torch.long, device=dev)
        bins = torch.full((batch.batch_size, self.N), MASKED_BIN, dtype=torch.long, device=dev)
        n = self._prefix_blocks(batch) * self.D
        if n:
            known = batch.prefix_bins.to(device=dev, dtype=torch.long)  # type: ignore[union-attr]
            if known.shape[0] != batch.batch_size or bool(((known < 0) | (known >= self.model.config.num_bins)).any()):
                raise ValueError(f"{self.name}: prefix_bins must be [batch, d*D] bins in [0, num_bins)")
            bins[:, :n] = known
            self.commit_counts[:, :n] = 1
        return bins

    def _commit(self, bins: torch.Tensor, lo: int, hi: int, chosen: torch.Tensor, pred: torch.Tensor) -> None:
        """Write ``pred`` into bins[:, lo:hi] where ``chosen``; only masked positions may be chosen."""
        block = bins[:, lo:hi]
        if bool((chosen & (block >= 0)).any()):
            raise RuntimeError(f"{self.name}: tried to overwrite a committed token")
        bins[:, lo:hi] = torch.where(chosen, pred, block)
        self.commit_counts[:, lo:hi] += chosen.long()

    # ---- public -------------------------------------------------------------------------------
    def decode(self, batch: ObservationBatch) -> DecodeOutput:
        self._forwards = 0
        sync = self.model.device.type == "cuda"
        if sync:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.inference_mode():
            bins = self._decode(batch)
        if sync:
            torch.cuda.synchronize()
        latency = time.perf_counter() - t0
        if bins.shape != (batch.batch_size, self.N) or bool((bins < 0).any()):
            raise RuntimeError(f"{self.name}: decode left masked tokens or returned shape {tuple(bins.shape)}")
        if not bool((self.commit_counts == 1).all()):
            raise RuntimeError(f"{self.name}: some action token was not committed exactly once")
        committed = int(bins.numel()) - batch.prefix_tokens * batch.batch_size  # decoded, not given
        stats = DecodeStats(
            latency_s=latency,
            forward_passes=self._forwards,
            tokens_committed=committed,
            tokens_per_forward=committed / max(self._forwards, 1),
            tokens_per_second=committed / max(latency, 1e-9),
        )
        tokens = bins.reshape(-1, self.H, self.D).cpu()
        space = self.model.action_tokenizer.space  # chunk-relative joint deltas -> absolute targets
        actions = space.to_absolute(self.model.action_tokenizer.decode(tokens.numpy()), batch.proprio.cpu().numpy())
        return DecodeOutput(tokens=tokens, actions=actions, stats=stats)
