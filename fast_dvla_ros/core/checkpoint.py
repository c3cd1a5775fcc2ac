"""Checkpoint file handling: safetensors only, pickle refused, every failure a ``CheckpointError``.

Pickle checkpoints (.pt/.bin/.pth/.ckpt/.pkl) can run arbitrary code when loaded; a robot policy
node loading a file it was handed must never do that, so they are refused outright.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
TOKENIZER_NAME = "action_tokenizer.json"
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used: missing, corrupt, pickle-based or incompatible."""


def resolve_checkpoint_dir(path: str | Path) -> Path:
    """Validate that ``path`` is a safetensors checkpoint directory; explain precisely when it is not."""
    p = Path(path).expanduser()
    if p.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"refusing pickle checkpoint {p}: pickle files can execute code on load. "
            "Convert it to a directory with model.safetensors + config.json (DVLA.save_pretrained)."
        )
    if not p.exists():
        raise CheckpointError(f"checkpoint directory {p} does not exist")
    if not p.is_dir():
        raise CheckpointError(f"checkpoint path {p} is not a directory (expected model.safetensors + config.json)")
    missing = [n for n in (WEIGHTS_NAME, CONFIG_NAME, TOKENIZER_NAME) if not (p / n).is_file()]
    if missing:
        pickles = sorted(q.name for q in p.iterdir() if q.suffix.lower() in PICKLE_SUFFIXES)
        hint = f"; found pickle files {pickles}, which are refused" if pickles else ""
        raise CheckpointError(f"checkpoint directory {p} lacks {missing}{hint}")
    return p


def write_state_dict(state: dict[str, torch.Tensor], path: Path) -> None:
    # contiguous clones: safetensors rejects views and shared storage
    save_file({k: v.detach().contiguous().clone().cpu() for k, v in state.items()}, str(path))


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"cannot read weights {path}: {exc} (file corrupt or truncated?)") from exc
