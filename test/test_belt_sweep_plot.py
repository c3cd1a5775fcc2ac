"""bench/belt_sweep_plot.py: the paper's ratio at the fastest belt the baseline still picks, the refusal of
sweeps over different seeds, and a PNG that holds one line per policy."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench_belt_sweep_plot", ROOT / "bench" / "belt_sweep_plot.py")
plot_mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plot_mod)


def _sweep(picks: dict[float, tuple[int, float]], args: str = "--episodes 50 --seed 0") -> dict:
    rows = [{"belt_speed": v, "episodes": 50, "successes": s, "ci95": [max(0.0, s / 50 - 0.1), min(1.0, s / 50 + 0.1)],
             "picks_per_minute": ppm} for v, (s, ppm) in picks.items()]
    return {"args": args, "rows": rows}


BASE = _sweep({0.03: (20, 4.0), 0.06: (10, 2.5), 0.09: (0, 0.0)})
FAST = _sweep({0.03: (40, 9.0), 0.06: (44, 11.0), 0.09: (30, 8.0)})


def test_ratio_is_taken_at_the_fastest_belt_where_the_baseline_picks() -> None:
    cmp = plot_mod.fastest_baseline_ratio(BASE, FAST)
    assert cmp["belt_speed"] == 0.06 and math.isclose(cmp["ratio"], 11.0 / 2.5)
    assert plot_mod.fastest_baseline_ratio(_sweep({0.03: (0, 0.0)}), FAST) is None
    table = plot_mod.format_table([("base", BASE), ("fast", FAST)])
    assert "4.40x at 0.06 m/s" in table[-1] and "44/50 (11.00/min)" in table[-1]
    assert "baseline" in table[2]


def test_sweeps_of_other_seeds_are_refused() -> None:
    with pytest.raises(SystemExit, match="not the same seeded episodes"):
        plot_mod.check_comparable([("base", BASE), ("other", _sweep({0.03: (1, 1.0)}, "--episodes 50 --seed 7"))])
    plot_mod.check_comparable([("base", BASE), ("fast", FAST)])  # same seeds: accepted


def test_png_has_one_line_per_policy(tmp_path: Path) -> None:
    base, fast = tmp_path / "b.json", tmp_path / "f.json"
    base.write_text(json.dumps(BASE))
    fast.write_text(json.dumps(FAST))
    png = tmp_path / "sweep.png"
    assert plot_mod.main([f"baseline={base}", f"student, n = 1={fast}", "--png", str(png)]) == 0
    assert plot_mod.plot([("baseline", BASE), ("student, n = 1", FAST)], png) == ["baseline", "student, n = 1"]
    from PIL import Image

    with Image.open(png) as im:
        assert im.size[0] > 500 and im.size[1] > 200
    with pytest.raises(SystemExit, match="LABEL=JSON"):
        plot_mod.load_sweep(str(base))
