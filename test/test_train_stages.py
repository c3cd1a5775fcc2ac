"""The three training stages run end to end on real demonstrations and the models learn.

Small on purpose (tiny preset, 32 px, two expert episodes): this checks the machinery — data
loading, masks, losses, the teacher -> student hand-over, checkpoints — not the final skill,
which bench/RESULTS.md measures in closed loop.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from fast_dvla_ros.core.model import DVLA
from fast_dvla_ros.train.demos import generate
from fast_dvla_ros.train.pipeline import (
    DemoStage,
    build_parser,
    convergence_report,
    main,
    recipe,
    round_stages,
    speedup_table,
    steps_to_reach,
)
from fast_dvla_ros.train.trainer import StageTrainer, TrainConfig

TINY = {"image_size": 32}


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demos") / "d"
    generate(out, episodes=2, seed0=3, sim_config={"image_size": 32}, progress=False)
    return out


def _cfg(stage: str, demos: Path, out: Path, steps: int, **kw) -> TrainConfig:
    return TrainConfig(
        stage=stage, data_dir=str(demos), out_dir=str(out), steps=steps, batch_size=8, preset="tiny",
        preset_overrides=TINY, eval_every=10, val_batch=16, warmup_steps=5, lr=3e-3, **kw,
    )


def _log(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def _assert_learns(rows: list[dict]) -> None:
    """Training loss falls well below chance (ln 256 = 5.5) and the held-out episode's CE falls too."""
    losses = [float(r["loss"]) for r in rows]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 1.0, f"training loss did not drop: {first:.2f} -> {last:.2f}"
    evals = [float(r["val_ce"]) for r in rows if r.get("val_ce")]
    assert evals[-1] < evals[0] - 0.2, f"validation CE did not drop: {evals}"


