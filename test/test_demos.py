"""Expert demonstrations: generate two tiny episodes, read them back, check shapes and stats."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fast_dvla_ros.train.chunks import chunk_rows, episode_bounds
from fast_dvla_ros.train.demos import SCENE_STATE_NAMES, generate, load_demo_arrays


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demos")
    summary = generate(out, episodes=2, seed0=3, episodes_per_shard=1, sim_config={"image_size": 32}, progress=False)
    return out, summary


def test_generated_files_and_meta(demo_dir):
    out, summary = demo_dir
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "shard_00000.npz", "shard_00001.npz", "stats.json"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["num_episodes"] == 2 == summary["episodes_kept"]
    assert meta["image_size"] == 32 and len(meta["action_names"]) == 8
    assert meta["num_frames"] == sum(s["frames"] for s in meta["shards"]) == summary["frames"]
    assert 60 < summary["mean_episode_length"] < 300


def test_arrays_round_trip(demo_dir):
    out, _ = demo_dir
    a = load_demo_arrays(out)
    n = a["meta"]["num_frames"]
    assert a["images"].shape == (n, 32, 32, 3) and a["images"].dtype == np.uint8
    assert a["proprio"].shape == (n, 8) and a["proprio"].dtype == np.float32
    assert a["actions"].shape == (n, 8) and a["actions"].dtype == np.float32
    assert len(a["instructions"]) == n and "block" in a["instructions"][0]
    assert sorted(np.unique(a["episode"]).tolist()) == [0, 1]
    assert [e["seed"] for e in a["episode_info"]] == [3, 4]
    # steps restart at 0 for each episode and count up by one
    for ep in (0, 1):
        steps = a["step"][a["episode"] == ep]
        np.testing.assert_array_equal(steps, np.arange(len(steps)))
    # the expert's actions are smooth and gripper widths in range
    assert np.all((a["actions"][:, 7] >= 0) & (a["actions"][:, 7] <= 0.08))
    jumps = np.abs(np.diff(a["actions"][a["episode"] == 0, :7], axis=0))
    assert jumps.max() < 0.06
    # the gripper closes and opens again in every episode (a pick and a release)
    for ep in (0, 1):
        w = a["actions"][a["episode"] == ep, 7]
        assert w.min() == 0.0 and w[0] == pytest.approx(0.08) and w[-1] == pytest.approx(0.08)


def test_scene_state_is_the_block_pose_relative_to_the_grasp_point(demo_dir):
    out, _ = demo_dir
    a = load_demo_arrays(out)
    st = a["scene_state"]
    assert st.shape == (a["meta"]["num_frames"], len(SCENE_STATE_NAMES)) and st.dtype == np.float32
    assert a["meta"]["scene_state_names"] == list(SCENE_STATE_NAMES)
    first = a["episode"] == 0
    # the block starts on the belt (top 0.06 m + half the 4 cm cube) and the hand above it
    assert st[first][0, 2] == pytest.approx(0.08, abs=0.01) and st[first][0, 5] < -0.1
    # the hand reaches the block during the pick: the offset shrinks to a few cm
    assert np.linalg.norm(st[first][:, 3:6], axis=1).min() < 0.03
    np.testing.assert_allclose(st[:, 6] ** 2 + st[:, 7] ** 2, 1.0, atol=1e-5)


def test_stats_match_data(demo_dir):
    out, _ = demo_dir
    a = load_demo_arrays(out)
    stats = a["stats"]
    for key, values in (("actions", a["actions"]), ("proprio", a["proprio"])):
        s = stats[key]
        np.testing.assert_allclose(s["min"], values.min(axis=0), rtol=1e-6)
        np.testing.assert_allclose(s["max"], values.max(axis=0), rtol=1e-6)
        np.testing.assert_allclose(s["mean"], values.astype(np.float64).mean(axis=0), rtol=1e-5, atol=1e-7)
        assert np.all(np.asarray(s["p01"]) <= np.asarray(s["p50"])) and np.all(np.asarray(s["p50"]) <= s["p99"])
        assert s["count"] == len(values)
    assert stats["action_names"] == a["meta"]["action_names"]


def test_chunks_are_padded_with_the_episode_s_last_action(demo_dir):
    out, _ = demo_dir
    a = load_demo_arrays(out)
    first, last = episode_bounds(a["episode"])
    last0 = int(np.flatnonzero(a["episode"] == 0)[-1])
    assert first[last0 + 1] == last0 + 1 and last[0] == last0  # episode 1 starts after episode 0's last frame
    rows = chunk_rows(np.array([0, last0 - 2, last0 + 1]), last, 8)
    np.testing.assert_array_equal(rows[0], np.arange(8))
    np.testing.assert_array_equal(rows[1], [last0 - 2, last0 - 1, last0] + [last0] * 5)  # three real, then the last
    np.testing.assert_array_equal(rows[2], last0 + 1 + np.arange(8))


def test_refuses_to_overwrite_and_rejects_foreign_dirs(demo_dir, tmp_path):
    out, _ = demo_dir
    with pytest.raises(FileExistsError):
        generate(out, episodes=1, progress=False)
    with pytest.raises(FileNotFoundError):
        load_demo_arrays(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"format": "lerobot", "format_version": 3}))
    with pytest.raises(ValueError, match="format"):
        load_demo_arrays(tmp_path)


@pytest.mark.slow
def test_workers_give_the_same_data_as_one_process(tmp_path):
    generate(tmp_path / "one", episodes=2, sim_config={"image_size": 24}, progress=False)
    generate(tmp_path / "two", episodes=2, workers=2, sim_config={"image_size": 24}, progress=False)
    a, b = load_demo_arrays(tmp_path / "one"), load_demo_arrays(tmp_path / "two")
    for key in ("images", "proprio", "actions", "episode"):
        np.testing.assert_array_equal(a[key], b[key])


def test_action_noise_perturbs_the_executed_path_but_records_clean_expert_labels():
    from fast_dvla_ros.sim.conveyor_env import ConveyorPickEnv, SimConfig
    from fast_dvla_ros.sim.expert import ScriptedExpert
    from fast_dvla_ros.train.demos import run_expert_episode

    env, expert = ConveyorPickEnv(SimConfig(image_size=32)), ScriptedExpert()
    try:
        clean = run_expert_episode(env, expert, seed=5)
        noisy = run_expert_episode(env, expert, seed=5, action_noise=0.03)
    finally:
        env.close()
        expert.close()
    assert clean.success and noisy.success
    np.testing.assert_array_equal(noisy.actions[0], clean.actions[0])  # same state, same clean label
    # During the approach (the first 0.5 s, before phase timing differs) the arm left the clean path, mildly.
    gap = np.abs(noisy.proprio[:15, :7] - clean.proprio[:15, :7]).max()
    assert 0.005 < gap < 0.2, gap


def test_takeover_records_only_the_expert_part_after_the_policy_drove(tmp_path):
    """Recovery data: a (here untrained) policy drives 6 steps, then the expert finishes from there."""
    import torch

    from fast_dvla_ros.core.config import DVLAConfig
    from fast_dvla_ros.core.model import DVLA
    from fast_dvla_ros.core.policy import Policy
    from fast_dvla_ros.sim.conveyor_env import ConveyorPickEnv, SimConfig
    from fast_dvla_ros.sim.expert import ScriptedExpert
    from fast_dvla_ros.train.demos import run_expert_episode

    torch.manual_seed(0)
    model = DVLA(DVLAConfig.preset("tiny", attention="bidirectional", num_frames=2))
    model.save_pretrained(tmp_path / "ck")
    policy = Policy.load(tmp_path / "ck", decoder="bidirectional")
    env, expert = ConveyorPickEnv(SimConfig(image_size=32)), ScriptedExpert()
    try:
        clean = run_expert_episode(env, expert, seed=5)
        taken = run_expert_episode(env, expert, seed=5, takeover=(policy, (6, 6)))
    finally:
        env.close()
        expert.close()
    # the recorded part starts where the policy left the arm: 6 steps of its (random) actions later
    assert not np.allclose(taken.proprio[0], clean.proprio[0], atol=1e-4)
    assert taken.scene_state[0, 1] > clean.scene_state[0, 1]  # the belt carried the block on meanwhile
    assert taken.length > 0 and taken.actions.shape[1] == 8
