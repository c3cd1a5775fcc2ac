"""In-memory training samples: (image, proprio, instruction, action chunk) drawn from demonstrations.

Training on 2 CPU cores is bound by the model, not by I/O, so the whole demonstration set is
loaded once into contiguous arrays (a few hundred MB at 96 px) and batches are gathered with
fancy indexing: no worker processes competing with the model for the two cores.

Episodes are split into train/validation by episode (never by frame: neighbouring frames of one
episode are near-duplicates, a frame split would leak).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from fast_dvla_ros.train.demos import BLOCK_POSITION, load_demo_arrays


@dataclass
class ChunkBatch:
    images: torch.Tensor  # uint8 [B, 3F, S, S]: F stacked frames, newest first
    proprio: torch.Tensor  # float32 [B, P]
    instr_ids: torch.Tensor  # int64 [B, T]
    actions: np.ndarray  # float64 [B, H, D] in action units
    # float32 [B, K+3] privileged state (aux target) if recorded: the recorded columns, then the
    # block's velocity (m/s, finite difference of its position over one frame)
    scene_state: torch.Tensor | None = None
    # float32 [B, 2] where the block's centre appears in the (current) image, (u, v) in 0..1; NaN if
    # no scene state was recorded or the block is out of view
    block_uv: torch.Tensor | None = None


def episode_bounds(episode: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the first and of the last frame of each frame's episode, [N] each."""
    last = np.zeros(len(episode), np.int64)
    first = np.zeros(len(episode), np.int64)
    for e in np.unique(episode):
        idx = np.nonzero(episode == e)[0]
        last[idx] = idx.max()
        first[idx] = idx.min()
    return first, last


def chunk_rows(frames: np.ndarray, last: np.ndarray, horizon: int) -> np.ndarray:
    """Frame indices [B, H] of the action chunk of each frame t in ``frames``: t .. t + H - 1 of its
    episode, repeating the episode's last frame (``last``, from ``episode_bounds``) past its end: the arm
    holds still after the demonstration ends."""
    return np.minimum(frames[:, None] + np.arange(horizon)[None, :], last[frames][:, None])


class ChunkSampler:
    """Random (frame, chunk) samples from a subset of episodes.

    The chunk for frame t is actions[t : t + H] of its episode, padded with the episode's last
    action (``chunk_rows``). With ``num_frames`` 2 the image is
    frame t stacked with frame t - ``frame_gap`` (clamped to the episode's first frame).
    ``control_hz``: the demonstrations' frame rate (meta.json), which is also the checkpoint's action rate.
    """

    def __init__(
        self,
        images: np.ndarray,
        proprio: np.ndarray,
        actions: np.ndarray,
        episode: np.ndarray,
        instructions: list[str],
        episodes: np.ndarray,
        horizon: int,
        image_size: int,
        encode_instruction,
        control_hz: float,
        scene_state: np.ndarray | None = None,
        num_frames: int = 1,
        frame_gap: int = 10,
    ) -> None:
        keep = np.isin(episode, episodes)
        self.frames = np.nonzero(keep)[0]
        if self.frames.size == 0:
            raise ValueError("no frames in the selected episodes")
        self.images = _resize_all(images, image_size)
        self.proprio = proprio.astype(np.float32)
        self.actions = actions.astype(np.float64)
        self.episode = episode
        self.horizon = horizon
        self.num_frames = num_frames
        self.frame_gap = frame_gap
        self.control_hz = float(control_hz)
        self.instr_ids = np.stack([encode_instruction(t) for t in instructions])  # per frame
        first, last = episode_bounds(episode)
        self.first, self.last = first, last
        self.scene_state = None if scene_state is None else _with_velocity(scene_state, first, self.control_hz)
        self.block_uv = None if scene_state is None else _block_uv(scene_state)

    def __len__(self) -> int:
        return int(self.frames.size)

    def gather(self, frames: np.ndarray) -> ChunkBatch:
        rows = chunk_rows(frames, self.last, self.horizon)
        images = self.images[frames]
        if self.num_frames == 2:
            previous = self.images[np.maximum(frames - self.frame_gap, self.first[frames])]
            images = np.concatenate([images, previous], axis=3)
        return ChunkBatch(
            images=torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))),
            proprio=torch.from_numpy(self.proprio[frames]),
            instr_ids=torch.from_numpy(self.instr_ids[frames]),
            actions=self.actions[rows],
            scene_state=None if self.scene_state is None else torch.from_numpy(self.scene_state[frames]),
            block_uv=None if self.block_uv is None else torch.from_numpy(self.block_uv[frames]),
        )

    def all_chunks(self) -> tuple[np.ndarray, np.ndarray]:
        """Action chunks [N, H, D] and proprio [N, P] of every frame (no images): tokenizer statistics."""
        rows = chunk_rows(self.frames, self.last, self.horizon)
        return self.actions[rows], self.proprio[self.frames].astype(np.float64)

    def sample(self, batch_size: int, rng: np.random.Generator) -> ChunkBatch:
        return self.gather(rng.choice(self.frames, size=batch_size, replace=True))

    def fixed(self, count: int, seed: int = 0) -> ChunkBatch:
        rng = np.random.default_rng(seed)
        return self.gather(rng.choice(self.frames, size=min(count, len(self)), replace=False))


