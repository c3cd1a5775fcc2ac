"""Action tokenizer and instruction tokenizer: round trip, clipping, from_stats, serialisation."""

from __future__ import annotations

import numpy as np
import pytest

from fast_dvla_ros.core.action_space import ActionSpace, ActionTokenizer
from fast_dvla_ros.core.vocab import (
    ACTION_OFFSET,
    MASK_ID,
    NUM_SPECIAL,
    PAD_ID,
    ByteInstructionTokenizer,
    bins_to_token_ids,
    token_ids_to_bins,
    vocab_size,
)


@pytest.fixture
def tok() -> ActionTokenizer:
    return ActionTokenizer(ActionSpace.panda_default(), 256)


def test_round_trip_within_half_bin_randomized(tok: ActionTokenizer) -> None:
    rng = np.random.default_rng(1234)
    lo, hi = np.array(tok.space.low), np.array(tok.space.high)
    a = rng.uniform(lo, hi, size=(5000, tok.dim))
    err = np.abs(tok.decode(tok.encode(a)) - a)
    assert np.all(err <= tok.bin_width / 2 + 1e-12)
    assert tok.clip_count.sum() == 0


def test_edges_and_bin_centres(tok: ActionTokenizer) -> None:
    lo, hi = np.array(tok.space.low), np.array(tok.space.high)
    assert np.all(tok.encode(lo) == 0)
    assert np.all(tok.encode(hi) == 255)  # the top edge belongs to the last bin, not bin 256
    centres = tok.decode(np.arange(256)[:, None].repeat(tok.dim, 1))
    assert np.all(tok.encode(centres) == np.arange(256)[:, None])


def test_out_of_range_clipped_and_counted_never_wraps(tok: ActionTokenizer) -> None:
    lo, hi = np.array(tok.space.low), np.array(tok.space.high)
    bins, report = tok.encode_with_report(np.stack([lo - 10.0, hi + 10.0]))
    assert np.all(bins[0] == 0) and np.all(bins[1] == 255)
    assert report.clipped == 2 * tok.dim
    assert tok.clip_count.sum() == 2 * tok.dim
    nan_bins = tok.encode(np.full(tok.dim, np.nan))
    assert np.all(nan_bins == 128)


def test_decode_clips_bad_indices(tok: ActionTokenizer) -> None:
    out = tok.decode(np.array([[-5] * 8, [999] * 8]))
    assert np.allclose(out[0], tok.decode(np.zeros(8, int)))
    assert np.allclose(out[1], tok.decode(np.full(8, 255)))


def test_from_stats_minmax_and_percentile() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(size=(1000, 3))
    data[0, 0] = 100.0  # outlier
    names = ["a", "b", "c"]
    mm = ActionTokenizer.from_stats(data, names, num_bins=64)
    assert mm.space.high[0] == pytest.approx(100.0)
    pc = ActionTokenizer.from_stats(data, names, num_bins=64, method="percentile", percentiles=(1, 99))
    assert pc.space.high[0] < 5.0
    err = np.abs(mm.decode(mm.encode(data)) - data)
    assert np.all(err <= mm.bin_width / 2 + 1e-12)
    const = ActionTokenizer.from_stats(np.ones((10, 1)), ["k"])
    assert const.space.high[0] > const.space.low[0]
    with pytest.raises(ValueError):
        ActionTokenizer.from_stats(np.full((3, 3), np.nan), names)


def test_serialisation_round_trip(tok: ActionTokenizer, tmp_path) -> None:
    tok.save(tmp_path / "t.json")
    back = ActionTokenizer.load(tmp_path / "t.json")
    assert back.space == tok.space and back.num_bins == tok.num_bins


def test_invalid_space_rejected() -> None:
    with pytest.raises(ValueError):
        ActionSpace(["a"], [1.0], [0.0])
    with pytest.raises(ValueError):
        ActionSpace(["a"], [0.0], [1.0], kind="torque")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ActionSpace(["a"], [0.0], [1.0], gripper_index=3)


