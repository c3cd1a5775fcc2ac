"""One simulator episode driven by a policy: the loop shared by the evaluator, the recovery-data generator
and ``bench/trace_episodes.py``.

``PolicyDriver`` turns simulator observations into decoded chunks (keeping the frames a two-frame
checkpoint needs), ``ChunkStepper`` picks the actions the simulator executes from each chunk (receding
horizon, or the executor's ``ChunkBlender``), ``run_episode`` runs observe -> decide -> execute.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from fast_dvla_ros.core.actuation import hold_sample_time
from fast_dvla_ros.core.frame_history import FrameHistory
from fast_dvla_ros.core.policy import Observation, Policy, PolicyResult
from fast_dvla_ros.execution.blender import BLEND_MODES, Chunk, ChunkBlender

if TYPE_CHECKING:  # the simulator (pybullet) is imported where an evaluation starts
    from fast_dvla_ros.sim.conveyor_env import ConveyorPickEnv


class PolicyDriver:
    """A policy driving simulator episodes: keeps the frames a two-frame checkpoint needs and turns a
    simulator observation into a decoded chunk. Shared by the evaluation and the recovery-data
    generator (``demos --takeover-checkpoint``), so both feed the policy exactly alike."""

    def __init__(self, policy: Policy, control_hz: float) -> None:
        self.policy = policy
        self.control_hz = control_hz
        self.history = FrameHistory(policy.frame_gap_s(control_hz)) if policy.num_frames == 2 else None
        self.steps = 0

    def reset(self, obs: dict) -> None:
        """A new episode starts with ``obs``."""
        self.steps = 0
        if self.history is not None:
            self.history.clear()
            self.history.push(0.0, obs["image"])

    def decide(self, obs: dict, instruction: str, at_step: int | None = None) -> PolicyResult:
        """Decode a chunk for ``obs``, taken at control step ``at_step`` (default: now; earlier when the
        evaluation replays the real-time loop's observation delay)."""
        proprio = np.concatenate([obs["joint_pos"], [obs["gripper_width"]]]).astype(np.float32)
        step = self.steps if at_step is None else at_step
        previous = self.history.previous(step / self.control_hz) if self.history is not None else None
        return self.policy.predict(Observation(obs["image"], proprio, instruction, previous))

    def stepped(self, obs: dict) -> None:
        """One control step was executed and produced ``obs``."""
        self.steps += 1
        if self.history is not None:
            self.history.push(self.steps / self.control_hz, obs["image"])


class ChunkStepper:
    """Which actions the simulator executes for one decoded chunk [H, joints + gripper].

    Without a blend mode: the chunk's first ``execute_steps`` actions (receding horizon). With one: the
    chunk is stamped ``now`` (step i is meant for ``now + (i + 1/2) * dt``, core/actuation.py), added to
    the executor's ``ChunkBlender`` anchored at the last commanded action, and each of the next
    ``execute_steps`` control steps holds the blended plan at its ``hold_sample_time``: what the chunk
    executor sends on the arm, in the demonstrations' zero-order-hold terms.
    """

    def __init__(self, execute_steps: int, dt: float, blend: str | None = None, ensemble_m: float = 0.1) -> None:
        if blend is not None and blend not in BLEND_MODES:
            raise ValueError(f"blend must be None or one of {BLEND_MODES}, got {blend!r}")
        if execute_steps < 1:
            raise ValueError("execute_steps must be >= 1")
        self.execute_steps, self.dt = int(execute_steps), float(dt)
        self.blender = ChunkBlender(mode=blend, ensemble_m=ensemble_m) if blend is not None else None
        self.commanded: np.ndarray | None = None

    def reset(self, commanded: np.ndarray) -> None:
        """A new episode: forget the plan; ``commanded`` = the arm's pose + gripper width now."""
        self.commanded = np.asarray(commanded, dtype=np.float64)
        if self.blender is not None:
            self.blender.clear()

    def actions(self, chunk_actions: np.ndarray, now: float, stamp: float | None = None) -> list[np.ndarray]:
        """The next ``execute_steps`` actions at time ``now`` of a chunk decoded from the observation of time
        ``stamp`` (default ``now``): steps of the chunk that already lie in the past are skipped, as the
        executor does with a chunk that arrives late."""
        stamp = now if stamp is None else stamp
        if self.blender is None:
            skip = min(max(0, round((now - stamp) / self.dt)), len(chunk_actions) - 1)
            out = [np.asarray(a) for a in chunk_actions[skip: skip + self.execute_steps]]
        else:
            chunk = Chunk(stamp=stamp, step_period=self.dt, positions=chunk_actions[:, :-1],
                          gripper=chunk_actions[:, -1])
            self.blender.add(chunk, now, anchor=self.commanded)
            out = [self.blender.sample(hold_sample_time(now + k * self.dt, self.dt)) for k in range(self.execute_steps)]
        self.commanded = np.asarray(out[-1], dtype=np.float64)
        return out


def run_episode(
    env: ConveyorPickEnv,
    driver: PolicyDriver,
    stepper: ChunkStepper,
    seed: int,
    on_decision: Callable[[PolicyResult], None] | None = None,
    on_step: Callable[[np.ndarray, dict, dict], None] | None = None,
    latency_steps: int = 0,
) -> dict:
    """One seeded episode, observe -> decide -> execute until the simulator ends it; returns its last info.

    The one episode loop of the evaluation and of ``bench/trace_episodes.py``: ``on_decision(result)``
    sees every decoded chunk, ``on_step(action, obs, info)`` every executed control step.
    ``latency_steps`` replays the real-time loop's delay: each chunk is decoded from the observation of
    that many control steps earlier (the episode's first one until there is one) and stamped with its time,
    so the arm has moved on and the chunk's past steps are skipped, as on the ROS loop (bench/RESULTS.md
    section 3: observation -> command ~96 ms, about 3 steps, for the distilled student).
    """
    if latency_steps < 0:
        raise ValueError("latency_steps must be >= 0")
    obs, info = env.reset(seed=seed)
    instruction = info.get("instruction", "pick the block from the conveyor and place it in the bin")
    driver.reset(obs)
    stepper.reset(np.concatenate([obs["joint_pos"], [obs["gripper_width"]]]))
    dt = 1.0 / env.control_hz
    seen: deque[tuple[int, dict]] = deque([(0, obs)], maxlen=latency_steps + 1)
    while True:
        at_step, observed = seen[0]
        result = driver.decide(observed, instruction, at_step)
        if on_decision is not None:
            on_decision(result)
        for action in stepper.actions(result.actions, driver.steps * dt, at_step * dt):
            obs, _, terminated, truncated, info = env.step(action)
            driver.stepped(obs)
            seen.append((driver.steps, obs))
            if on_step is not None:
                on_step(action, obs, info)
            if terminated or truncated:
                return info
