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

A run's settings are a ``TrainConfig`` (train/config.py, which also generates the command line).
Every run writes into its output directory: the checkpoint (``save_pretrained``), ``log.csv``
(step, wall time, train loss, lr, and validation metrics at eval steps), ``loss_curve.png`` and
``summary.json``. Validation uses a fixed batch and a fixed mask so curves are comparable across
runs: the students are scored on block-monotone masks under block-causal attention (how they are
decoded), the teacher on uniform masks under bidirectional attention.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from fast_dvla_ros.core.action_space import ActionSpace, ActionTokenizer
from fast_dvla_ros.core.checkpoint import CheckpointError
from fast_dvla_ros.core.config import DVLAConfig
from fast_dvla_ros.core.contract import ActionSpaceSummary, RuntimeContract
from fast_dvla_ros.core.decoder_options import parse_decoder_spec
from fast_dvla_ros.core.model import DVLA, MASKED_BIN
from fast_dvla_ros.train.chunks import ChunkBatch, ChunkSampler, load_samplers
from fast_dvla_ros.train.config import NOISE_SCHEDULES, STAGE_DECODERS, TrainConfig, parse_args
from fast_dvla_ros.train.demos import BLOCK_MINUS_GRASP
from fast_dvla_ros.train.noise import block_monotone_mask, uniform_ratio_mask, with_action_prefix

__all__ = ["STAGE_DECODERS", "StageTrainer", "TrainConfig", "action_bins", "main", "parse_args", "plot_curves"]

# The keypoint head's outputs per image token (DVLAConfig.keypoint_head): "the block's centre is in this
# patch" logit, then the centre's (u, v) offset inside the patch.
KEYPOINT_LOGIT, KEYPOINT_OFFSET = 0, slice(1, 3)


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


def _as_block_causal(model: DVLA) -> DVLA:
    """The scratch stage started from a bidirectional teacher: same weights, block-causal actions.

    This is how the distillation stage builds its student (the teacher's config and weights under the
    block-causal mask), so block-causal SFT on ground truth from a teacher checkpoint starts from exactly
    the distilled student's initialisation: the fair half of the distillation race (bench/convergence.py).
    """
    converted = DVLA(replace(model.config, attention="block_causal"), model.action_tokenizer)
    converted.load_state_dict(model.state_dict())
    print("scratch: starting from a bidirectional checkpoint, converted to block_causal attention")
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
            if cfg.stage == "scratch" and self.model.config.attention == "bidirectional":
                self.model = _as_block_causal(self.model)
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
        # and, when training for action prefixes, the same mask with clean leading blocks (val_ce_prefix)
        self.val_mask_prefix = None
        if self._prefix_steps():
            g = torch.Generator().manual_seed(cfg.seed + 3)
            self.val_mask_prefix = with_action_prefix(self.val_mask.clone(), 1.0, self._prefix_steps(), g)

    # -- pieces -------------------------------------------------------------------------------
    def _contract(self) -> RuntimeContract:
        """What the checkpoint tells its runners: the demonstrations' rate, the action space, the decoder."""
        space = self.model.action_tokenizer.space
        return RuntimeContract(
            action_rate_hz=self.train_set.control_hz,
            action_space=ActionSpaceSummary(space.kind, tuple(space.names)),
            decoder=parse_decoder_spec(self.cfg.decoder or STAGE_DECODERS[self.cfg.stage]).full(),
            action_prefix_steps=self._prefix_steps(),
        )

    def _prefix_steps(self) -> int:
        """The longest action prefix this run trains on (0: none; the teacher never decodes with one)."""
        cfg = self.cfg
        if cfg.action_prefix_prob <= 0 or cfg.action_prefix_steps <= 0:
            return 0
        if cfg.stage == "teacher":
            raise ValueError("--action-prefix-* trains block-causal students (distill, scratch), not the teacher")
        return cfg.action_prefix_steps

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
        raise ValueError(f"unknown noise schedule {noise!r} ({', '.join(NOISE_SCHEDULES)})")

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
        ce = self.model.loss(logits, bins, m)
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
        ce = F.cross_entropy(kp[..., KEYPOINT_LOGIT], index)
        rows = torch.arange(len(index))
        l1 = F.l1_loss(torch.sigmoid(kp[rows, index, KEYPOINT_OFFSET]), offset)
        return ce + self.cfg.keypoint_offset_weight * l1

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
        ce = float(self.model.loss(logits, bins, m))
        acc = float((pred[m] == bins[m]).float().mean())
        tok = self.model.action_tokenizer
        pred_full = torch.where(m, pred, bins).reshape(len(b.actions), self.model.config.horizon, -1).numpy()
        err = np.abs(tok.space.to_absolute(tok.decode(pred_full), b.proprio.numpy()) - b.actions)
        self.model.train()
        out = {"val_ce": ce, "val_acc": acc, "val_abs_err": float(err[..., tok.space.joint_dims].mean())}
        if self.val_mask_prefix is not None:
            mp = self.val_mask_prefix.reshape(m.shape)
            logits_p = self.model.forward_train(b.images, b.instr_ids, b.proprio, _masked_input(bins, mp))
            out["val_ce_prefix"] = float(self.model.loss(logits_p, bins, mp))
        kp = aux["keypoint"]
        if kp is not None and b.block_uv is not None:
            valid, index, _ = self._keypoint_targets(b.block_uv)
            if bool(valid.any()):
                hits = kp[valid][..., KEYPOINT_LOGIT].argmax(dim=1) == index[valid]
                out["val_keypoint_acc"] = float(hits.float().mean())
        aux = aux["state"]
        if aux is not None and b.scene_state is not None:
            # block-to-grasp offset error in metres: how well the model knows where to go
            pred_state = aux * self.aux_std + self.aux_mean
            offset = pred_state[:, BLOCK_MINUS_GRASP] - b.scene_state[:, BLOCK_MINUS_GRASP]
            out["val_aux_offset_err_m"] = float(offset.norm(dim=1).mean())
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
            mask = with_action_prefix(self._mask(cfg.batch_size, self.gen), cfg.action_prefix_prob,
                                      self._prefix_steps(), self.gen)  # validation keeps the plain schedule
            loss, parts = self._loss(batch, mask)
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


def main(argv: list[str] | None = None) -> int:
    try:
        summary = StageTrainer(parse_args(argv, __doc__.split("\n\n")[0])).run()
    except CheckpointError as exc:  # --teacher-dir / --init-from corrupt or truncated: one line, no traceback
        print(f"fast_dvla_ros.train.trainer: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: summary[k] for k in ("stage", "steps", "wall_time_s", "final_val")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
