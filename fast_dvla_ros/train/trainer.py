"""The three training runs of the Fast-dVLA recipe, on demonstrations from the conveyor simulator.

* ``teacher``  — bidirectional dVLA, masked-diffusion SFT: one random mask ratio per sample,
  cross-entropy on the masked action tokens. This is the baseline dVLA (decoded by
  ``BidirectionalDecoder``) and the teacher of the distillation.
* ``distill``  — block-causal student by **asymmetric distillation** (Fast-dVLA, after D2F): one
  noisy sequence with non-decreasing per-block mask ratios feeds both models; the frozen teacher
  sees it with bidirectional attention, the student through the block-causal mask; the loss is
  KL(teacher || student) on the masked positions, plus an optional ground-truth cross-entropy.
  The student starts from the teacher's weights (the paper trains a LoRA on the teacher; a full
  fine-tune of a 2M-parameter model is cheaper than adapters here and equivalent in kind).
* ``scratch``  — the same block-causal student and noise schedule, trained from random weights on
  ground truth only, with the same budget: the convergence baseline for the distillation claim.

Every run writes into its output directory: the checkpoint (``save_pretrained``), ``log.csv``
(step, wall time, train loss, lr, and validation metrics at eval steps), ``loss_curve.png`` and
``summary.json``. Validation uses a fixed batch and a fixed mask so curves are comparable across
runs: the students are scored on block-monotone masks under block-causal attention (how they are
decoded), the teacher on uniform masks under bidirectional attention.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from fast_dvla_ros.core.action_space import ActionSpace, ActionTokenizer
from fast_dvla_ros.core.checkpoint import CheckpointError
from fast_dvla_ros.core.config import DVLAConfig
from fast_dvla_ros.core.contract import ActionSpaceSummary, RuntimeContract
from fast_dvla_ros.core.decoder_options import decoder_spec_argument, parse_decoder_spec
from fast_dvla_ros.core.model import DVLA, MASKED_BIN
from fast_dvla_ros.train.chunks import ChunkBatch, ChunkSampler, load_samplers
from fast_dvla_ros.train.noise import block_monotone_mask, uniform_ratio_mask

Stage = Literal["teacher", "distill", "scratch"]
# The decoder each stage's checkpoint is meant for, written into its config.json (core/contract.py): the
# baseline dVLA's own decoder for the teacher; Fast-dVLA's pipeline for the students, at one forward per
# block (n = 1) for the distilled student, which picks more with it, and at the paper's n = 2 for the
# students trained from scratch, which release the block early at n = 1 (bench/RESULTS.md section 1).
STAGE_DECODERS: dict[str, str] = {"teacher": "bidirectional", "distill": "pipelined:n=1", "scratch": "pipelined"}


@dataclass
class TrainConfig:
    stage: Stage
    data_dir: str
    out_dir: str
    steps: int = 1500
    batch_size: int = 32
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    lr_schedule_steps: int = 0  # length of the cosine schedule (0 = steps); longer = stop before it ends
    warmup_steps: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    preset: str = "sim"
    preset_overrides: dict = field(default_factory=dict)
    # joint_delta (chunk-relative joint targets) or joint_position (absolute); see ActionSpace.
    action_kind: str = "joint_delta"
    # Fraction of training samples whose proprio input is replaced by the dataset mean pose. In the
    # demonstrations the arm's pose already encodes where the expert is heading, so a policy can
    # imitate from proprio alone and never learn to find the block in the image (measured: with
    # 0.0 the teacher's first chunk was uncorrelated with the block's position, 0/10 picks).
    proprio_dropout: float = 0.5
    # Weight of the auxiliary loss: regress the block's pose and its offset from the grasp point
    # (privileged simulator state recorded with the demonstrations) from the pooled prefix. Without
    # it the policies fitted the demonstrations yet ignored where the block was (first chunk nearly
    # the same in every episode, 0-10% picks): the action loss alone gave the vision layers too weak
    # a signal to localise a few-pixel block. Used only when the data has ``scene_state``.
    aux_weight: float = 1.0
    # Weight of the keypoint loss on the image tokens (DVLAConfig.keypoint_head): cross-entropy over
    # the tokens for "which patch holds the block's centre" plus the centre's offset inside it. With
    # only the pooled regression above the teacher still guessed the mean block position on the first
    # frame (4 cm off, measured) and used the arm's pose as a proxy later on.
    keypoint_weight: float = 1.0
    # Stacked camera frames (1 or 2; see DVLAConfig.num_frames) for teacher/scratch; distill copies
    # the teacher's. Two frames make the belt speed observable.
    num_frames: int = 2
    # Training mask schedule; "" = the stage's own (teacher: uniform, students: block_monotone).
    # "mixed" draws one of the two per sample, so a bidirectional model also learns the
    # time-ordered states (early blocks decoded, later ones masked) the students are trained on;
    # "masked_tail" always masks every block from a random one on, so a step is often predicted
    # without any later step visible (bench/context_dependence.py).
    noise: str = ""
    teacher_dir: str | None = None  # distill only
    init_from: str | None = None  # start from this checkpoint (its config and bins); distill: an earlier student
    kl_weight: float = 1.0  # distill only
    ce_weight: float = 0.5  # distill: ground-truth CE added to the KL
    eval_every: int = 50
    save_every: int = 0  # also save a checkpoint to out_dir/step_<N> every N steps (0 = only at the end)
    val_batch: int = 128
    val_fraction: float = 0.1
    # Decoder spec recorded as the checkpoint's recommendation; "" = the stage's (STAGE_DECODERS).
    decoder: str = ""
    # Intra-op threads. 1 by default: on a 2-core machine shared with a simulator or other jobs,
    # torch's spinning OpenMP workers slow a step down ~8x (measured); pass 2 on an idle machine.
    threads: int = 1


def _tokenizer_from_data(
    train_set: ChunkSampler, names: list[str], num_bins: int, kind: str
) -> ActionTokenizer:
    """Bins spanning the training chunks' range (+2% margin) in the action representation ``kind``.

    With ``joint_delta`` the range is that of every chunk step relative to its observation, so a bin
    is a few mrad of *motion* instead of a slice of the whole joint range.
    """
    actions, proprio = train_set.all_chunks()
    gripper = names.index("gripper_width") if "gripper_width" in names else None
    probe = ActionSpace(names, [-1.0] * len(names), [1.0] * len(names), kind=kind, gripper_index=gripper)
    values = probe.to_relative(actions, proprio).reshape(-1, len(names))
    return ActionTokenizer.from_stats(
        values, names, num_bins=num_bins, method="minmax", margin=0.02, kind=kind, gripper_index=gripper
    )


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    total = cfg.lr_schedule_steps or cfg.steps
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _masked_input(bins: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    inp = bins.clone()
    inp[mask] = MASKED_BIN
    return inp


def _kl_teacher_to_student(t_logits: torch.Tensor, s_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(p_teacher || p_student) averaged over masked positions."""
    t = F.log_softmax(t_logits[mask].float(), dim=-1)
    s = F.log_softmax(s_logits[mask].float(), dim=-1)
    return F.kl_div(s, t, log_target=True, reduction="batchmean")


