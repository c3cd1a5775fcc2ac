"""``RuntimeContract``: what a checkpoint needs from whoever runs it, stored in its config.json.

The trainer knows the rate of the demonstrations it learned from, the action space it tokenised and
the decoder its stage is meant for; a node, the evaluator or the demo reading them back from the
checkpoint cannot get them wrong by configuration. Node parameters and command-line flags left empty
mean "the checkpoint's value". The frame gap of two-frame checkpoints is a model input and lives
beside the other inputs in ``DVLAConfig.frame_gap``; ``Policy.frame_gap_s`` turns it into seconds at
this contract's rate.

A config.json written before checkpoints carried a contract loads with ``LEGACY_CONTRACT``, the values
every entry point assumed for such checkpoints, and a note saying so (``legacy_note``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fast_dvla_ros.core.decoder_options import DecoderSpec

__all__ = ["LEGACY_ACTION_RATE_HZ", "ActionSpaceSummary", "RuntimeContract", "legacy_contract", "legacy_note"]

# The conveyor demonstrations' control rate, the only rate checkpoints without a contract were trained at.
LEGACY_ACTION_RATE_HZ = 30.0
LEGACY_DECODER = "pipelined"  # Policy.load's default decoder before checkpoints recommended one


@dataclass(frozen=True)
class ActionSpaceSummary:
    """How to read a chunk's columns: their names and kind (``ActionSpace.kind``). The bin ranges stay in
    action_tokenizer.json; ``Policy.load`` checks that both files describe the same space."""

    kind: str
    names: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "names": list(self.names)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ActionSpaceSummary:
        return cls(kind=str(d["kind"]), names=tuple(str(n) for n in d["names"]))


@dataclass(frozen=True)
class RuntimeContract:
    """``action_rate_hz``: spacing of a chunk's steps (the demonstrations' control rate), also the rate a
    chunk is worth decoding at; ``action_space``: what the columns are; ``decoder``: the recommended
    decoder with its settings (every setting explicit, ``DecoderSpec.full``); ``action_prefix_steps``: the
    longest action prefix (known leading steps, latency-compensated decoding) the checkpoint was trained to
    continue, 0 for a checkpoint that never saw one (the runtime then decodes every chunk whole)."""

    action_rate_hz: float
    action_space: ActionSpaceSummary | None
    decoder: DecoderSpec
    action_prefix_steps: int = 0

    def __post_init__(self) -> None:
        if not self.action_rate_hz > 0:
            raise ValueError(f"action_rate_hz must be > 0, got {self.action_rate_hz}")
        if self.action_prefix_steps < 0:
            raise ValueError(f"action_prefix_steps must be >= 0, got {self.action_prefix_steps}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "action_rate_hz": float(self.action_rate_hz),
            "action_space": None if self.action_space is None else self.action_space.to_dict(),
            "decoder": self.decoder.to_dict(),
            "action_prefix_steps": int(self.action_prefix_steps),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RuntimeContract:
        unknown = set(d) - {"action_rate_hz", "action_space", "decoder", "action_prefix_steps"}
        if unknown:
            raise ValueError(f"unknown runtime contract keys: {sorted(unknown)}")
        space = d.get("action_space")
        return cls(
            action_rate_hz=float(d["action_rate_hz"]),
            action_space=None if space is None else ActionSpaceSummary.from_dict(space),
            decoder=DecoderSpec.from_dict(d["decoder"]),
            action_prefix_steps=int(d.get("action_prefix_steps", 0)),
        )


def legacy_contract() -> RuntimeContract:
    return RuntimeContract(LEGACY_ACTION_RATE_HZ, None, DecoderSpec(LEGACY_DECODER))


def legacy_note(checkpoint: str) -> str:
    c = legacy_contract()
    return (
        f"checkpoint {checkpoint}: config.json has no 'runtime' contract (written before checkpoints carried "
        f"one); assuming action_rate_hz {c.action_rate_hz:g} and decoder '{c.decoder}' with its defaults. "
        "Set them explicitly, or add the contract (fast_dvla_ros/core/contract.py) to its config.json."
    )
