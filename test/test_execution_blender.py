"""Chunk blender: stale-step dropping, the three blend modes, and trajectory-ready upcoming points."""

from __future__ import annotations

import numpy as np
import pytest

from fast_dvla_ros.execution.blender import Chunk, ChunkBlender, finite_difference_velocities

DT = 0.1


def _chunk(stamp: float, value: float, h: int = 8, seq: int = 0, slope: float = 0.0) -> Chunk:
    q = value + slope * np.arange(h)[:, None] * np.ones((h, 7))
    return Chunk(stamp, DT, q, np.full(h, 0.04), seq)


def test_steps_in_the_past_are_dropped() -> None:
    b = ChunkBlender("latest")
    r = b.add(_chunk(0.0, 1.0), now=0.35)  # steps at 0.1, 0.2, 0.3 are past
    assert r.accepted and r.steps_dropped == 3
    assert b.steps_remaining(0.35) == 5


def test_fully_stale_chunk_is_refused() -> None:
    b = ChunkBlender("latest")
    r = b.add(_chunk(0.0, 1.0), now=5.0)
    assert not r.accepted and r.steps_dropped == 8 and b.empty


def test_latest_replaces_and_is_anchored_at_the_commanded_position() -> None:
    b = ChunkBlender("latest")
    b.add(_chunk(0.0, 1.0), now=0.0)
    anchor = np.zeros(8)
    b.add(_chunk(0.0, 2.0, seq=1), now=0.05, anchor=anchor)
    assert np.allclose(b.sample(0.05)[:7], 0.0)  # continuous at the switch
    assert np.allclose(b.sample(0.3)[:7], 2.0)  # newest wins afterwards
    assert np.allclose(b.sample(99.0)[:7], 2.0)  # holds past the end


@pytest.mark.parametrize(("m", "expected"), [(0.0, 1.5), (10.0, 1.0), (-10.0, 2.0)])
def test_temporal_ensemble_weights_older_or_newer(m: float, expected: float) -> None:
    b = ChunkBlender("temporal_ensemble", ensemble_m=m)
    b.add(_chunk(0.0, 1.0, seq=0), now=0.0)
    b.add(_chunk(0.0, 2.0, seq=1), now=0.0)
    assert b.sample(0.4)[0] == pytest.approx(expected, abs=1e-3)


def test_rtc_freeze_keeps_committed_steps_and_crossfades_the_rest() -> None:
    b = ChunkBlender("rtc_freeze", freeze_steps=2, crossfade_steps=2)
    b.add(_chunk(0.0, 1.0, h=10), now=0.0)
    b.add(_chunk(0.0, 2.0, h=10, seq=1), now=0.0)
    # steps sit at mid-step times 0.05, 0.15, ... (core/actuation.py): the two within 2 steps of now are frozen
    assert b.sample(0.05)[0] == pytest.approx(1.0)  # frozen
    assert b.sample(0.15)[0] == pytest.approx(1.0)  # frozen
    mid = b.sample(0.25)[0]
    assert 1.0 < mid < 2.0  # cross-fading
    assert b.sample(0.6)[0] == pytest.approx(2.0)  # new chunk after the fade


def test_upcoming_points_and_velocities() -> None:
    b = ChunkBlender("latest")
    b.add(_chunk(0.0, 0.0, h=20, slope=0.1), now=0.0)  # 1 rad/s ramp
    offsets, vals = b.upcoming(0.5, DT, 5)
    assert offsets.shape == (6,) and vals.shape == (6, 8)
    v = finite_difference_velocities(vals[:, :7], DT, end_at_rest=False)
    assert np.allclose(v[1:-1, 0], 1.0, atol=1e-6)
    v_end = finite_difference_velocities(vals[:, :7], DT, end_at_rest=True)
    assert np.all(v_end[-1] == 0.0)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="blend mode"):
        ChunkBlender("average")
    with pytest.raises(ValueError):
        ChunkBlender("rtc_freeze", freeze_steps=-1)


def test_a_plan_piece_interpolates_every_column_as_np_interp_does() -> None:
    """_Segment.at interpolates the whole row at once; per column it must be np.interp's result, at knots,
    between them and held constant outside (before the first and after the last sample time)."""
    from fast_dvla_ros.execution.blender import _Segment

    rng = np.random.default_rng(3)
    times = np.cumsum(rng.uniform(0.01, 0.05, 9)) + 100.0
    values = rng.normal(size=(9, 8))
    seg = _Segment(times, values, 1)
    queries = [times[0] - 1.0, *times, *(0.5 * (times[1:] + times[:-1])), *rng.uniform(times[0], times[-1], 50),
               times[-1] + 1.0]
    for t in queries:
        expected = np.array([np.interp(t, times, values[:, j]) for j in range(values.shape[1])])
        np.testing.assert_allclose(seg.at(float(t)), expected, rtol=0, atol=1e-12)
    assert np.array_equal(_Segment(times[:1], values[:1], 2).at(5.0), values[0])
