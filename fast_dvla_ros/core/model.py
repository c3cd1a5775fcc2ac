"""DVLA: a discrete-diffusion vision-language-action model on a Qwen2-family decoder backbone.

Training-facing API (stable)::

    from fast_dvla_ros.core.config import DVLAConfig
    from fast_dvla_ros.core.model import DVLA, MASKED_BIN
    from fast_dvla_ros.core.action_space import ActionTokenizer

    model = DVLA(DVLAConfig.preset("sim"), action_tokenizer=tokenizer)   # tokenizer: e.g. ActionTokenizer.from_stats
    model.set_proprio_stats(mean, std)                # raw proprio is normalised inside the model
    instr = model.instruction_tokenizer.encode_batch(["pick the red block"])   # int64 [B, 32]
    bins = torch.as_tensor(tokenizer.encode(actions))  # int64 [B, H, D] (or [B, H*D]) in [0, num_bins)
    inp = bins.reshape(B, -1).clone(); inp[masked] = MASKED_BIN   # -1 marks a [MASK] position
    logits = model.forward_train(images, instr, proprio, inp, attention="block_causal")  # [B, H*D, num_bins]
    loss = F.cross_entropy(logits[masked], bins.reshape(B, -1)[masked])
    model.save_pretrained(out_dir); model = DVLA.from_pretrained(out_dir)

``images`` are [B, 3F, S, S] (F = config.num_frames stacked frames, newest first) with S = config.image_size,
uint8 (0..255) or float in [0, 1].
``proprio`` is float [B, proprio_dim] in raw units. ``attention`` is "bidirectional" or
"block_causal" (default: config.attention, the mask the model is meant to be decoded with).

Sequence layout: [image tokens][instruction tokens][proprio token(s)] = prefix (block 0), then H
action blocks of D tokens (block h+1). Positions are 0..L-1 (RoPE inside the backbone).

Output head: logits over the ``num_bins`` action bins only, for each position's *own* token (no
next-token shift). A mask predictor trained from scratch has no reason to shift, and an unshifted
head keeps every block self-contained: with a shifted head the first token of a block would need
the last logit of the previous block, which breaks the "cache only completed blocks" rule.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, Qwen2Config, Qwen2Model

from fast_dvla_ros.core import masks as M
from fast_dvla_ros.core.action_space import ActionSpace, ActionTokenizer
from fast_dvla_ros.core.checkpoint import (
    CONFIG_NAME,
    TOKENIZER_NAME,
    WEIGHTS_NAME,
    CheckpointError,
    read_state_dict,
    resolve_checkpoint_dir,
    write_state_dict,
)
from fast_dvla_ros.core.config import Attention, DVLAConfig
from fast_dvla_ros.core.vocab import ACTION_OFFSET, MASK_ID, ByteInstructionTokenizer, vocab_size

log = logging.getLogger(__name__)

MASKED_BIN = -1
# config keys that only describe provenance; dropped so a saved backbone config rebuilds cleanly
_BACKBONE_CFG_DROP = ("transformers_version", "architectures", "_name_or_path", "id2label", "label2id")


class ConvPatchEncoder(nn.Module):
    """Small image encoder: stride-2 conv stem, then a patchify conv -> one token per patch.

    Any module with the same contract can replace it (e.g. a pretrained vision tower):
    forward([B, C, S, S] float, roughly in [-1, 1]) -> [B, N, output_dim], with attribute ``output_dim``
    (C = 3 per stacked frame).
    """

    def __init__(self, patch_size: int, stem_channels: list[int], output_dim: int, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch = in_channels
        for out in stem_channels:
            layers += [nn.Conv2d(ch, out, 3, stride=2, padding=1), nn.GELU()]
            ch = out
        rest = patch_size // (2 ** len(stem_channels))
        layers.append(nn.Conv2d(ch, output_dim, rest, stride=rest))
        self.net = nn.Sequential(*layers)
        self.output_dim = output_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).flatten(2).transpose(1, 2)


def _build_backbone(config: DVLAConfig) -> nn.Module:
    """Backbone from (in order) a saved backbone config, a local HF model dir, or the preset dims."""
    attn = config.attn_implementation
    if config.backbone_config is not None:
        cfg = dict(config.backbone_config)
        model_type = cfg.pop("model_type", "qwen2")
        bcfg = AutoConfig.for_model(model_type, **cfg)
        return AutoModel.from_config(bcfg, attn_implementation=attn)
    if config.backbone_path:
        path = Path(config.backbone_path).expanduser()
        if not path.is_dir():
            raise CheckpointError(f"backbone_path {path} is not a directory")
        try:
            model = AutoModel.from_pretrained(str(path), local_files_only=True, attn_implementation=attn)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot load backbone from {path}: {exc}") from exc
        if not str(model.config.model_type).startswith("qwen"):
            log.warning("backbone %s is %s, not Qwen2-family; 4D masks are untested", path, model.config.model_type)
        return model
    bcfg = Qwen2Config(
        vocab_size=8,  # unused: we always feed inputs_embeds
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads,
        intermediate_size=config.intermediate_size,
        rope_theta=config.rope_theta,
        rms_norm_eps=config.rms_norm_eps,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        use_sliding_window=False,
    )
    return Qwen2Model(bcfg)


def _sync_config_with_backbone(config: DVLAConfig, backbone: nn.Module) -> DVLAConfig:
    """Record the backbone's own config so save/load rebuilds it without the original path."""
    b = backbone.config
    d = {k: v for k, v in b.to_dict().items() if k not in _BACKBONE_CFG_DROP}
    return replace(
        config,
        hidden_size=b.hidden_size,
        num_layers=b.num_hidden_layers,
        num_heads=b.num_attention_heads,
        num_kv_heads=getattr(b, "num_key_value_heads", b.num_attention_heads),
        intermediate_size=b.intermediate_size,
        backbone_config=d,
    )


