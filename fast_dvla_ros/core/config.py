"""``DVLAConfig``: every number that defines a DVLA model, with JSON round trip and named presets.

Presets:
  tiny  ~1M params, 32 px: unit tests / CI.
  sim   default shipped model: trains on 2 CPU cores in <= 45 min, a forward over prefix + 8x8
        action tokens takes a few ms on CPU.
  small ~45M params, 256 image tokens: CPU benchmark size.
  base  Qwen2-0.5B-like dims (random weights): benchmark only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from fast_dvla_ros.core.contract import RuntimeContract

Attention = Literal["bidirectional", "block_causal"]


@dataclass
class DVLAConfig:
    # image encoder: stride-2 conv stem, then a patchify conv; patch_size must be divisible by 2**len(stem)
    image_size: int = 64
    patch_size: int = 8
    vision_stem_channels: list[int] = field(default_factory=lambda: [32])
    # Camera frames stacked along the channels: the current one and, with 2, the one ``frame_gap``
    # action steps earlier. A moving belt's speed is invisible in one frame; the expert's interception
    # depends on it, so a one-frame policy can only imitate the average speed.
    num_frames: int = 1
    frame_gap: int = 10
    # instruction / proprio / action layout
    instruction_max_len: int = 32
    proprio_dim: int = 8
    num_proprio_tokens: int = 1
    action_dim: int = 8
    horizon: int = 8
    num_bins: int = 256
    # Width of the auxiliary head that regresses privileged scene state (block pose) from the
    # prefix during training; 0 = no head. Decoding never uses it: it only shapes what the vision
    # layers learn (behaviour cloning alone let the policy ignore the block, see TrainConfig).
    aux_state_dim: int = 0
    # Training-only keypoint head on the image tokens' last hidden states: which token holds the
    # block and where inside it (CenterNet-style). A global regression from pooled features let the
    # model fall back to the arm's pose as a proxy for the block's; a per-token target makes the
    # image tokens themselves say "the block is here", where the action tokens attend.
    keypoint_head: bool = False
    # Qwen2 backbone (ignored dims are taken from backbone_config / backbone_path when given)
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 4
    intermediate_size: int = 384
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6
    attn_implementation: Literal["sdpa", "eager"] = "sdpa"
    backbone_path: str | None = None
    backbone_config: dict[str, Any] | None = None
    # which mask the model is trained with (decoders check it)
    attention: Attention = "block_causal"
    # Bidirectional mask only: may the prefix (image, instruction, proprio) attend to the action
    # tokens? True is plain full attention (the dataclass default). False
    # keeps the actions bidirectional among themselves and towards the prefix but encodes the
    # observation on its own, as the block-causal mask does (in training the prefix otherwise reads
    # the partly visible ground-truth actions, all masked when decoding starts). With it off the
    # prefix KV is exact for ``prefix_cache``. Measured on its own it gives a lower validation CE but no
    # better picking (bench/history/); the shipped teacher is converted from a block-causal model with it off.
    prefix_sees_actions: bool = True
    name: str = "custom"
    # What a runner needs besides the weights: action rate, action space, recommended decoder
    # (core/contract.py). Written by the trainer; None in presets and in checkpoints from before it.
    runtime: RuntimeContract | None = None

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} not divisible by patch_size {self.patch_size}")
        stem_stride = 2 ** len(self.vision_stem_channels)
        if self.patch_size % stem_stride:
            raise ValueError(f"patch_size {self.patch_size} not divisible by the conv stem stride {stem_stride}")
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError("hidden_size % num_heads and num_heads % num_kv_heads must be 0")
        if self.attention not in ("bidirectional", "block_causal"):
            raise ValueError(f"attention must be 'bidirectional' or 'block_causal', got {self.attention!r}")
        for k in ("action_dim", "horizon", "num_bins", "proprio_dim", "num_proprio_tokens", "num_layers"):
            if getattr(self, k) <= 0:
                raise ValueError(f"{k} must be > 0")
        if self.num_frames not in (1, 2) or self.frame_gap < 1:
            raise ValueError("num_frames must be 1 or 2 and frame_gap >= 1")
        if self.aux_state_dim < 0:
            raise ValueError("aux_state_dim must be >= 0")

    @property
    def num_action_tokens(self) -> int:
        return self.horizon * self.action_dim

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["runtime"] = None if self.runtime is None else self.runtime.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DVLAConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown DVLAConfig keys: {sorted(unknown)}")
        runtime = d.get("runtime")
        if isinstance(runtime, dict):
            d = {**d, "runtime": RuntimeContract.from_dict(runtime)}
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DVLAConfig:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> DVLAConfig:
        return cls.from_json(Path(path).read_text())

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> DVLAConfig:
        if name not in PRESETS:
            raise KeyError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
        return replace(PRESETS[name], **overrides)


PRESETS: dict[str, DVLAConfig] = {
    # 16 image + 32 text + 1 proprio = 49 prefix tokens
    "tiny": DVLAConfig(
        name="tiny", image_size=32, patch_size=8, vision_stem_channels=[16],
        hidden_size=128, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=512,
    ),
    # 36 image + 32 text + 1 proprio = 69 prefix tokens + 64 action tokens
    "sim": DVLAConfig(
        name="sim", image_size=96, patch_size=16, vision_stem_channels=[24, 48],
        hidden_size=192, num_layers=4, num_heads=6, num_kv_heads=2, intermediate_size=576,
    ),
    # 256 image + 32 text + 1 proprio = 289 prefix tokens
    "small": DVLAConfig(
        name="small", image_size=128, patch_size=8, vision_stem_channels=[32, 64],
        hidden_size=576, num_layers=12, num_heads=9, num_kv_heads=3, intermediate_size=1536,
    ),
    # Qwen2-0.5B dims: hidden 896, 24 layers, 14/2 heads, MLP 4864; 256 image tokens
    "base": DVLAConfig(
        name="base", image_size=256, patch_size=16, vision_stem_channels=[32, 64],
        hidden_size=896, num_layers=24, num_heads=14, num_kv_heads=2, intermediate_size=4864,
        rope_theta=1000000.0,
    ),
}
