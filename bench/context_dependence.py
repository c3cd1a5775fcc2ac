"""How much does a model's prediction of the *executed* step lean on later steps of the chunk?

Why this exists: the block-causal student picks 68% and bidirectional teachers trained on the same data
4-26% (bench/history/). The executed actions are the chunk's first step (block 0). When
decoding starts, every action token is masked, so block 0 must come from the observation alone; in
bidirectional training, block 0's masked tokens are mostly predicted with some of the later steps
visible, from which a smooth trajectory can be interpolated. This script measures, on held-out
validation frames (the trainer's episode split, seed 0), the cross-entropy of block 0's tokens

* ``all masked``: every action token masked (the first decoding step);
* ``later visible``: block 0 masked, blocks 1..H-1 the demonstration's tokens (bidirectional models only:
  a block-causal model cannot see them, its figure equals the first).

    .venv/bin/python bench/context_dependence.py models/teacher_bidirectional models/student_scratch_long \\
        --data-dir runs/train/demos,runs/train/demos_dart,runs/train/demos_takeover
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fast_dvla_ros.core.model import DVLA, MASKED_BIN
from fast_dvla_ros.train.chunks import load_samplers
from fast_dvla_ros.train.trainer import action_bins


def block0_ce(model: DVLA, batch, later_visible: bool) -> tuple[float, float]:
    """(joints CE, gripper CE) of block 0's tokens, every other block masked or visible."""
    tok, cfg = model.action_tokenizer, model.config
    bins = action_bins(tok, batch)
    inp = bins.clone() if later_visible else torch.full_like(bins, MASKED_BIN)
    inp[:, : cfg.action_dim] = MASKED_BIN
    with torch.inference_mode():
        logits = model.forward_train(batch.images, batch.instr_ids, batch.proprio, inp)
    ce = F.cross_entropy(logits[:, : cfg.action_dim].float().flatten(0, 1), bins[:, : cfg.action_dim].flatten(),
                         reduction="none").reshape(len(bins), cfg.action_dim)
    gripper = tok.space.gripper_index
    joints = [d for d in range(cfg.action_dim) if d != gripper]
    return float(ce[:, joints].mean()), float(ce[:, gripper].mean()) if gripper is not None else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--data-dir", required=True, help="comma-separated demo dirs (the training sets)")
    p.add_argument("--frames", type=int, default=512, help="validation frames")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    models = [DVLA.from_pretrained(c).eval() for c in a.checkpoints]
    cfg = models[0].config
    if any((m.config.image_size, m.config.num_frames, m.config.horizon) != (cfg.image_size, cfg.num_frames,
                                                                           cfg.horizon) for m in models):
        raise SystemExit("checkpoints must share image size, frames and horizon")
    _, val, _ = load_samplers(a.data_dir, cfg.horizon, cfg.image_size, models[0].instruction_tokenizer.encode,
                              0.1, 0, num_frames=cfg.num_frames, frame_gap=cfg.frame_gap)
    batch = val.fixed(a.frames, seed=1)
    print(f"block 0 cross-entropy (nats), {len(batch.actions)} validation frames\n")
    print("| checkpoint | attention | joints, all masked | joints, later visible "
          "| gripper, all masked | gripper, later visible |")
    print("|---|---|---|---|---|---|")
    for path, model in zip(a.checkpoints, models, strict=True):
        j0, g0 = block0_ce(model, batch, later_visible=False)
        j1, g1 = block0_ce(model, batch, later_visible=True)
        print(f"| {path} | {model.config.attention} | {j0:.3f} | {j1:.3f} | {g0:.3f} | {g1:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
