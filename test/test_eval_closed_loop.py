"""The closed-loop evaluation runs the shipped two-frame student in the real simulator (short episode)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fast_dvla_ros.core.decoder_options import DecoderSpec, resolve_decoder_spec
from fast_dvla_ros.core.policy import Policy
from fast_dvla_ros.evaluation.closed_loop import (
    build_parser,
    decoder_settings,
    evaluate,
)
from fast_dvla_ros.evaluation.episodes import ChunkStepper, PolicyDriver, run_episode


def test_evaluate_runs_a_short_episode_with_the_shipped_student() -> None:
    torch.set_num_threads(1)
    policy = Policy.load("models/student_distilled", decoder="pipelined")
    assert policy.num_frames == 2
    r = evaluate(policy, episodes=1, seed0=1000, execute_steps=4,
                 sim_overrides={"episode_time_limit": 1.0}, progress=False)
    assert r.episodes == 1 and r.chunks >= 7  # 30 steps / 4 per chunk
    assert r.per_episode[0]["steps"] == 30 and r.failure_causes == {"timeout": 1}
    assert 1 <= r.forwards_per_chunk <= 64 and r.latency_mean_ms > 0


def test_driver_gives_the_frame_ten_steps_back() -> None:
    frames = [{"image": np.full((8, 8, 3), k, np.uint8)} for k in range(20)]
    driver = PolicyDriver(Policy.load("models/student_distilled", decoder="pipelined"), 30.0)
    driver.reset(frames[0])
    for f in frames[1:15]:
        driver.stepped(f)
    assert driver.steps == 14
    assert driver.history.previous(driver.steps / 30)[0, 0, 0] == 4


def _chunk(offset: float, horizon: int = 8) -> np.ndarray:
    """Joints step by 0.01 rad per step from ``offset``; gripper open (0.08 m)."""
    steps = offset + 0.01 * np.arange(1, horizon + 1)
    return np.concatenate([np.repeat(steps[:, None], 7, axis=1), np.full((horizon, 1), 0.08)], axis=1)


def test_stepper_without_blend_executes_the_chunk_head_and_latest_blend_matches_it() -> None:
    plain, latest = ChunkStepper(3, 1 / 30), ChunkStepper(3, 1 / 30, blend="latest")
    for s in (plain, latest):
        s.reset(np.zeros(8))
    a, b = plain.actions(_chunk(0.0), 0.0), latest.actions(_chunk(0.0), 0.0)
    assert len(a) == len(b) == 3
    np.testing.assert_allclose(np.stack(a), _chunk(0.0)[:3])
    np.testing.assert_allclose(np.stack(b), _chunk(0.0)[:3], atol=1e-12)


def test_stepper_temporal_ensemble_averages_overlapping_chunks_at_the_same_step_time() -> None:
    s = ChunkStepper(1, 1 / 30, blend="temporal_ensemble", ensemble_m=0.0)
    s.reset(np.zeros(8))
    first = s.actions(_chunk(0.0), 0.0)[0]
    np.testing.assert_allclose(first[:7], 0.01)
    # One step later a chunk that disagrees by +0.1 rad: the plain mean of the two plans at t = 2 dt.
    second = s.actions(_chunk(0.1), 1 / 30)[0]
    np.testing.assert_allclose(second[:7], 0.5 * (0.02 + 0.11))
    assert second[7] == 0.08
    with pytest.raises(ValueError):
        ChunkStepper(1, 1 / 30, blend="average")
    with pytest.raises(ValueError):
        ChunkStepper(0, 1 / 30)


def test_stepper_skips_the_steps_of_a_late_chunk_that_lie_in_the_past() -> None:
    """A chunk decoded from an observation two steps old: its first two steps are history, with and
    without the executor's blender, as the chunk executor treats a chunk that arrives late."""
    dt = 1 / 30
    plain, latest = ChunkStepper(3, dt), ChunkStepper(3, dt, blend="latest")
    for s in (plain, latest):
        s.reset(np.zeros(8))
    np.testing.assert_allclose(np.stack(plain.actions(_chunk(0.0), 2 * dt, stamp=0.0)), _chunk(0.0)[2:5])
    np.testing.assert_allclose(np.stack(latest.actions(_chunk(0.0), 2 * dt, stamp=0.0)), _chunk(0.0)[2:5],
                               atol=1e-9)