def _block_uv(state: np.ndarray) -> np.ndarray:
    """Image position of the block centre (``BLOCK_POSITION`` of the scene state), NaN when out of view."""
    from fast_dvla_ros.sim.scene import project_to_image

    uv = project_to_image(state[:, BLOCK_POSITION]).astype(np.float32)
    out = ~np.all((uv >= 0.0) & (uv < 1.0), axis=1)
    uv[out] = np.nan
    return uv


def _with_velocity(state: np.ndarray, first: np.ndarray, control_hz: float) -> np.ndarray:
    """Append the block velocity (backward difference of ``BLOCK_POSITION``; forward at an episode start)."""
    pos = state[:, BLOCK_POSITION].astype(np.float64)
    idx = np.arange(len(pos))
    prev = np.where(idx > first, idx - 1, idx)
    nxt = np.where(idx > first, idx, np.minimum(idx + 1, len(pos) - 1))
    vel = (pos[nxt] - pos[prev]) * control_hz
    return np.concatenate([state, vel], axis=1).astype(np.float32)


def _resize_all(images: np.ndarray, size: int) -> np.ndarray:
    if images.shape[1] == size and images.shape[2] == size:
        return np.ascontiguousarray(images)
    return np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images])


def _merge(sets: list[dict]) -> dict:
    rates = {float(s["meta"]["control_hz"]) for s in sets}
    if len(rates) > 1:
        raise ValueError(f"demonstration sets recorded at different rates {sorted(rates)} Hz cannot be merged")
    if len(sets) == 1:
        return sets[0]
    out = dict(sets[0])
    offset = 0
    episodes = []
    for s in sets:
        episodes.append(s["episode"] + offset)
        offset += int(s["episode"].max()) + 1
    out["episode"] = np.concatenate(episodes)
    for key in ("images", "proprio", "actions"):
        out[key] = np.concatenate([s[key] for s in sets])
    out["instructions"] = [t for s in sets for t in s["instructions"]]
    if all("scene_state" in s for s in sets):
        out["scene_state"] = np.concatenate([s["scene_state"] for s in sets])
    else:
        out.pop("scene_state", None)
    return out


def split_episodes(episode: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Episode ids for training and validation (at least one of each when there are two or more)."""
    ids = np.unique(episode)
    rng = np.random.default_rng(seed)
    rng.shuffle(ids)
    n_val = max(1, round(len(ids) * val_fraction)) if len(ids) > 1 else 0
    return np.sort(ids[n_val:]), np.sort(ids[:n_val])


def load_samplers(
    data_dir: str, horizon: int, image_size: int, encode_instruction, val_fraction: float = 0.1, seed: int = 0,
    num_frames: int = 1, frame_gap: int = 10,
) -> tuple[ChunkSampler, ChunkSampler, dict]:
    """Load demonstration directories (comma-separated) into train and validation samplers, plus the
    first directory's stats.json. Episode ids of later directories are offset to stay unique."""
    arrays = _merge([load_demo_arrays(d) for d in str(data_dir).split(",") if d])
    train_eps, val_eps = split_episodes(arrays["episode"], val_fraction, seed)
    common = dict(
        images=arrays["images"], proprio=arrays["proprio"], actions=arrays["actions"], episode=arrays["episode"],
        instructions=arrays["instructions"], horizon=horizon, image_size=image_size,
        encode_instruction=encode_instruction, control_hz=float(arrays["meta"]["control_hz"]),
        scene_state=arrays.get("scene_state"),
        num_frames=num_frames, frame_gap=frame_gap,
    )
    train = ChunkSampler(episodes=train_eps, **common)
    val = ChunkSampler(episodes=val_eps if len(val_eps) else train_eps, **common)
    return train, val, arrays["stats"]
