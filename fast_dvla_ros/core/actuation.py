"""The one definition of "step k of a chunk" in time, shared by everything that makes or runs actions.

The demonstrations (fast_dvla_ros/train/demos.py, the expert through ``ConveyorPickEnv.step``) hold
action ``a_k`` as the arm's motor target over the control step ``[t_k, t_k + dt)``: a zero-order hold.
The synchronous evaluator does the same. The chunk executor instead sends trajectory points to a
joint_trajectory_controller, which interpolates a spline through them at its own rate (1 kHz on an
FR3; every physics substep in the simulator node): a continuous target. A zero-order hold of a sample
is, to first order, that sample delayed by half a hold interval, so the continuous target that
commands what the demonstrations commanded passes through ``a_k`` at the middle of its step:

    step k of a chunk whose observation is stamped t0  ->  time  t0 + (k + STEP_PHASE) * dt,  STEP_PHASE = 1/2

Sending ``a_k`` for ``t0 + (k + 1) * dt`` instead lags the trained behaviour by half a step, and a
follower sampled once per 60 Hz tick adds another quarter: the arm runs 0.5-1 control step behind the
policy's plan.

Who uses it: ``Chunk.step_times`` (executor blender), ``ChunkStepper`` (evaluator: the action held
over ``[t, t + dt)`` is the plan at ``hold_sample_time(t, dt)``), and msg/ActionChunk.msg documents it.
"""

from __future__ import annotations

import numpy as np

STEP_PHASE = 0.5


def step_times(stamp: float, horizon: int, step_period: float) -> np.ndarray:
    """Times [horizon] at which a continuous target passes through steps 0..horizon-1 of a chunk."""
    return stamp + step_period * (np.arange(horizon, dtype=np.float64) + STEP_PHASE)


def hold_sample_time(step_start: float, step_period: float) -> float:
    """The plan time whose value a zero-order-hold control step starting at ``step_start`` executes."""
    return step_start + STEP_PHASE * step_period
