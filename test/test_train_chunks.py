"""ChunkSampler: stacked previous frames and the block velocity appended to the aux targets."""

from __future__ import annotations

import numpy as np

from fast_dvla_ros.train.chunks import ChunkSampler


def _sampler(num_frames: int) -> ChunkSampler:
    n = 30  # two episodes of 15 frames; image value = frame index, block moves +0.002 m per frame in y
    images = np.repeat(np.arange(n, dtype=np.uint8)[:, None, None, None], 8, axis=1).repeat(8, 2).repeat(3, 3)
    state = np.zeros((n, 8), np.float32)
    state[:, 1] = 0.002 * np.arange(n)
    return ChunkSampler(
        images=images, proprio=np.zeros((n, 8), np.float32), actions=np.zeros((n, 8), np.float32),
        episode=np.repeat([0, 1], 15), instructions=["pick"] * n, episodes=np.array([0, 1]), horizon=4,
        image_size=8, encode_instruction=lambda t: np.zeros(4, np.int64), control_hz=30.0, scene_state=state,
        num_frames=num_frames, frame_gap=5,
    )


def test_previous_frame_is_gap_steps_back_clamped_to_the_episode_start() -> None:
    b = _sampler(2).gather(np.array([12, 3, 17, 15]))
    assert b.images.shape == (4, 6, 8, 8)
    assert b.images[:, 0, 0, 0].tolist() == [12, 3, 17, 15]
    assert b.images[:, 3, 0, 0].tolist() == [7, 0, 15, 15]  # 12-5; clamped to 0; clamped to 15 (episode 1)
    assert _sampler(1).gather(np.array([12])).images.shape == (1, 3, 8, 8)


def test_block_velocity_is_appended_per_episode() -> None:
    b = _sampler(1).gather(np.array([0, 7, 15, 29]))
    assert b.scene_state.shape == (4, 11)
    np.testing.assert_allclose(b.scene_state[:, 9].numpy(), 0.06, rtol=1e-4)  # 0.002 m * 30 Hz
    np.testing.assert_allclose(b.scene_state[:, [8, 10]].numpy(), 0.0)
