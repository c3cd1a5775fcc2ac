"""JTC-like interpolation used by the simulated arm: replacement from the current state, Hermite splines."""

from __future__ import annotations

import numpy as np
import pytest

from fast_dvla_ros.execution.jtc_interpolator import JtcInterpolator, TrajectoryRejected

NAMES = ["a", "b"]


def test_passes_through_points_with_given_velocities_then_holds() -> None:
    it = JtcInterpolator(NAMES, np.zeros(2))
    it.set_trajectory(0.0, 0.0, NAMES, [0.5, 1.0], [[0.5, 1.0], [1.0, 2.0]], [[1.0, 2.0], [0.0, 0.0]])
    q, v = it.sample(0.5)
    assert np.allclose(q, [0.5, 1.0]) and np.allclose(v, [1.0, 2.0])
    q, v = it.sample(5.0)
    assert np.allclose(q, [1.0, 2.0]) and np.allclose(v, 0.0)
    # continuous: small time steps give small position steps
    qs = np.array([it.sample(t)[0] for t in np.linspace(0, 1, 101)])
    assert np.max(np.abs(np.diff(qs, axis=0))) < 0.05


def test_replacement_starts_from_the_current_desired_state() -> None:
    it = JtcInterpolator(NAMES, np.zeros(2))
    it.set_trajectory(0.0, 0.0, NAMES, [1.0], [[1.0, 1.0]], [[0.0, 0.0]])
    q_mid, v_mid = it.sample(0.5)
    it.set_trajectory(0.5, 0.0, list(reversed(NAMES)), [1.0], [[0.0, 0.0]], [[0.0, 0.0]])  # reordered names
    q, v = it.sample(0.5)
    assert np.allclose(q, q_mid) and np.allclose(v, v_mid)


@pytest.mark.parametrize(
    ("names", "t", "q"),
    [(["a", "c"], [0.1], [[0, 0]]), (NAMES, [0.2, 0.1], [[0, 0], [1, 1]]), (NAMES, [0.1], [[np.nan, 0]])],
)
def test_bad_trajectories_are_rejected_and_the_old_one_kept(names, t, q) -> None:
    it = JtcInterpolator(NAMES, np.ones(2))
    with pytest.raises(TrajectoryRejected):
        it.set_trajectory(0.0, 0.0, names, t, q, None)
    assert np.allclose(it.sample(1.0)[0], 1.0)


def test_stamped_trajectory_in_the_past_is_rejected() -> None:
    it = JtcInterpolator(NAMES, np.zeros(2))
    with pytest.raises(TrajectoryRejected, match="past"):
        it.set_trajectory(10.0, 5.0, NAMES, [1.0], [[1.0, 1.0]], None)
