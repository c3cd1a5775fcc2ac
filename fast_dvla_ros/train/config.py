"""One training run's settings (``TrainConfig``) and the command line generated from them, torch-free.

Every field of ``TrainConfig`` is a ``--flag`` of ``python -m fast_dvla_ros.train.trainer`` with the help
text and choices given beside the field, so a setting added here is settable, documented and defaulted in
one place (``stage`` is the positional argument; fields without a default are required).
"""

from __future__ import annotations

import argparse
import json
import typing
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from typing import Any, Literal

from fast_dvla_ros.core.decoder_options import decoder_spec_argument

Stage = Literal["teacher", "distill", "scratch"]
STAGES: tuple[str, ...] = typing.get_args(Stage)
NOISE_SCHEDULES = ("uniform", "block_monotone", "masked_tail", "mixed")
# The decoder each stage's checkpoint is meant for, written into its config.json (core/contract.py): the
# baseline dVLA's own decoder for the teacher; Fast-dVLA's pipeline for the students, at one forward per
# block (n = 1) for the distilled student, which picks more with it, and at the paper's n = 2 for the
# students trained from scratch, which release the block early at n = 1 (bench/RESULTS.md section 1).
STAGE_DECODERS: dict[str, str] = {"teacher": "bidirectional", "distill": "pipelined:n=1", "scratch": "pipelined"}


def _cli(help: str, **add_argument: Any) -> dict[str, Any]:
    """A field's metadata: its command-line help and more ``add_argument`` keywords (choices, type, ...)."""
    return {"help": help, **add_argument}


