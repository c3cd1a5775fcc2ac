"""A checkpoint carries its run-time contract: the trainer writes it, ``Policy.load`` reads it."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from fast_dvla_ros.core.checkpoint import CheckpointError
from fast_dvla_ros.core.config import DVLAConfig
from fast_dvla_ros.core.contract import LEGACY_ACTION_RATE_HZ, ActionSpaceSummary, RuntimeContract
from fast_dvla_ros.core.decoder_options import DecoderSpec
from fast_dvla_ros.core.model import DVLA
from fast_dvla_ros.core.policy import Policy

MODELS = Path(__file__).resolve().parents[1] / "models"
# The decoder every entry point ran each shipped checkpoint with before the checkpoints said so themselves.
SHIPPED = {
    "student_distilled": "pipelined:n=1",
    "student_scratch_long": "pipelined:n=2",
    "student_scratch": "pipelined:n=2",
    "teacher_bidirectional": "bidirectional:steps=12",
}


def _contract(decoder: str = "block_cache:tau_conf=0.3", rate: float = 15.0) -> RuntimeContract:
    names = (*(f"panda_joint{i}" for i in range(1, 8)), "gripper_width")
    return RuntimeContract(rate, ActionSpaceSummary("joint_position", names), DecoderSpec.parse(decoder).full())


def test_config_json_round_trip() -> None:
    cfg = replace(DVLAConfig.preset("tiny"), runtime=_contract())
    text = cfg.to_json()
    assert json.loads(text)["runtime"]["decoder"] == {"name": "block_cache", "options": {"tau_conf": 0.3}}
    assert DVLAConfig.from_json(text) == cfg
    assert DVLAConfig.from_json(DVLAConfig.preset("tiny").to_json()).runtime is None
    with pytest.raises(ValueError, match="unknown runtime contract keys"):
        DVLAConfig.from_dict({**cfg.to_dict(), "runtime": {**_contract().to_dict(), "rate": 1}})


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[DVLA, Path]:
    torch.manual_seed(0)
    return DVLA(DVLAConfig.preset("tiny")), tmp_path / "ck"


def test_policy_load_reads_the_contract(tiny: tuple[DVLA, Path]) -> None:
    model, ck = tiny
    model.config = replace(model.config, runtime=_contract())
    model.save_pretrained(ck)
    policy = Policy.load(ck)  # no decoder given: the checkpoint's
    assert policy.decoder_name == "block_cache" and policy.decoder.tau_conf == 0.3
    assert policy.action_rate_hz == 15.0 and policy.contract_note is None
    assert policy.frame_gap_s() == pytest.approx(model.config.frame_gap / 15.0)
    assert Policy.load(ck, decoder="block_cache").decoder.tau_conf == 0.5  # a named decoder: its defaults
    assert Policy.load(ck, decoder="pipelined:n=1").decoder.n == 1


def test_an_old_config_loads_with_the_old_defaults_and_a_note(
    tiny: tuple[DVLA, Path], caplog: pytest.LogCaptureFixture
) -> None:
    model, ck = tiny
    model.save_pretrained(ck)
    raw = json.loads((ck / "config.json").read_text())
    raw.pop("runtime")  # as written before checkpoints carried a contract
    (ck / "config.json").write_text(json.dumps(raw))
    with caplog.at_level(logging.WARNING, logger="fast_dvla_ros.core.policy"):
        policy = Policy.load(ck)
    assert policy.decoder_name == "pipelined" and policy.decoder.n == 2  # Policy.load's old default
    assert policy.action_rate_hz == LEGACY_ACTION_RATE_HZ == 30.0
    assert "has no 'runtime' contract" in policy.contract_note and "action_rate_hz 30" in policy.contract_note
    assert policy.contract_note in caplog.text


def test_a_contract_that_contradicts_the_tokenizer_is_refused(tiny: tuple[DVLA, Path]) -> None:
    model, ck = tiny
    bad = replace(_contract(), action_space=ActionSpaceSummary("joint_delta", ("a",) * 8))
    model.config = replace(model.config, runtime=bad)
    model.save_pretrained(ck)
    with pytest.raises(CheckpointError, match=r"differs from action_tokenizer\.json"):
        Policy.load(ck)


@pytest.mark.parametrize(("name", "spec"), sorted(SHIPPED.items()))
def test_shipped_checkpoints_recommend_the_decoder_used_so_far(name: str, spec: str) -> None:
    contract = DVLAConfig.load(MODELS / name / "config.json").runtime
    assert contract is not None and contract.decoder == DecoderSpec.parse(spec).full()
    assert contract.action_rate_hz == 30.0 and contract.action_space.kind == "joint_delta"


def test_the_trainer_writes_the_contract(tmp_path: Path) -> None:
    from fast_dvla_ros.train.demos import generate
    from fast_dvla_ros.train.trainer import StageTrainer, TrainConfig

    demos = tmp_path / "demos"
    generate(demos, episodes=1, seed0=3, sim_config={"image_size": 32}, progress=False)
    common = dict(data_dir=str(demos), steps=1, batch_size=4, preset="tiny", preset_overrides={"image_size": 32},
                  eval_every=10, val_batch=4, warmup_steps=1)  # fmt: skip
    StageTrainer(TrainConfig(stage="scratch", out_dir=str(tmp_path / "s"), **common)).run()
    StageTrainer(TrainConfig(stage="scratch", out_dir=str(tmp_path / "c"), decoder="block_cache", **common)).run()
    policy = Policy.load(tmp_path / "s")
    assert (
        policy.contract_note is None
        and policy.action_rate_hz == json.loads((demos / "meta.json").read_text())["control_hz"]
    )
    assert policy.decoder_spec == DecoderSpec.parse("pipelined:n=2").full()  # the scratch stage's
    assert policy.contract.action_space == ActionSpaceSummary("joint_delta", tuple(policy.action_names))
    assert Policy.load(tmp_path / "c").decoder_spec == DecoderSpec.parse("block_cache").full()
