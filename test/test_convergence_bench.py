"""bench/convergence.py's closed-loop race: the first distillation step that reaches the other run's final
success, the step ratio, and the refusal of evaluations over different seeds."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench_convergence", ROOT / "bench" / "convergence.py")
conv = importlib.util.module_from_spec(spec)
spec.loader.exec_module(conv)


def _result(successes: int, seeds: range = range(50)) -> dict:
    return {"successes": successes, "episodes": len(seeds), "ci95": None, "seeds": list(seeds)}


def test_race_takes_the_first_distillation_step_at_the_final_success() -> None:
    distill = {150: _result(30), 300: _result(41), 600: _result(44)}
    race = conv.closed_loop_race(distill, {300: _result(20), 600: _result(40)})
    assert race["distill_step"] == 300 and race["ratio"] == 2.0 and race["scratch_success"] == 0.8
    never = conv.closed_loop_race(distill, {600: _result(45)})
    assert never["distill_step"] is None and never["ratio"] is None


def test_race_refuses_evaluations_over_other_seeds() -> None:
    with pytest.raises(SystemExit, match="same seeds"):
        conv.closed_loop_race({150: _result(30)}, {600: _result(40, range(50, 100))})


def test_success_files_are_read_from_the_evaluator_json(tmp_path: Path) -> None:
    per_episode = [{"seed": s, "success": s % 2 == 0} for s in range(4)]
    path = tmp_path / "eval.json"
    path.write_text(json.dumps([{"successes": 2, "episodes": 4, "ci95": [0.15, 0.85], "per_episode": per_episode}]))
    assert conv.success_at([f"150={path}"]) == {150: {"successes": 2, "episodes": 4, "ci95": [0.15, 0.85],
                                                     "seeds": [0, 1, 2, 3]}}
    with pytest.raises(SystemExit, match="STEP=JSON"):
        conv.success_at([str(path)])