@dataclass
class TrainConfig:
    stage: Stage = field(metadata=_cli("teacher: bidirectional masked-diffusion SFT; distill: block-causal student "
                                       "from a frozen teacher; scratch: block-causal student from random weights",
                                       choices=STAGES))
    data_dir: str = field(metadata=_cli("demonstration directories, comma-separated"))
    out_dir: str = field(metadata=_cli("where the checkpoint, log.csv, loss_curve.png and summary.json go"))
    steps: int = field(default=1500, metadata=_cli("optimizer steps"))
    batch_size: int = field(default=32, metadata=_cli("samples per step"))
    lr: float = field(default=1e-3, metadata=_cli("peak learning rate (linear warm-up, then cosine decay)"))
    min_lr_ratio: float = field(default=0.05, metadata=_cli("the cosine schedule ends at lr * this"))
    lr_schedule_steps: int = field(default=0, metadata=_cli("length of the cosine schedule (0 = --steps; longer = "
                                                            "stop before it ends)"))
    warmup_steps: int = field(default=50, metadata=_cli("linear learning-rate warm-up steps"))
    weight_decay: float = field(default=0.01, metadata=_cli("AdamW weight decay"))
    grad_clip: float = field(default=1.0, metadata=_cli("gradient norm clip"))
    seed: int = field(default=0, metadata=_cli("seed of the weights, the batches, the masks and the "
                                               "train/validation split"))
    preset: str = field(default="sim", metadata=_cli("model size preset (DVLAConfig.preset)"))
    preset_overrides: dict = field(default_factory=dict,
                                   metadata=_cli("DVLAConfig fields over the preset, as JSON", type=json.loads))
    action_kind: str = field(default="joint_delta", metadata=_cli(
        "chunk-relative joint targets or absolute ones (teacher/scratch; distill copies the teacher's); see "
        "ActionSpace", choices=("joint_delta", "joint_position")))
    # In the demonstrations the arm's pose already encodes where the expert is heading, so a policy can
    # imitate from proprio alone and never learn to find the block in the image (measured: with 0.0 the
    # teacher's first chunk was uncorrelated with the block's position, 0/10 picks).
    proprio_dropout: float = field(default=0.5, metadata=_cli(
        "share of samples trained with the dataset's mean pose instead of the measured one"))
    # Without the auxiliary loss the policies fitted the demonstrations yet ignored where the block was
    # (first chunk nearly the same in every episode, 0-10% picks): the action loss alone gave the vision
    # layers too weak a signal to localise a few-pixel block.
    aux_weight: float = field(default=1.0, metadata=_cli(
        "weight of the auxiliary regression of the block's pose and its offset from the grasp point (recorded "
        "scene_state) from the pooled prefix (0 = off; used only when the data has scene_state)"))
    # With only the pooled regression above the teacher still guessed the mean block position on the first
    # frame (4 cm off, measured) and used the arm's pose as a proxy later on.
    keypoint_weight: float = field(default=1.0, metadata=_cli(
        "weight of the keypoint loss on the image tokens (DVLAConfig.keypoint_head): which patch holds the "
        "block's centre, and where in it (0 = off)"))
    keypoint_offset_weight: float = field(default=5.0, metadata=_cli(
        "weight of the L1 on the block centre's offset inside its patch (patch units) beside the "
        "cross-entropy over patches"))
    num_frames: int = field(default=2, metadata=_cli(
        "stacked camera frames for teacher/scratch (distill copies the teacher's); two make the belt speed "
        "observable", choices=(1, 2)))
    # "mixed" lets a bidirectional model also learn the time-ordered states (early blocks decoded, later
    # ones masked) the students are trained on; "masked_tail" predicts a step often without any later step
    # visible (bench/context_dependence.py).
    noise: str = field(default="", metadata=_cli(
        "training mask schedule: '' = the stage's own (teacher: uniform, students: block_monotone); mixed = "
        "one of the two per sample; masked_tail = every block from a random one on masked",
        choices=("", *NOISE_SCHEDULES)))
    # Latency-compensated decoding (core/decoders/base.py): the runtime commits the steps the executor runs
    # while a chunk is decoded as its first blocks; a student that never saw a clean leading block must learn
    # to continue one. Written into the checkpoint's contract (action_prefix_steps) when used.
    action_prefix_prob: float = field(default=0.0, metadata=_cli(
        "block-causal stages: share of training samples whose first k blocks are clean (k up to "
        "--action-prefix-steps)"))
    action_prefix_steps: int = field(default=0, metadata=_cli(
        "longest clean action prefix in training, in steps; the runtime never commits a longer one"))
    teacher_dir: str | None = field(default=None, metadata=_cli("distill: the frozen teacher's checkpoint"))
    init_from: str | None = field(default=None, metadata=_cli(
        "start from this checkpoint (its config and bins): teacher/scratch continue a run (teacher: a "
        "block-causal one is converted to bidirectional attention, the prefix isolated); distill: an earlier "
        "student"))
    kl_weight: float = field(default=1.0, metadata=_cli("distill: weight of KL(teacher || student)"))
    ce_weight: float = field(default=0.5, metadata=_cli("distill: weight of the ground-truth cross-entropy "
                                                        "added to the KL"))
    eval_every: int = field(default=50, metadata=_cli("validate every N steps"))
    save_every: int = field(default=0, metadata=_cli("also save a checkpoint to out_dir/step_<N> every N steps "
                                                     "(0 = only at the end)"))
    val_batch: int = field(default=128, metadata=_cli("validation samples (one fixed batch and mask, comparable "
                                                      "across runs)"))
    val_fraction: float = field(default=0.1, metadata=_cli("share of episodes held out for validation"))
    decoder: str = field(default="", metadata=_cli(
        "decoder spec the checkpoint recommends to its runners ('' = the stage's, STAGE_DECODERS)",
        type=decoder_spec_argument))
    # On a 2-core machine shared with a simulator or other jobs, torch's spinning OpenMP workers slow a
    # step down ~8x (measured); pass 2 on an idle machine.
    threads: int = field(default=1, metadata=_cli("torch intra-op threads"))


def _add_field(p: argparse.ArgumentParser, f: Field, hint: Any) -> None:
    kw = dict(f.metadata)
    if f.name == "stage":
        p.add_argument("stage", **kw)
        return
    if f.default is not MISSING:
        kw["default"] = f.default
    elif f.default_factory is not MISSING:
        kw["default"] = f.default_factory()
    else:
        kw["required"] = True
    if hint is bool:
        kw["action"] = argparse.BooleanOptionalAction
    else:
        kw.setdefault("type", next((t for t in typing.get_args(hint) if t is not type(None)), hint))
    p.add_argument("--" + f.name.replace("_", "-"), **kw)


def build_parser(description: str = "") -> argparse.ArgumentParser:
    """``--flag`` per ``TrainConfig`` field, plus ``--isolate-prefix`` (a preset override by name)."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    hints = typing.get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        _add_field(p, f, hints[f.name])
    p.add_argument("--isolate-prefix", action="store_true",
                   help="the prefix does not attend to the action tokens (preset override prefix_sees_actions=false)")
    return p


def parse_args(argv: list[str] | None = None, description: str = "") -> TrainConfig:
    a = vars(build_parser(description).parse_args(argv))
    isolate = a.pop("isolate_prefix")
    cfg = TrainConfig(**a)
    if isolate:
        cfg = replace(cfg, preset_overrides={**cfg.preset_overrides, "prefix_sees_actions": False})
    return cfg