def action_bins(tokenizer: ActionTokenizer, batch: ChunkBatch) -> torch.Tensor:
    """The batch's demonstrated chunks as bin indices [B, H*D], in the tokenizer's action kind."""
    bins = tokenizer.encode(tokenizer.space.to_relative(batch.actions, batch.proprio.numpy()))
    return torch.as_tensor(bins, dtype=torch.long).reshape(len(batch.actions), -1)


def _as_bidirectional(model: DVLA) -> DVLA:
    """The teacher stage started from a block-causal checkpoint: same weights, bidirectional actions.

    The weights do not depend on the mask, so a block-causal model is a pretrained backbone for the
    masked-diffusion teacher, as the autoregressive OpenVLA is for DD-VLA. Its prefix never attended to
    action tokens, so the prefix stays isolated (``prefix_sees_actions=False``): the image, instruction
    and proprio features keep the computation they were trained with, and only the actions' attention
    among themselves becomes bidirectional.
    """
    cfg = replace(model.config, attention="bidirectional", prefix_sees_actions=False)
    converted = DVLA(cfg, model.action_tokenizer)
    converted.load_state_dict(model.state_dict())
    print(f"teacher: starting from a block-causal checkpoint, converted to {cfg.attention} attention "
          "with the prefix isolated")
    return converted.train()


