"""``Policy``: checkpoint + decoder + preprocessing, the one object the ROS nodes and evaluation use.

Contract (docs/CONTRACTS.md)::

    policy = Policy.load(checkpoint_dir, decoder="pipelined:n=1", device="cpu", **decoder_kwargs)
    result = policy.predict(Observation(image=rgb_uint8_HxWx3, proprio=float32[8], instruction="..."))
    result.actions  # float64 [H, 8] in action units;  result.stats  # DecodeStats

``decoder`` is a spec (core/decoder_options.py); empty means the checkpoint's recommended decoder with
its settings, and ``policy.action_rate_hz`` is the checkpoint's action rate (its ``RuntimeContract``).

Bad observations raise ``ValueError`` with a message naming the field (the caller decides whether
to skip the tick); they never reach the model as garbage.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fast_dvla_ros.core.checkpoint import CheckpointError
from fast_dvla_ros.core.contract import RuntimeContract, legacy_contract, legacy_note
from fast_dvla_ros.core.decoder_options import DecoderSpec, resolve_decoder_spec
from fast_dvla_ros.core.decoders import Decoder, DecodeStats, ObservationBatch, make_decoder
from fast_dvla_ros.core.model import DVLA

__all__ = ["DecodeStats", "Observation", "Policy", "PolicyResult", "runtime_contract"]

log = logging.getLogger(__name__)


@dataclass
class Observation:
    image: np.ndarray  # uint8 [H, W, 3] RGB (any size; RGBA is accepted, alpha dropped)
    proprio: np.ndarray  # float [proprio_dim] raw units (joint positions rad + gripper width m)
    instruction: str
    # frame from config.frame_gap action steps earlier, for two-frame checkpoints (FrameHistory keeps
    # it); None -> the current image is repeated, as at the start of a training episode
    previous_image: np.ndarray | None = None
    # latency-compensated decoding: the first d steps of the chunk, known in advance (the executor's plan for
    # the steps it runs while the chunk is decoded), absolute [d, D] in action units; None or d = 0: none
    action_prefix: np.ndarray | None = None


@dataclass
class PolicyResult:
    actions: np.ndarray  # float64 [H, D] in action units
    tokens: np.ndarray  # int64 [H, D] bins
    stats: DecodeStats
    prefix_steps: int = 0  # leading steps given by the observation's action_prefix, not decoded


def preprocess_image(image: np.ndarray, size: int) -> torch.Tensor:
    """HxWx3 (or HxWx4) uint8 of any size -> [3, size, size] uint8, resized with antialiasing."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] not in (3, 4) or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"image must be HxWx3 RGB, got shape {img.shape}")
    if img.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {img.dtype}")
    t = torch.from_numpy(np.ascontiguousarray(img[..., :3])).permute(2, 0, 1)
    if t.shape[1:] == (size, size):
        return t
    resized = F.interpolate(t[None].float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return resized[0].round().clamp(0, 255).to(torch.uint8)


def runtime_contract(model: DVLA, checkpoint: str = "unsaved") -> tuple[RuntimeContract, str | None]:
    """The model's ``RuntimeContract`` and None, or, for a config without one, the legacy contract and a
    note saying so. A contract whose action space disagrees with the tokenizer's raises CheckpointError."""
    contract = model.config.runtime
    if contract is None:
        return legacy_contract(), legacy_note(checkpoint)
    space, summary = model.action_tokenizer.space, contract.action_space
    if summary is not None and (summary.kind != space.kind or list(summary.names) != list(space.names)):
        raise CheckpointError(
            f"checkpoint {checkpoint}: config.json's action space ({summary.kind}, {list(summary.names)}) differs "
            f"from action_tokenizer.json's ({space.kind}, {list(space.names)})"
        )
    return contract, None


class Policy:
    """A loaded DVLA checkpoint with one decoder, ready to turn observations into action chunks."""

    def __init__(
        self, model: DVLA, decoder: Decoder, checkpoint_name: str = "unsaved", decoder_spec: DecoderSpec | None = None
    ) -> None:
        self.model = model.eval()
        self.decoder = decoder
        self.checkpoint_name = checkpoint_name
        self.contract, self.contract_note = runtime_contract(model, checkpoint_name)
        self.decoder_spec = decoder_spec  # what Policy.load built the decoder from (None: built by hand)

    @classmethod
    def load(
        cls,
        checkpoint_dir: str | Path,
        decoder: str | DecoderSpec | None = None,
        device: str = "cpu",
        settings: Mapping[str, Any] | None = None,
        **decoder_kwargs: Any,
    ) -> Policy:
        """Load ``checkpoint_dir`` (safetensors directory; CheckpointError otherwise) onto ``device``.

        ``decoder``: a spec; empty = the checkpoint's recommended decoder and settings. ``settings``: values
        for whichever of them the chosen decoder has (``resolve_decoder_spec``); ``decoder_kwargs``: options
        of the chosen decoder, winning over both (an option it lacks raises).
        """
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but CUDA is not available")
        model = DVLA.from_pretrained(checkpoint_dir, map_location=dev)
        name = Path(checkpoint_dir).name
        contract, note = runtime_contract(model, name)
        if note is not None:
            log.warning(note)
        spec = resolve_decoder_spec(decoder, contract.decoder, settings).with_options(**decoder_kwargs)
        return cls(model, make_decoder(spec, model), name, spec)

    # ---- description --------------------------------------------------------------------------
    @property
    def horizon(self) -> int:
        return self.model.config.horizon

    @property
    def action_names(self) -> list[str]:
        return list(self.model.action_tokenizer.space.names)

    @property
    def decoder_name(self) -> str:
        return self.decoder.name

    @property
    def num_frames(self) -> int:
        return self.model.config.num_frames

    @property
    def action_rate_hz(self) -> float:
        """Spacing of a chunk's steps, as the checkpoint's demonstrations were recorded."""
        return self.contract.action_rate_hz

    def frame_gap_s(self, action_rate_hz: float | None = None) -> float:
        """Time between the stacked frames the checkpoint was trained on (at its own action rate by default)."""
        return self.model.config.frame_gap / (action_rate_hz or self.action_rate_hz)

    @property
    def max_prefix_steps(self) -> int:
        """The longest action prefix the checkpoint was trained to continue (0: none; core/contract.py)."""
        return self.contract.action_prefix_steps

    # ---- inference ----------------------------------------------------------------------------
    def prefix_bins(self, prefix: np.ndarray, proprio: np.ndarray) -> tuple[np.ndarray, int]:
        """An absolute action prefix [d, D] -> its bins [d, D] in the checkpoint's representation (relative to
        ``proprio`` for joint deltas) and the number of values outside the bin range (clipped)."""
        tok = self.model.action_tokenizer
        a = np.asarray(prefix, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != tok.dim:
            raise ValueError(f"action_prefix must be [steps, {tok.dim}], got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError("action_prefix contains NaN or inf")
        relative = tok.space.to_relative(a[None], np.asarray(proprio, np.float64).reshape(1, -1))[0]
        low, high = np.asarray(tok.space.low), np.asarray(tok.space.high)
        outside = int(np.count_nonzero((relative < low) | (relative > high)))
        # clipped here, so the tokenizer's clip counter (bad training data) does not count run-time prefixes
        return tok.encode(np.clip(relative, low, high)), outside

    def make_batch(self, observations: list[Observation]) -> ObservationBatch:
        cfg = self.model.config
        if not observations:
            raise ValueError("no observations")
        images, proprios, texts, prefixes = [], [], [], []
        for obs in observations:
            img = preprocess_image(obs.image, cfg.image_size)
            if cfg.num_frames == 2:
                prev = img if obs.previous_image is None else preprocess_image(obs.previous_image, cfg.image_size)
                img = torch.cat([img, prev], dim=0)
            images.append(img)
            p = np.asarray(obs.proprio, dtype=np.float64).reshape(-1)
            if p.shape[0] != cfg.proprio_dim:
                raise ValueError(f"proprio must have {cfg.proprio_dim} values, got {p.shape[0]}")
            if not np.all(np.isfinite(p)):
                raise ValueError("proprio contains NaN or inf")
            proprios.append(p)
            if not isinstance(obs.instruction, str):
                raise ValueError("instruction must be a string")
            texts.append(obs.instruction)
            prefixes.append(self._observation_prefix(obs, p))
        if len({len(b) for b in prefixes}) > 1:
            raise ValueError("every observation of a batch needs an action prefix of the same length")
        dev = self.model.device
        prefix_bins = None
        if len(prefixes[0]):
            prefix_bins = torch.as_tensor(np.stack(prefixes).reshape(len(prefixes), -1), device=dev)
        return ObservationBatch(
            images=torch.stack(images).to(dev),
            instruction_ids=torch.as_tensor(self.model.instruction_tokenizer.encode_batch(texts), device=dev),
            proprio=torch.as_tensor(np.stack(proprios), dtype=torch.float32, device=dev),
            prefix_bins=prefix_bins,
        )

    def _observation_prefix(self, obs: Observation, proprio: np.ndarray) -> np.ndarray:
        """The observation's action prefix as bins [d, D] (empty without one). A prefix outside the bin range
        is refused: clipped, it would commit steps the executor is not going to run."""
        if obs.action_prefix is None or len(obs.action_prefix) == 0:
            return np.zeros((0, self.model.config.action_dim), np.int64)
        if len(obs.action_prefix) >= self.horizon:
            raise ValueError(f"action_prefix of {len(obs.action_prefix)} steps leaves none of {self.horizon} to decode")
        bins, outside = self.prefix_bins(obs.action_prefix, proprio)
        if outside:
            raise ValueError(f"action_prefix: {outside} values outside the checkpoint's action range")
        return bins

    def predict_batch(self, observations: list[Observation]) -> tuple[list[PolicyResult], DecodeStats]:
        batch = self.make_batch(observations)
        out = self.decoder.decode(batch)
        d = batch.prefix_tokens // self.model.config.action_dim
        results = [PolicyResult(out.actions[i], out.tokens[i].numpy(), out.stats, d) for i in range(len(observations))]
        return results, out.stats

    def predict(self, observation: Observation) -> PolicyResult:
        results, _ = self.predict_batch([observation])
        return results[0]

    def warmup(self, iterations: int = 2) -> DecodeStats:
        """Run dummy chunks so first-call costs (allocator, kernel selection) are paid before control starts."""
        s = self.model.config.image_size
        obs = Observation(
            image=np.zeros((s, s, 3), np.uint8),
            proprio=self.model.proprio_mean.detach().cpu().numpy().astype(np.float64),
            instruction="warm up",
        )
        stats = None
        for _ in range(max(1, iterations)):
            stats = self.predict(obs).stats
        assert stats is not None
        return stats