class DVLA(nn.Module):
    """Discrete-diffusion VLA: embeds prefix + (partially masked) action tokens, predicts action bins."""

    def __init__(
        self,
        config: DVLAConfig,
        action_tokenizer: ActionTokenizer | None = None,
        vision_tower: nn.Module | None = None,
    ) -> None:
        super().__init__()
        backbone = _build_backbone(config)
        self.config = _sync_config_with_backbone(config, backbone)
        self.backbone = backbone
        cfg = self.config
        hidden = cfg.hidden_size

        if action_tokenizer is None:
            action_tokenizer = ActionTokenizer(ActionSpace.panda_default(), cfg.num_bins)
        if action_tokenizer.dim != cfg.action_dim or action_tokenizer.num_bins != cfg.num_bins:
            raise ValueError(
                f"tokenizer (dim {action_tokenizer.dim}, {action_tokenizer.num_bins} bins) does not match "
                f"config (action_dim {cfg.action_dim}, num_bins {cfg.num_bins})"
            )
        if len(action_tokenizer.space.relative_dims) > cfg.proprio_dim:
            raise ValueError("joint_delta actions need the joint positions first in proprio (proprio_dim too small)")
        self.action_tokenizer = action_tokenizer
        self.instruction_tokenizer = ByteInstructionTokenizer(cfg.instruction_max_len)

        self.vision_tower = vision_tower or ConvPatchEncoder(
            cfg.patch_size, cfg.vision_stem_channels, hidden, in_channels=3 * cfg.num_frames
        )
        self.vision_proj = nn.Linear(self.vision_tower.output_dim, hidden)
        with torch.no_grad():
            probe = torch.zeros(1, 3 * cfg.num_frames, cfg.image_size, cfg.image_size)
            self.num_image_tokens = int(self.vision_tower(probe).shape[1])
        self.image_pos = nn.Parameter(torch.randn(1, self.num_image_tokens, hidden) * 0.02)
        self.token_embed = nn.Embedding(vocab_size(cfg.num_bins), hidden)
        self.action_dim_embed = nn.Embedding(cfg.action_dim, hidden)
        self.proprio_proj = nn.Linear(cfg.proprio_dim, hidden * cfg.num_proprio_tokens)
        self.register_buffer("proprio_mean", torch.zeros(cfg.proprio_dim))
        self.register_buffer("proprio_std", torch.ones(cfg.proprio_dim))
        self.head = nn.Linear(hidden, cfg.num_bins)
        # training-only auxiliary regression of scene state from the pooled prefix (None when unused)
        self.aux_head = nn.Linear(hidden, cfg.aux_state_dim) if cfg.aux_state_dim else None
        # training-only: per image token, logit "the block's centre is in this patch" + offset inside it
        self.keypoint_head = nn.Linear(hidden, 3) if cfg.keypoint_head else None
        nn.init.normal_(self.token_embed.weight, std=0.02)
        nn.init.normal_(self.action_dim_embed.weight, std=0.02)
        self._mask_cache: dict[tuple, torch.Tensor] = {}

    # ---- layout -------------------------------------------------------------------------------
    @property
    def prefix_len(self) -> int:
        return self.num_image_tokens + self.config.instruction_max_len + self.config.num_proprio_tokens

    @property
    def seq_len(self) -> int:
        return self.prefix_len + self.config.num_action_tokens

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.head.weight.dtype

    def attention_mask(self, kind: Attention) -> torch.Tensor:
        """Additive float mask [L, L] for the full sequence; built once per (kind, device, dtype), then sliced."""
        key = (kind, self.prefix_len, self.config.horizon, self.config.action_dim, self.device, self.dtype)
        mask = self._mask_cache.get(key)
        if mask is None:
            if kind == "bidirectional" and not self.config.prefix_sees_actions:
                b = M.prefix_isolated_bidirectional_mask(self.prefix_len, self.seq_len, self.device)
            elif kind == "bidirectional":
                b = M.bidirectional_mask(self.seq_len, self.device)
            elif kind == "block_causal":
                b = M.block_causal_mask(self.prefix_len, self.config.horizon, self.config.action_dim, self.device)
            else:
                raise ValueError(f"unknown attention kind {kind!r}")
            mask = M.to_additive(b, self.dtype)
            self._mask_cache[key] = mask
        return mask

    def set_proprio_stats(self, mean: Any, std: Any) -> None:
        """Store proprio normalisation (saved with the weights); std is floored to avoid division by ~0."""
        mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std_t = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if mean_t.numel() != self.config.proprio_dim or std_t.numel() != self.config.proprio_dim:
            raise ValueError(f"proprio stats must have {self.config.proprio_dim} values")
        self.proprio_mean.copy_(mean_t)
        self.proprio_std.copy_(std_t.clamp_min(1e-6))

    # ---- embeddings ---------------------------------------------------------------------------
    def embed_prefix(self, images: torch.Tensor, instr_ids: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        """[B,3F,S,S] images (F stacked frames, newest first), [B,T] instruction ids, [B,P] raw proprio
        -> prefix embeddings [B, prefix_len, hidden]."""
        cfg = self.config
        c = 3 * cfg.num_frames
        if images.ndim != 4 or images.shape[1:] != (c, cfg.image_size, cfg.image_size):
            raise ValueError(f"images must be [B, {c}, {cfg.image_size}, {cfg.image_size}], got {tuple(images.shape)}")
        if instr_ids.shape[-1] != cfg.instruction_max_len:
            raise ValueError(f"instruction ids must have length {cfg.instruction_max_len}")
        if proprio.shape[-1] != cfg.proprio_dim:
            raise ValueError(f"proprio must have {cfg.proprio_dim} values, got {proprio.shape[-1]}")
        b = images.shape[0]
        x = images.to(self.device)
        x = x.to(self.dtype) / 255.0 if x.dtype == torch.uint8 else x.to(self.dtype)
        img = self.vision_proj(self.vision_tower(x * 2.0 - 1.0)) + self.image_pos
        txt = self.token_embed(instr_ids.to(self.device))
        p = (proprio.to(self.device, torch.float32) - self.proprio_mean) / self.proprio_std
        prop = self.proprio_proj(p.to(self.dtype)).reshape(b, cfg.num_proprio_tokens, -1)
        return torch.cat([img, txt, prop], dim=1)

    def embed_actions(self, action_bins: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Action bins [B, N] (MASKED_BIN = [MASK]) starting at action index ``start`` -> [B, N, hidden]."""
        if action_bins.numel() and (action_bins.min() < MASKED_BIN or action_bins.max() >= self.config.num_bins):
            raise ValueError(f"action bins must be in [{MASKED_BIN}, {self.config.num_bins})")
        ids = torch.where(action_bins < 0, MASK_ID, action_bins + ACTION_OFFSET)
        dims = (torch.arange(action_bins.shape[1], device=action_bins.device) + start) % self.config.action_dim
        return self.token_embed(ids) + self.action_dim_embed(dims)[None]

    # ---- backbone -----------------------------------------------------------------------------
    def run_backbone(
        self,
        embeds: torch.Tensor,
        mask: torch.Tensor,
        start_pos: int,
        cache: Any | None = None,
    ) -> torch.Tensor:
        """One backbone forward over ``embeds`` at positions start_pos.. with additive mask [Q, K].

        K = cached length + Q. With a ``DynamicCache`` the new keys/values are appended to it;
        callers crop the cache back to what they want to keep.
        """
        b, q, _ = embeds.shape
        if mask.shape[0] != q:
            raise ValueError(f"mask has {mask.shape[0]} query rows for {q} inputs")
        pos = torch.arange(start_pos, start_pos + q, device=embeds.device)[None].expand(b, q)
        out = self.backbone(
            inputs_embeds=embeds,
            attention_mask=M.as_4d(mask, b),
            position_ids=pos,
            past_key_values=cache,
            use_cache=cache is not None,
        )
        return out.last_hidden_state

    def action_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states of action positions -> logits over the action bins [.., num_bins] (own token, unshifted)."""
        return self.head(hidden)

    def forward_train(
        self,
        images: torch.Tensor,
        instr_ids: torch.Tensor,
        proprio: torch.Tensor,
        action_bins: torch.Tensor,
        attention: Attention | None = None,
        return_aux: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor | None]]:
        """Full uncached forward -> action-bin logits [B, H*D, num_bins] for every action position.

        With ``return_aux`` also a dict of the training-only heads' outputs (None where a head is
        absent): ``state`` [B, aux_state_dim], the scene-state regression from the mean of the
        prefix's last hidden states (the prefix is block 0 under both masks, so every action block
        attends to it), and ``keypoint`` [B, num_image_tokens, 3] from each image token's last hidden
        state: a logit that the block's centre lies in that patch and the centre's (u, v) inside it.
        """
        bins = action_bins.reshape(action_bins.shape[0], -1).to(self.device)
        if bins.shape[1] != self.config.num_action_tokens:
            raise ValueError(f"expected {self.config.num_action_tokens} action tokens, got {bins.shape[1]}")
        embeds = torch.cat([self.embed_prefix(images, instr_ids, proprio), self.embed_actions(bins)], dim=1)
        hidden = self.run_backbone(embeds, self.attention_mask(attention or self.config.attention), 0)
        logits = self.action_logits(hidden[:, self.prefix_len :])
        if not return_aux:
            return logits
        aux = {
            "state": None if self.aux_head is None else self.aux_head(hidden[:, : self.prefix_len].mean(dim=1)),
            "keypoint": None if self.keypoint_head is None else self.keypoint_head(hidden[:, : self.num_image_tokens]),
        }
        return logits, aux

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.forward_train(*args, **kwargs)

    def loss(self, logits: torch.Tensor, target_bins: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """Cross-entropy on masked positions only (the masked-diffusion objective; every training stage's
        action loss, train/trainer.py)."""
        target = target_bins.reshape(logits.shape[0], -1).to(logits.device)
        m = masked.reshape(target.shape).to(logits.device)
        if not m.any():
            return logits.sum() * 0.0
        return F.cross_entropy(logits[m].float(), target[m])

    # ---- persistence --------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write model.safetensors + config.json + action_tokenizer.json into ``directory``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        write_state_dict(self.state_dict(), d / WEIGHTS_NAME)
        self.config.save(d / CONFIG_NAME)
        self.action_tokenizer.save(d / TOKENIZER_NAME)
        return d

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        vision_tower: nn.Module | None = None,
        map_location: str | torch.device = "cpu",
    ) -> DVLA:
        """Load a directory written by save_pretrained. Pickle files and broken dirs raise CheckpointError."""
        d = resolve_checkpoint_dir(directory)
        try:
            config = DVLAConfig.load(d / CONFIG_NAME)
            tokenizer = ActionTokenizer.load(d / TOKENIZER_NAME)
        except (json.JSONDecodeError, ValueError, TypeError, KeyError) as exc:
            raise CheckpointError(f"invalid config/tokenizer JSON in {d}: {exc}") from exc
        state = read_state_dict(d / WEIGHTS_NAME)
        try:
            model = cls(config, tokenizer, vision_tower)
        except ValueError as exc:
            raise CheckpointError(f"checkpoint {d} is inconsistent: {exc}") from exc
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"weights in {d} do not match its config: {exc}") from exc
        return model.to(map_location).eval()