def test_vocab_layout_has_no_overlap() -> None:
    assert ACTION_OFFSET >= NUM_SPECIAL + 256
    assert MASK_ID < NUM_SPECIAL and PAD_ID < NUM_SPECIAL
    ids = bins_to_token_ids(np.arange(256))
    assert ids.min() == ACTION_OFFSET and ids.max() == vocab_size(256) - 1
    assert np.all(token_ids_to_bins(ids) == np.arange(256))


def test_instruction_tokenizer() -> None:
    t = ByteInstructionTokenizer(16)
    ids = t.encode("Pick the red block")
    assert ids.shape == (16,) and t.decode(ids) == "pick the red b"  # truncated, [EOS] kept
    short = t.encode("go")
    assert t.decode(short) == "go" and short[-1] == PAD_ID
    assert t.encode_batch(["a", "b"]).shape == (2, 16)
    with pytest.raises(TypeError):
        t.encode(None)  # type: ignore[arg-type]


def test_joint_delta_actions_are_relative_to_the_observation_and_round_trip() -> None:
    names = [f"j{i}" for i in range(3)] + ["gripper_width"]
    space = ActionSpace(names, [-0.5, -0.5, -0.5, 0.0], [0.5, 0.5, 0.5, 0.08], kind="joint_delta", gripper_index=3)
    assert space.relative_dims == [0, 1, 2]
    rng = np.random.default_rng(0)
    proprio = rng.uniform(-2, 2, size=(5, 4))
    absolute = proprio[:, None, :] + rng.uniform(-0.4, 0.4, size=(5, 6, 4))
    absolute[..., 3] = 0.04  # the gripper stays absolute
    rel = space.to_relative(absolute, proprio)
    assert np.allclose(rel[..., :3], absolute[..., :3] - proprio[:, None, :3]) and np.allclose(rel[..., 3], 0.04)
    tok = ActionTokenizer(space, 256)
    back = space.to_absolute(tok.decode(tok.encode(rel)), proprio)
    assert np.all(np.abs(back - absolute) <= tok.bin_width / 2 + 1e-9)  # half a bin of motion, whatever the pose
    assert ActionSpace.panda_default().relative_dims == []  # absolute spaces are untouched


def test_shipped_gripper_bins_decode_inside_the_hand_s_range_and_reach_the_executor_unclamped() -> None:
    from pathlib import Path

    from fast_dvla_ros.execution import load_joint_limits
    from fast_dvla_ros.execution.safety import validate_chunk

    root = Path(__file__).resolve().parents[1] / "models"
    for name in ("student_distilled", "teacher_bidirectional"):
        tok = ActionTokenizer.load(root / name / "action_tokenizer.json")
        g = tok.space.gripper_index
        assert g is not None
        assert tok.decode(np.zeros((1, tok.dim)))[0, g] < 0.0  # the bin range overhangs the hand's (why we clip)
        bins = np.zeros((2, 8, tok.dim), dtype=np.int64)
        bins[1] = tok.num_bins - 1  # both edge bins of every dimension
        absolute = tok.space.to_absolute(tok.decode(bins), np.zeros((2, 8)))
        widths = absolute[..., g]
        assert widths.min() == 0.0 and widths.max() == 0.08
        limits = load_joint_limits("panda")
        home = np.array([0.0, -0.5, 0.0, -2.3, 0.0, 1.8, -0.785])
        _, clamp = validate_chunk(
            limits=limits, now=0.0, joint_names=list(limits.joint_names), actions=np.tile(home, (8, 1)).reshape(-1),
            gripper=widths[0], horizon=8, step_period=1 / 30, stamp=0.0, sequence_id=1, action_kind="joint_position",
        )
        assert clamp.count == 0  # the executor's clamp counter now counts only real clamps
