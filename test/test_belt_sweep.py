"""bench/belt_sweep.py without a loop: the parameter file it gives each speed, picks per minute, its table.

The sweep's claim is "the same seeds at every speed": the same block colour, position and yaw, only the
belt faster. That is checked on the simulator itself, and the per-speed parameter file must reach both
the simulator node's parameters and the real-time evaluator's settings (they read the same file).
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_belt_sweep():
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("bench_belt_sweep", ROOT / "bench" / "belt_sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sweep = _load_belt_sweep()
PARAMS = ROOT / "config" / "sim_conveyor.yaml"


def test_params_at_speed_fixes_the_belt_and_keeps_everything_else(tmp_path: Path) -> None:
    from fast_dvla_ros.evaluation.realtime import RealtimeSettings
    from fast_dvla_ros.params_file import node_parameters

    path = sweep.params_at_speed(PARAMS, 0.15, tmp_path)
    sim = node_parameters(path, "conveyor_sim")
    assert sim["belt_speed_min"] == sim["belt_speed_max"] == 0.15
    original = node_parameters(PARAMS, "conveyor_sim")
    assert {k: v for k, v in sim.items() if not k.startswith("belt_speed")} == {
        k: v for k, v in original.items() if not k.startswith("belt_speed")}
    for node in ("fast_dvla_policy", "chunk_executor"):
        assert node_parameters(path, node) == node_parameters(PARAMS, node)
    assert RealtimeSettings.from_params_file(path).sim["belt_speed_range"] == (0.15, 0.15)


def test_a_params_file_without_the_simulator_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("/**/fast_dvla_policy:\n  ros__parameters:\n    checkpoint: ''\n")
    with pytest.raises(SystemExit, match="conveyor_sim"):
        sweep.params_at_speed(bad, 0.1, tmp_path)


def test_the_same_seed_is_the_same_scene_at_every_speed() -> None:
    pytest.importorskip("pybullet")
    from fast_dvla_ros.sim.conveyor_env import ConveyorPickEnv, SimConfig

    scenes = []
    for speed in (0.03, 0.18):
        env = ConveyorPickEnv(SimConfig(belt_speed_range=(speed, speed)))
        try:
            _, info = env.reset(seed=11)
            assert env.belt_speed == speed
            scenes.append((env.block_color, env.lateral_offset, tuple(info["block_pos"]), info["block_yaw"]))
        finally:
            env.close()
    assert scenes[0] == scenes[1]


def test_picks_per_minute_counts_failed_episodes_time() -> None:
    loop_eps = [{"success": True, "duration_s": 4.0}, {"success": False, "duration_s": 10.0},
                {"success": True, "duration_s": 6.0}]
    assert sweep.picks_per_minute(loop_eps) == pytest.approx(60.0 * 2 / 20.0)
    evaluator_eps = [{"success": True, "steps": 120}, {"success": False, "steps": 300}]  # 4 s and 10 s at 30 Hz
    assert sweep.picks_per_minute(evaluator_eps) == pytest.approx(60.0 / 14.0)
    assert math.isnan(sweep.picks_per_minute([]))


def test_rows_and_table_from_loop_results() -> None:
    per_episode = [{"seed": s, "success": s % 2 == 0, "duration_s": 5.0} for s in range(4)]
    result = {
        "loop": {"bag": "b", "outcomes": {"episodes": 4, "successes": 2, "failure_causes": {"missed": 2},
                                           "ci95": [0.15, 0.85],
                                           "per_episode": per_episode},
                 "latency_split_ms": {"total": {"p50": 120.0}, "decode": {"p50": 70.0}},
                 "executor": {"underruns": 3}},
        "evaluators": [{"label": "evaluator (real-time)", "episodes": 4, "successes": 3,
                        "per_episode": [{"success": True, "steps": 150}] * 3 + [{"success": False, "steps": 300}]}],
    }
    row = sweep.sweep_row(0.12, result)
    assert row["picks_per_minute"] == pytest.approx(6.0)  # 2 picks in 20 s
    assert row["mean_success_time_s"] == 5.0 and row["underruns"] == 3 and row["decode_p50_ms"] == 70.0
    assert row["evaluators"][0]["picks_per_minute"] == pytest.approx(60.0 * 3 / 25.0)
    empty = sweep.sweep_row(0.18, {"loop": {"outcomes": None}})  # no episode finished: a row, not a crash
    table = sweep.format_sweep([row, empty], "--episodes 4")
    assert "| 0.120 | 2/4 = 50% [" in table[4] and "| 6.00 |" in table[4] and "| 3/4, 7.20 |" in table[4]
    assert table[5].startswith("| 0.180 | 0/0") and table[5].count("|") == table[2].count("|")
