"""The trainer's command line is generated from TrainConfig: every field settable, defaults from the fields."""

from __future__ import annotations

from dataclasses import MISSING, fields

import pytest

from fast_dvla_ros.train.config import NOISE_SCHEDULES, TrainConfig, build_parser, parse_args

REQUIRED = ["teacher", "--data-dir", "d", "--out-dir", "o"]


def test_defaults_come_from_the_fields() -> None:
    assert parse_args(REQUIRED) == TrainConfig(stage="teacher", data_dir="d", out_dir="o")


def test_every_field_is_a_documented_flag() -> None:
    parser = build_parser()
    flags = {a.dest: a for a in parser._actions}
    for f in fields(TrainConfig):
        assert f.name in flags, f"{f.name} cannot be set from the command line"
        assert flags[f.name].help, f"--{f.name} has no help text"
        if f.default is not MISSING:
            assert flags[f.name].default == f.default, f.name


def test_flags_set_their_fields() -> None:
    cfg = parse_args([*REQUIRED, "--warmup-steps", "5", "--kl-weight", "0.25", "--val-fraction", "0.2",
                      "--teacher-dir", "t", "--num-frames", "1", "--noise", "mixed",
                      "--preset-overrides", '{"image_size": 32}', "--isolate-prefix", "--decoder", "pipelined:n=1"])
    assert (cfg.warmup_steps, cfg.kl_weight, cfg.val_fraction, cfg.teacher_dir) == (5, 0.25, 0.2, "t")
    assert cfg.num_frames == 1 and cfg.noise == "mixed" and cfg.decoder == "pipelined:n=1"
    assert cfg.preset_overrides == {"image_size": 32, "prefix_sees_actions": False}
    assert "masked_tail" in NOISE_SCHEDULES


@pytest.mark.parametrize("bad", [["--num-frames", "3"], ["--noise", "cosine"], ["--decoder", "nope"]])
def test_bad_values_are_usage_errors(bad: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args([*REQUIRED, *bad])