def test_latency_steps_decode_from_the_observation_that_many_steps_old() -> None:
    """Each decision sees the observation of ``latency_steps`` control steps before it (the first one
    until there is one), and the simulator's state has moved on meanwhile."""
    from fast_dvla_ros.sim.conveyor_env import ConveyorPickEnv, SimConfig

    torch.set_num_threads(1)
    driver = PolicyDriver(Policy.load("models/student_distilled", decoder="pipelined"), 30.0)
    seen: list[tuple[int, int | None, float]] = []
    decide = driver.decide

    def spy(obs, instruction, at_step=None):
        seen.append((driver.steps, at_step, float(obs["joint_pos"][0])))
        return decide(obs, instruction, at_step)

    driver.decide = spy
    env = ConveyorPickEnv(SimConfig(episode_time_limit=0.3))
    try:
        run_episode(env, driver, ChunkStepper(1, 1 / 30, blend="temporal_ensemble"), 1000, latency_steps=3)
        with pytest.raises(ValueError):
            run_episode(env, driver, ChunkStepper(1, 1 / 30), 1000, latency_steps=-1)
    finally:
        env.close()
    assert [(now, at) for now, at, _ in seen] == [(k, max(0, k - 3)) for k in range(9)]
    joints = [j for _, _, j in seen]
    assert joints[0] == joints[1] == joints[2] == joints[3] != joints[4]  # steps 0-3 decide on step 0's joints


def test_evaluate_with_the_executor_blender_runs_one_chunk_per_step() -> None:
    torch.set_num_threads(1)
    policy = Policy.load("models/student_distilled", decoder="pipelined")
    r = evaluate(policy, episodes=1, seed0=1000, execute_steps=1, sim_overrides={"episode_time_limit": 0.3},
                 progress=False, blend="temporal_ensemble")
    assert r.chunks == 9 and r.per_episode[0]["steps"] == 9 and r.blend == "temporal_ensemble"


def _options(argv: list[str], spec: str, recommended: str = "pipelined:n=1") -> dict:
    a = build_parser().parse_args(["--checkpoint", "x", *argv])
    return dict(resolve_decoder_spec(spec, DecoderSpec.parse(recommended), decoder_settings(a)).options)


def test_decoder_flags_reach_only_the_decoders_they_mean() -> None:
    flags = ["--tau-conf", "0.3", "--n", "1", "--tau-add", "0.2", "--bidirectional-steps", "8"]
    assert _options(flags, "bidirectional") == {"steps": 8}
    assert _options(flags, "block_cache") == {"tau_conf": 0.3}
    assert _options(flags, "pipelined") == {"tau_conf": 0.3, "n": 1, "tau_add": 0.2}
    assert _options([], "pipelined") == {}  # a named decoder: its own defaults, not the checkpoint's


def test_no_decoder_flag_means_the_checkpoint_s_decoder_and_settings() -> None:
    assert _options([], "") == {"n": 1}
    assert _options(["--n", "2", "--bidirectional-steps", "8"], "") == {"n": 2}  # flags still apply to it
    assert _options(["--n", "2"], "", recommended="bidirectional:steps=12") == {"steps": 12}
    assert build_parser().parse_args(["--checkpoint", "x"]).decoder is None
    with pytest.raises(SystemExit):  # a bad spec is a usage error before any checkpoint is loaded
        build_parser().parse_args(["--checkpoint", "x", "--decoder", "pipelined:m=1"])


def test_pipelined_with_n_1_commits_each_block_in_one_forward() -> None:
    """n = 1: a fully active block commits all its tokens at once, so a chunk costs one forward per block,
    the prefix riding in the first (the operating point of bench/RESULTS.md's latency rows)."""
    torch.set_num_threads(1)
    a = build_parser().parse_args(["--checkpoint", "models/student_distilled", "--n", "1"])
    policy = Policy.load("models/student_distilled", decoder="pipelined", settings=decoder_settings(a))
    r = evaluate(policy, episodes=1, seed0=1000, execute_steps=4, sim_overrides={"episode_time_limit": 0.3},
                 progress=False)
    assert r.forwards_per_chunk == policy.horizon


def test_decoder_spec_carries_settings_for_one_row() -> None:
    assert _options(["--n", "2", "--tau-conf", "0.4"], "pipelined:n=1") == {"tau_conf": 0.4, "n": 1}
    assert _options(["--n", "2", "--tau-conf", "0.4"], "bidirectional:steps=8") == {"steps": 8}


@pytest.mark.parametrize("damage", ["truncated_weights", "corrupt_config"])
def test_sim_eval_reports_a_bad_checkpoint_in_one_line(tmp_path, damage: str) -> None:
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "models" / "student_distilled"
    ck = tmp_path / "ck"
    shutil.copytree(src, ck)
    if damage == "truncated_weights":  # an interrupted copy or download
        data = (ck / "model.safetensors").read_bytes()
        (ck / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "corrupt_config":
        (ck / "config.json").write_text('{"name": "sim", ')
    proc = subprocess.run(
        [sys.executable, "-m", "fast_dvla_ros.evaluation.closed_loop", "--checkpoint", str(ck), "--episodes", "1"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"fast-dvla-sim-eval: cannot load checkpoint {ck}"), lines