@pytest.fixture(scope="module")
def teacher_dir(demos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("teacher")
    StageTrainer(_cfg("teacher", demos, out, steps=80)).run()
    return out


def test_teacher_learns_and_saves_a_bidirectional_checkpoint(teacher_dir: Path) -> None:
    rows = _log(teacher_dir / "log.csv")
    _assert_learns(rows)
    model = DVLA.from_pretrained(teacher_dir)
    assert model.config.attention == "bidirectional"
    assert (teacher_dir / "loss_curve.png").stat().st_size > 1000
    summary = json.loads((teacher_dir / "summary.json").read_text())
    assert summary["stage"] == "teacher" and summary["steps"] == 80


def test_distilled_student_starts_from_the_teacher_and_is_block_causal(teacher_dir: Path, demos: Path,
                                                                         tmp_path: Path) -> None:
    trainer = StageTrainer(_cfg("distill", demos, tmp_path, steps=6, teacher_dir=str(teacher_dir)))
    teacher = DVLA.from_pretrained(teacher_dir)
    for (name, a), b in zip(trainer.model.state_dict().items(), teacher.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    trainer.run()
    student = DVLA.from_pretrained(tmp_path)
    assert student.config.attention == "block_causal"
    rows = _log(tmp_path / "log.csv")
    assert all(float(r["kl"]) >= 0.0 for r in rows)  # a KL divergence is never negative
    assert student.action_tokenizer.to_dict() == teacher.action_tokenizer.to_dict()


def test_auxiliary_head_learns_the_block_pose_and_is_off_with_zero_weight(teacher_dir: Path, demos: Path,
                                                                         tmp_path: Path) -> None:
    model = DVLA.from_pretrained(teacher_dir)
    assert model.config.aux_state_dim == 11 and model.aux_head is not None  # 8 recorded + block velocity
    assert model.config.keypoint_head and model.keypoint_head is not None
    rows = _log(teacher_dir / "log.csv")
    aux = [float(r["aux"]) for r in rows]
    assert sum(aux[-5:]) / 5 < 0.7 * sum(aux[:5]) / 5, "auxiliary loss did not drop"
    assert all(r.get("val_aux_offset_err_m") for r in rows if r.get("val_ce"))
    kp = [float(r["keypoint"]) for r in rows]
    assert sum(kp[-5:]) / 5 < sum(kp[:5]) / 5, "keypoint loss did not drop"
    off = StageTrainer(_cfg("teacher", demos, tmp_path, steps=1, aux_weight=0.0, keypoint_weight=0.0))
    assert off.model.aux_head is None and off.model.config.aux_state_dim == 0
    assert off.model.keypoint_head is None and not off.model.config.keypoint_head


def test_scratch_student_learns_from_random_weights(demos: Path, tmp_path: Path) -> None:
    StageTrainer(_cfg("scratch", demos, tmp_path, steps=80)).run()
    _assert_learns(_log(tmp_path / "log.csv"))
    assert DVLA.from_pretrained(tmp_path).config.attention == "block_causal"


def test_convergence_report_counts_steps_to_the_scratch_final_loss() -> None:
    scratch = [{"step": s, "val_ce": v} for s, v in [(10, 3.0), (20, 2.0), (30, 1.5)]]
    distill = [{"step": s, "val_ce": v} for s, v in [(10, 1.6), (20, 1.4), (30, 1.2)]]
    assert steps_to_reach(scratch, 1.5) == 30
    assert convergence_report(distill, scratch) == {"threshold_val_ce": 1.5, "distill_steps": 20,
                                                     "scratch_steps": 30}


def test_pipeline_refuses_to_skip_the_long_scratch_student_the_teacher_starts_from(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--run-dir", str(tmp_path), "--scratch-long-steps", "0"])
    assert not any(tmp_path.iterdir())  # refused before generating anything


def test_each_round_fine_tunes_the_last_student_into_a_teacher_and_distils_from_it(tmp_path: Path) -> None:
    stages = round_stages(tmp_path, 3, first_teacher_steps=10, teacher_steps=30, student_steps=6, data_dir="d")
    assert [(c.stage, Path(c.out_dir).name) for c in stages] == [
        ("teacher", "teacher"), ("distill", "distill"), ("teacher", "teacher_r2"), ("distill", "distill_r2"),
        ("teacher", "teacher_r3"), ("distill", "distill_r3")]
    teachers, students = stages[0::2], stages[1::2]
    assert [Path(c.init_from).name for c in teachers] == ["scratch_long", "distill", "distill_r2"]
    assert [c.steps for c in teachers] == [10, 30, 30] and all(c.steps == 6 for c in students)
    assert [c.teacher_dir for c in students] == [c.out_dir for c in teachers]


def test_the_recipe_lists_every_stage_in_order_with_its_hyperparameters(tmp_path: Path) -> None:
    stages = recipe(tmp_path, build_parser().parse_args(["--run-dir", str(tmp_path), "--rounds", "2"]))
    names = [Path(s.out if isinstance(s, DemoStage) else s.out_dir).name for s in stages]
    assert names == ["demos", "demos_dart", "teacher_base", "demos_takeover", "scratch", "scratch_long",
                     "teacher", "distill", "teacher_r2", "distill_r2"]
    clean, dart, base, takeover = stages[:4]
    assert clean.action_noise == 0.0 and dart.action_noise == 0.03
    assert base.data_dir == str(tmp_path / "demos_dart") and (base.steps, base.lr_schedule_steps) == (2000, 3000)
    # the recovery data is driven by the base policy's intermediate checkpoint, on seeds of its own
    assert takeover.takeover_checkpoint == tmp_path / "teacher_base" / f"step_{base.save_every}"
    assert takeover.command()[-5:] == ["--takeover-checkpoint", str(takeover.takeover_checkpoint),
                                       "--takeover-steps", "10", "70"] and takeover.seed0 == 5000
    trained = [s for s in stages[4:] if isinstance(s, TrainConfig)]
    assert all(s.data_dir.split(",") == [str(tmp_path / d) for d in ("demos", "demos_dart", "demos_takeover")]
               for s in trained)
    assert [s.lr for s in trained] == [1e-3, 1e-3, 3e-4, 5e-4, 3e-4, 5e-4]


def test_pipeline_refuses_zero_rounds(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--run-dir", str(tmp_path), "--rounds", "0"])
    assert not any(tmp_path.iterdir())


def test_speedup_table_measures_steps_to_target_and_bounds_unreached_targets() -> None:
    distill = [{"step": s, "val_ce": v} for s, v in [(1, 2.5), (10, 2.0), (20, 1.4)]]
    scratch = [{"step": s, "val_ce": v} for s, v in [(10, 3.0), (50, 2.0), (100, 1.8)]]
    rows = speedup_table(distill, scratch, [10, 20])
    assert rows[0] == {"distill_step": 10, "val_ce": 2.0, "scratch_steps": 50, "ratio": 5.0, "ratio_is_bound": False}
    assert rows[1]["scratch_steps"] is None and rows[1]["ratio_is_bound"] and rows[1]["ratio"] == 5.0
    with pytest.raises(ValueError):
        speedup_table(distill, scratch, [15])


def test_proprio_dropout_replaces_inputs_by_the_mean_pose_only_in_training(demos: Path, tmp_path: Path) -> None:
    trainer = StageTrainer(_cfg("scratch", demos, tmp_path, steps=1, proprio_dropout=1.0))
    batch = trainer.train_set.sample(4, trainer.rng)
    trainer.model.train()
    dropped = trainer._drop_proprio(batch.proprio)
    assert torch.allclose(dropped, trainer.model.proprio_mean.expand_as(dropped))
    assert not torch.allclose(dropped, batch.proprio)
    trainer.model.eval()
    assert trainer._drop_proprio(batch.proprio) is batch.proprio


def test_init_from_continues_a_checkpoint_and_checks_its_attention(teacher_dir: Path, demos: Path,
                                                                  tmp_path: Path) -> None:
    cont = StageTrainer(_cfg("teacher", demos, tmp_path / "t", steps=1, init_from=str(teacher_dir)))
    saved = DVLA.from_pretrained(teacher_dir)
    for (name, a), b in zip(cont.model.state_dict().items(), saved.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="attention"):  # a bidirectional model cannot continue a student
        StageTrainer(_cfg("distill", demos, tmp_path / "d", steps=1, teacher_dir=str(teacher_dir),
                          init_from=str(teacher_dir)))


def test_teacher_starts_from_a_block_causal_checkpoint_with_its_weights_and_bidirectional_actions(
        demos: Path, tmp_path: Path) -> None:
    """A block-causal model is a pretrained backbone for the teacher (as OpenVLA is for DD-VLA)."""
    StageTrainer(_cfg("scratch", demos, tmp_path / "s", steps=1)).run()
    student = DVLA.from_pretrained(tmp_path / "s")
    teacher = StageTrainer(_cfg("teacher", demos, tmp_path / "t", steps=1, init_from=str(tmp_path / "s"))).model
    assert teacher.config.attention == "bidirectional" and not teacher.config.prefix_sees_actions
    for (name, a), b in zip(teacher.state_dict().items(), student.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    # same weights, other mask: the actions now see later blocks, the prefix still sees only itself
    mask = teacher.attention_mask("bidirectional")
    p = teacher.prefix_len
    assert bool((mask[p, p:] == 0).all()) and bool((mask[:p, p:] < 0).all())
    assert not torch.equal(mask, student.attention_mask("block_causal"))


def test_scratch_from_a_teacher_starts_where_the_distilled_student_starts(teacher_dir: Path, demos: Path,
                                                                        tmp_path: Path) -> None:
    """The distillation race's fair baseline: block-causal SFT from the teacher's weights and mask config."""
    sft = StageTrainer(_cfg("scratch", demos, tmp_path / "s", steps=1, init_from=str(teacher_dir))).model
    student = StageTrainer(_cfg("distill", demos, tmp_path / "d", steps=1, teacher_dir=str(teacher_dir))).model
    # same architecture and mask; only the run-time contract differs (each stage names its default decoder)
    assert replace(sft.config, runtime=student.config.runtime) == student.config
    assert sft.config.attention == "block_causal"
    for (name, a), b in zip(sft.state_dict().items(), student.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(sft.attention_mask("block_causal"), student.attention_mask("block_causal"))


def test_noise_option_sets_the_teacher_mask_schedule_and_rejects_unknown_names(demos: Path, tmp_path: Path) -> None:
    """uniform: every block alike; block_monotone: later blocks more masked; mixed: in between."""
    trainer = StageTrainer(_cfg("teacher", demos, tmp_path, steps=1))

    def first_and_last_block_ratio(noise: str) -> tuple[float, float]:
        mask = trainer._mask(4000, torch.Generator().manual_seed(0), noise).float().mean(dim=(0, 2))
        return float(mask[0]), float(mask[-1])

    uni, mono, mixed = (first_and_last_block_ratio(n) for n in ("uniform", "block_monotone", "mixed"))
    assert abs(uni[1] - uni[0]) < 0.03
    assert mono[1] - mono[0] > 0.25
    assert 0.4 * (mono[1] - mono[0]) < mixed[1] - mixed[0] < 0.6 * (mono[1] - mono[0])
    assert first_and_last_block_ratio("") == uni  # the teacher's own schedule by default
    tail = trainer._mask(500, torch.Generator().manual_seed(0), "masked_tail")
    assert bool(tail[:, -1].all())  # every sample's last block is fully masked
    assert 0.05 < float(tail[:, 0].all(dim=1).float().mean()) < 0.25  # the masked tail starts at a random block
    with pytest.raises(ValueError, match="noise"):
        trainer._mask(2, torch.Generator(), "cosine")
