"""FrameHistory picks the frame a two-frame checkpoint was trained with; the policy stacks it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fast_dvla_ros.core.config import DVLAConfig
from fast_dvla_ros.core.decoders import make_decoder
from fast_dvla_ros.core.frame_history import FrameHistory
from fast_dvla_ros.core.model import DVLA
from fast_dvla_ros.core.policy import Observation, Policy


def _img(v: int) -> np.ndarray:
    return np.full((4, 4, 3), v, np.uint8)


def test_previous_is_the_newest_frame_at_least_the_gap_old() -> None:
    h = FrameHistory(gap_s=0.3)
    assert h.previous(1.0) is None
    for k in range(10):  # frames every 0.1 s, value = index
        h.push(0.1 * k, _img(k))
    assert h.previous(0.9)[0, 0, 0] == 6  # 0.9 - 0.3 = 0.6
    assert h.previous(0.95)[0, 0, 0] == 6
    fresh = FrameHistory(gap_s=0.3)
    fresh.push(0.0, _img(0))
    fresh.push(0.1, _img(1))
    assert fresh.previous(0.1)[0, 0, 0] == 0  # history shorter than the gap: the oldest frame


def test_old_frames_are_dropped_and_a_clock_reset_starts_over() -> None:
    h = FrameHistory(gap_s=0.1)
    for k in range(100):
        h.push(0.05 * k, _img(k % 256))
    assert len(h._frames) <= 6
    h.push(0.0, _img(200))  # a new episode (simulated clock back to 0)
    assert h.previous(0.5)[0, 0, 0] == 200
    with pytest.raises(ValueError):
        FrameHistory(0.0)


def test_two_frame_policy_stacks_the_previous_image_and_it_matters() -> None:
    torch.manual_seed(0)
    model = DVLA(DVLAConfig.preset("tiny", num_frames=2, attention="block_causal")).eval()
    policy = Policy(model, make_decoder("block_cache", model))
    rng = np.random.default_rng(0)
    cur, prev = (rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2))
    proprio = np.zeros(8, np.float32)
    batch = policy.make_batch([Observation(cur, proprio, "pick", prev), Observation(cur, proprio, "pick")])
    assert batch.images.shape == (2, 6, 32, 32)
    assert torch.equal(batch.images[0, 3:], torch.from_numpy(prev).permute(2, 0, 1))
    assert torch.equal(batch.images[1, 3:], batch.images[1, :3])  # no previous frame: current repeated
    with torch.inference_mode():
        ids = batch.instruction_ids
        a = model.embed_prefix(batch.images[:1], ids[:1], batch.proprio[:1])
        b = model.embed_prefix(batch.images[1:], ids[1:], batch.proprio[1:])
    assert not torch.allclose(a, b)
    assert policy.frame_gap_s(30.0) == pytest.approx(model.config.frame_gap / 30.0)