class StageTrainer:
    """Runs one stage; see the module docstring."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.out = Path(cfg.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.teacher: DVLA | None = None

        if cfg.stage == "distill":
            if not cfg.teacher_dir:
                raise ValueError("distill needs --teacher-dir")
            self.teacher = DVLA.from_pretrained(cfg.teacher_dir).eval()
            for p in self.teacher.parameters():
                p.requires_grad_(False)
            model_cfg = DVLAConfig.from_dict({**self.teacher.config.to_dict(), "attention": "block_causal"})
            tokenizer = self.teacher.action_tokenizer
        else:
            attention = "bidirectional" if cfg.stage == "teacher" else "block_causal"
            model_cfg = DVLAConfig.preset(
                cfg.preset, attention=attention, **{"num_frames": cfg.num_frames, **cfg.preset_overrides}
            )
            tokenizer = None
        self.train_set, self.val_set, stats = load_samplers(
            cfg.data_dir, model_cfg.horizon, model_cfg.image_size,
            _instruction_encoder(model_cfg), cfg.val_fraction, cfg.seed,
            num_frames=model_cfg.num_frames, frame_gap=model_cfg.frame_gap,
        )
        if tokenizer is None:
            tokenizer = _tokenizer_from_data(self.train_set, stats["action_names"], model_cfg.num_bins, cfg.action_kind)
        states = self.train_set.scene_state
        if self.teacher is None and states is not None and cfg.aux_weight > 0.0:
            model_cfg = replace(model_cfg, aux_state_dim=states.shape[1])
        if self.teacher is None and states is not None and cfg.keypoint_weight > 0.0:
            model_cfg = replace(model_cfg, keypoint_head=True)
        # aux targets are standardised per dimension so each counts alike in the MSE
        self.aux_mean = None if states is None else torch.from_numpy(states.mean(0))
        self.aux_std = None if states is None else torch.from_numpy(states.std(0).clip(1e-4))
        if cfg.init_from:  # weights, bins and proprio statistics come with the checkpoint
            # teacher/scratch: continue a run of the same stage; distill: continue an earlier student
            self.model = DVLA.from_pretrained(cfg.init_from).train()
            expected = "block_causal" if self.teacher is not None else model_cfg.attention
            if cfg.stage == "teacher" and self.model.config.attention == "block_causal":
                self.model = _as_bidirectional(self.model)
            if self.model.config.attention != expected or (
                self.teacher is None and self.model.config.num_frames != cfg.num_frames
            ):
                raise ValueError(f"{cfg.init_from} does not match the stage's attention / --num-frames")
        elif self.teacher is not None:
            self.model = DVLA(model_cfg, tokenizer)
            self.model.load_state_dict(self.teacher.state_dict())  # student starts from the teacher
        else:
            self.model = DVLA(model_cfg, tokenizer)
            self.model.set_proprio_stats(stats["proprio"]["mean"], stats["proprio"]["std"])
        self.model.config = replace(self.model.config, runtime=self._contract())
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.val_fixed = self.val_set.fixed(cfg.val_batch, seed=cfg.seed + 1)
        # validation keeps the stage's own schedule so curves stay comparable across noise choices
        self.val_mask = self._mask(len(self.val_fixed.proprio), torch.Generator().manual_seed(cfg.seed + 2), "")

    # -- pieces -------------------------------------------------------------------------------
    def _contract(self) -> RuntimeContract:
        """What the checkpoint tells its runners: the demonstrations' rate, the action space, the decoder."""
        space = self.model.action_tokenizer.space
        return RuntimeContract(
            action_rate_hz=self.train_set.control_hz,
            action_space=ActionSpaceSummary(space.kind, tuple(space.names)),
            decoder=parse_decoder_spec(self.cfg.decoder or STAGE_DECODERS[self.cfg.stage]).full(),
        )

    def _mask(self, batch: int, gen: torch.Generator, noise: str | None = None) -> torch.Tensor:
        h, d = self.model.config.horizon, self.model.config.action_dim
        noise = self.cfg.noise if noise is None else noise
        noise = noise or ("uniform" if self.cfg.stage == "teacher" else "block_monotone")
        if noise == "uniform":
            return uniform_ratio_mask(batch, h, d, gen)
        if noise == "block_monotone":
            return block_monotone_mask(batch, h, d, gen)
        if noise == "masked_tail":  # block-monotone, and every block from a random one on fully masked
            return block_monotone_mask(batch, h, d, gen, full_tail_prob=1.0)
        if noise == "mixed":
            pick = torch.rand(batch, generator=gen) < 0.5
            uniform, monotone = uniform_ratio_mask(batch, h, d, gen), block_monotone_mask(batch, h, d, gen)
            return torch.where(pick[:, None, None], uniform, monotone)
        raise ValueError(f"unknown noise schedule {noise!r} (uniform, block_monotone, masked_tail, mixed)")

    def _drop_proprio(self, proprio: torch.Tensor) -> torch.Tensor:
        """Replace a random ``proprio_dropout`` share of the rows by the mean pose (training only)."""
        if self.cfg.proprio_dropout <= 0.0 or not self.model.training:
            return proprio
        drop = torch.rand(proprio.shape[0], generator=self.gen) < self.cfg.proprio_dropout
        mean = self.model.proprio_mean.to(proprio.dtype).expand_as(proprio)
        return torch.where(drop[:, None], mean, proprio)

    def _bins(self, batch: ChunkBatch) -> torch.Tensor:
        return action_bins(self.model.action_tokenizer, batch)

    def _loss(self, batch: ChunkBatch, mask: torch.Tensor) -> tuple[torch.Tensor, dict]:
        m = mask.reshape(mask.shape[0], -1)
        bins = self._bins(batch)
        inp = _masked_input(bins, m)
        proprio = self._drop_proprio(batch.proprio)  # the targets above stay relative to the true pose
        logits, aux = self.model.forward_train(batch.images, batch.instr_ids, proprio, inp, return_aux=True)
        ce = F.cross_entropy(logits[m].float(), bins[m])
        parts = {"ce": float(ce.detach())}
        loss = ce
        aux_loss = self._aux_loss(aux["state"], batch)
        if aux_loss is not None:
            parts["aux"] = float(aux_loss.detach())
            aux_loss = self.cfg.aux_weight * aux_loss
        kp_loss = self._keypoint_loss(aux["keypoint"], batch)
        if kp_loss is not None:
            parts["keypoint"] = float(kp_loss.detach())
            aux_loss = (0.0 if aux_loss is None else aux_loss) + self.cfg.keypoint_weight * kp_loss
        if aux_loss is not None:
            loss = loss + aux_loss
        if self.teacher is None:
            return loss, parts
        with torch.no_grad():
            t_logits = self.teacher.forward_train(
                batch.images, batch.instr_ids, proprio, inp, attention="bidirectional"
            )
        kl = _kl_teacher_to_student(t_logits, logits, m)
        parts["kl"] = float(kl.detach())
        aux_term = 0.0 if aux_loss is None else aux_loss
        return self.cfg.kl_weight * kl + self.cfg.ce_weight * ce + aux_term, parts

    def _aux_loss(self, aux: torch.Tensor | None, batch: ChunkBatch) -> torch.Tensor | None:
        """MSE of the standardised scene-state prediction (None without head, data or weight)."""
        if aux is None or batch.scene_state is None or self.cfg.aux_weight <= 0.0:
            return None
        target = (batch.scene_state - self.aux_mean) / self.aux_std
        return F.mse_loss(aux.float(), target)

    def _keypoint_targets(self, uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """uv [B, 2] in 0..1 (NaN = not visible) -> valid [B], token index [B], offset in the patch [B, 2]."""
        side = math.isqrt(self.model.num_image_tokens)
        valid = torch.isfinite(uv).all(dim=1)
        grid = torch.nan_to_num(uv, nan=0.0).clamp(0.0, 1.0 - 1e-6) * side
        cell = grid.floor()
        index = (cell[:, 1] * side + cell[:, 0]).long()
        return valid, index, grid - cell

    def _keypoint_loss(self, kp: torch.Tensor | None, batch: ChunkBatch) -> torch.Tensor | None:
        """CE over image tokens for the block's patch + L1 on its offset inside the patch."""
        if kp is None or batch.block_uv is None or self.cfg.keypoint_weight <= 0.0:
            return None
        valid, index, offset = self._keypoint_targets(batch.block_uv)
        if not bool(valid.any()):
            return kp.sum() * 0.0
        kp, index, offset = kp[valid].float(), index[valid], offset[valid]
        ce = F.cross_entropy(kp[..., 0], index)
        rows = torch.arange(len(index))
        l1 = F.l1_loss(torch.sigmoid(kp[rows, index, 1:3]), offset)
        return ce + 5.0 * l1

    @torch.inference_mode()
    def evaluate(self) -> dict:
        """Validation CE / accuracy on the fixed batch and mask, and mean |action error| of the argmax."""
        self.model.eval()
        b = self.val_fixed
        m = self.val_mask.reshape(self.val_mask.shape[0], -1)
        bins = self._bins(b)
        logits, aux = self.model.forward_train(
            b.images, b.instr_ids, b.proprio, _masked_input(bins, m), return_aux=True
        )
        pred = logits.argmax(-1)
        ce = float(F.cross_entropy(logits[m].float(), bins[m]))
        acc = float((pred[m] == bins[m]).float().mean())
        tok = self.model.action_tokenizer
        pred_full = torch.where(m, pred, bins).reshape(len(b.actions), self.model.config.horizon, -1).numpy()
        err = np.abs(tok.space.to_absolute(tok.decode(pred_full), b.proprio.numpy()) - b.actions)
        self.model.train()
        out = {"val_ce": ce, "val_acc": acc, "val_abs_err": float(err[..., :7].mean())}
        kp = aux["keypoint"]
        if kp is not None and b.block_uv is not None:
            valid, index, _ = self._keypoint_targets(b.block_uv)
            if bool(valid.any()):
                out["val_keypoint_acc"] = float((kp[valid][..., 0].argmax(dim=1) == index[valid]).float().mean())
        aux = aux["state"]
        if aux is not None and b.scene_state is not None:
            # block-to-grasp offset error in metres: how well the model knows where to go
            pred_state = aux * self.aux_std + self.aux_mean
            out["val_aux_offset_err_m"] = float((pred_state[:, 3:6] - b.scene_state[:, 3:6]).norm(dim=1).mean())
        return out

    # -- loop ---------------------------------------------------------------------------------
    def run(self) -> dict:
        cfg = self.cfg
        rows: list[dict] = []
        self.model.train()
        t0 = time.perf_counter()
        bar = tqdm(range(cfg.steps), desc=f"train {cfg.stage}", unit="step", dynamic_ncols=True)
        for step in bar:
            lr = _lr_at(step, cfg)
            for g in self.opt.param_groups:
                g["lr"] = lr
            batch = self.train_set.sample(cfg.batch_size, self.rng)
            loss, parts = self._loss(batch, self._mask(cfg.batch_size, self.gen))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.opt.step()
            row = {"step": step + 1, "time_s": time.perf_counter() - t0, "loss": float(loss.detach()), "lr": lr}
            row.update(parts)
            if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps or step == 0:
                row.update(self.evaluate())
                shown = {"loss": f"{float(loss.detach()):.3f}", "val_ce": f"{row['val_ce']:.3f}"}
                if "val_keypoint_acc" in row:
                    shown["kp_acc"] = f"{row['val_keypoint_acc']:.2f}"
                bar.set_postfix(shown)
            rows.append(row)
            if cfg.save_every and (step + 1) % cfg.save_every == 0 and step + 1 < cfg.steps:
                self.model.eval()
                self.model.save_pretrained(self.out / f"step_{step + 1}")
                self.model.train()
        self.model.eval()
        self.model.save_pretrained(self.out)
        summary = self._write_logs(rows)
        return summary

    def _write_logs(self, rows: list[dict]) -> dict:
        keys = sorted({k for r in rows for k in r}, key=lambda k: (k != "step", k))
        with open(self.out / "log.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
        plot_curves({self.cfg.stage: rows}, self.out / "loss_curve.png")
        evals = [r for r in rows if "val_ce" in r]
        summary = {
            "stage": self.cfg.stage,
            "steps": self.cfg.steps,
            "wall_time_s": rows[-1]["time_s"],
            "final_train_loss": float(np.mean([r["loss"] for r in rows[-20:]])),
            "final_val": {k: evals[-1][k] for k in ("val_ce", "val_acc", "val_abs_err")},
            "train_frames": len(self.train_set),
            "val_frames": len(self.val_set),
            "params": sum(p.numel() for p in self.model.parameters()),
            "config": asdict(self.cfg),
        }
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary


def _instruction_encoder(model_cfg: DVLAConfig):
    from fast_dvla_ros.core.vocab import ByteInstructionTokenizer

    return ByteInstructionTokenizer(model_cfg.instruction_max_len).encode


def plot_curves(runs: dict[str, list[dict]], path: Path, metric: str = "val_ce") -> None:
    """Training loss (thin) and validation metric (markers) per run against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, rows in runs.items():
        steps = [r["step"] for r in rows]
        axes[0].plot(steps, [r["loss"] for r in rows], lw=0.7, label=name)
        ev = [r for r in rows if metric in r]
        axes[1].plot([r["step"] for r in ev], [r[metric] for r in ev], marker="o", ms=3, label=name)
    axes[0].set(title="training loss", xlabel="step", yscale="log")
    axes[1].set(title=f"validation {metric}", xlabel="step")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("stage", choices=["teacher", "distill", "scratch"])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--teacher-dir")
    p.add_argument("--init-from", help="teacher/scratch: continue from this checkpoint (teacher: a block-causal "
                   "one is converted to bidirectional attention, the prefix isolated)")
    p.add_argument("--steps", type=int, default=TrainConfig.steps)
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--seed", type=int, default=TrainConfig.seed)
    p.add_argument("--preset", default=TrainConfig.preset)
    p.add_argument("--eval-every", type=int, default=TrainConfig.eval_every)
    p.add_argument("--ce-weight", type=float, default=TrainConfig.ce_weight)
    p.add_argument("--num-frames", type=int, choices=(1, 2), default=TrainConfig.num_frames,
                   help="stacked camera frames (teacher/scratch)")
    p.add_argument("--save-every", type=int, default=0, help="intermediate checkpoints every N steps")
    p.add_argument("--keypoint-weight", type=float, default=TrainConfig.keypoint_weight,
                   help="weight of the block keypoint loss on the image tokens (0 = off)")
    p.add_argument("--aux-weight", type=float, default=TrainConfig.aux_weight,
                   help="weight of the auxiliary block-pose regression (0 = off)")
    p.add_argument("--threads", type=int, default=TrainConfig.threads, help="torch intra-op threads")
    p.add_argument("--proprio-dropout", type=float, default=TrainConfig.proprio_dropout,
                   help="share of samples trained with the mean pose instead of the measured one")
    p.add_argument("--action-kind", choices=["joint_delta", "joint_position"], default=TrainConfig.action_kind,
                   help="chunk-relative joint targets (default) or absolute ones (teacher/scratch; distill copies)")
    p.add_argument("--noise", choices=["", "uniform", "block_monotone", "masked_tail", "mixed"], default="",
                   help="training mask schedule (default: the stage's own; mixed = either, per sample)")
    p.add_argument("--decoder", default="", type=decoder_spec_argument,
                   help="decoder spec the checkpoint recommends to its runners (default: the stage's, STAGE_DECODERS)")
    p.add_argument("--isolate-prefix", action="store_true",
                   help="teacher: the prefix does not attend to the action tokens (DVLAConfig.prefix_sees_actions)")
    a = p.parse_args(argv)
    return TrainConfig(
        stage=a.stage, data_dir=a.data_dir, out_dir=a.out_dir, teacher_dir=a.teacher_dir, steps=a.steps,
        batch_size=a.batch_size, lr=a.lr, seed=a.seed, preset=a.preset, eval_every=a.eval_every,
        ce_weight=a.ce_weight, threads=a.threads, action_kind=a.action_kind,
        proprio_dropout=a.proprio_dropout, aux_weight=a.aux_weight, save_every=a.save_every, num_frames=a.num_frames,
        keypoint_weight=a.keypoint_weight, init_from=a.init_from, noise=a.noise, decoder=a.decoder,
        preset_overrides={"prefix_sees_actions": False} if a.isolate_prefix else {},
    )


def main(argv: list[str] | None = None) -> int:
    try:
        summary = StageTrainer(parse_args(argv)).run()
    except CheckpointError as exc:  # --teacher-dir / --init-from corrupt or truncated: one line, no traceback
        print(f"fast_dvla_ros.train.trainer: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: summary[k] for k in ("stage", "steps", "wall_time_s", "final_val")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
