"""The gripper as a real actuator: binary decisions from the plan's width, and one franka_gripper goal at a time.

The policy's gripper channel is a width per step. The demonstrations only ever hold fully open or
closed, but a decoded and blended channel flips between the two at the chunk rate when the policy is
unsure (10-32 open/close changes in a failed loop episode; bench/RESULTS.md). A real Franka Hand
takes 0.5-1 s per grasp, so every flip would be a goal preempting the last. Hence two layers:

* :class:`GripperDecider` turns the width into open/closed with a hysteresis band (no flip on a width
  hovering at the middle) and a minimum dwell (no flip back before the last change had time to act).
  The executor applies it for every gripper it drives, the simulator's Float64 topic included, so the
  loop's success is measured with what the robot will do.
* :class:`GripperGoalTracker` keeps one goal in flight (franka_gripper accepts every goal and runs
  each in its own thread; on the hand a new command aborts the running one): a new decision waits
  for the running goal's result or timeout, then the latest decision is sent. A failed or timed-out
  goal is reported once and not retried until the decision changes (a grasp that closed on nothing
  fails again if repeated).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar


@dataclass(frozen=True)
class GripperSettings:
    """Decision thresholds (m of commanded width) and timing (s); widths sent for each decision."""

    close_below_m: float = 0.03
    open_above_m: float = 0.05
    min_dwell_s: float = 0.3
    open_width_m: float = 0.08
    closed_width_m: float = 0.0

    # executor node parameter of each field (one mapping for the node and the evaluator's real-time mode)
    PARAMETERS: ClassVar[dict[str, str]] = {
        "close_below_m": "gripper_close_below_m",
        "open_above_m": "gripper_open_above_m",
        "min_dwell_s": "gripper_min_dwell_s",
        "open_width_m": "gripper_max_width",
        "closed_width_m": "gripper_min_width",
    }

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> GripperSettings:
        """From executor parameters (name -> value); names not given keep their defaults."""
        kw = {f.name: float(params[cls.PARAMETERS[f.name]]) for f in fields(cls) if cls.PARAMETERS[f.name] in params}
        return cls(**kw)

    def __post_init__(self) -> None:
        if not (0.0 <= self.close_below_m <= self.open_above_m):
            raise ValueError(
                f"gripper thresholds need 0 <= close_below ({self.close_below_m}) <= open_above ({self.open_above_m})"
            )
        if not (math.isfinite(self.min_dwell_s) and self.min_dwell_s >= 0.0):
            raise ValueError(f"gripper min_dwell_s must be >= 0, got {self.min_dwell_s}")
        if self.closed_width_m > self.open_width_m:
            raise ValueError("gripper closed width must not exceed the open width")


class GripperDecider:
    """Open/closed from a stream of commanded widths; ``closed`` None until the first width of an epoch."""

    def __init__(self, settings: GripperSettings | None = None) -> None:
        self.settings = settings or GripperSettings()
        self.closed: bool | None = None
        self.changed_at = -math.inf
        self.changes = 0  # decisions changed (open <-> closed), over the executor's life

    def reset(self) -> None:
        """A new episode or a re-anchor: the next width decides afresh (the hand may have been moved)."""
        self.closed, self.changed_at = None, -math.inf

    def decide(self, width: float, now: float) -> bool:
        """The decision for the commanded ``width`` at ``now``: True = closed."""
        s = self.settings
        if self.closed is None:
            self.closed = width < 0.5 * (s.close_below_m + s.open_above_m)
            self.changed_at = now
            return self.closed
        if now - self.changed_at >= s.min_dwell_s:
            flip = width > s.open_above_m if self.closed else width < s.close_below_m
            if flip:
                self.closed = not self.closed
                self.changed_at = now
                self.changes += 1
        return self.closed

    def width(self) -> float | None:
        """The width that represents the current decision (None before the first)."""
        if self.closed is None:
            return None
        return self.settings.closed_width_m if self.closed else self.settings.open_width_m


HOMING, GRASP, MOVE = "homing", "grasp", "move"


@dataclass
class GripperGoal:
    """A goal to send: ``kind`` grasp (closing) / move (opening) / homing; ``token`` names it in results."""

    kind: str
    token: int
    sent_at: float

    @property
    def closes(self) -> bool:
        return self.kind == GRASP


class GripperGoalTracker:
    """One franka_gripper goal at a time (see module doc). Returns event texts for the executor to report."""

    def __init__(self, timeout_s: float = 3.0) -> None:
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"gripper goal timeout must be > 0, got {timeout_s}")
        self.timeout_s = float(timeout_s)
        self.in_flight: GripperGoal | None = None
        self.done_closed: bool | None = None  # decision the last finished goal acted on (None: unknown)
        self.goals_sent = 0
        self.failures = 0
        self._tokens = 0

    def _send(self, kind: str, now: float) -> GripperGoal:
        self._tokens += 1
        self.goals_sent += 1
        self.in_flight = GripperGoal(kind, self._tokens, now)
        return self.in_flight

    def homing(self, now: float) -> GripperGoal:
        """Home the fingers first (franka_gripper ~/homing: calibrates the width; ends open)."""
        return self._send(HOMING, now)

    def wanted(self, closed: bool | None) -> str | None:
        """The kind of goal decision ``closed`` needs now, or None (one in flight, or already acted on)."""
        if closed is None or self.in_flight is not None or self.done_closed == closed:
            return None
        return GRASP if closed else MOVE

    def next_goal(self, closed: bool | None, now: float) -> GripperGoal | None:
        """Record and return the goal to send now for decision ``closed`` (see ``wanted``), or None."""
        kind = self.wanted(closed)
        return None if kind is None else self._send(kind, now)

    def result(self, token: int, success: bool, error: str) -> str | None:
        """The result of goal ``token`` (a late result of a goal given up on is ignored); a failure's event."""
        goal = self.in_flight
        if goal is None or goal.token != token:
            return None
        self.in_flight = None
        # A failed grasp still left the fingers closed (on nothing, or on something outside epsilon); a
        # failed move or homing left them wherever they stopped: unknown, so the next decision is sent.
        self.done_closed = goal.closes if (success or goal.closes) else None
        if success:
            return None
        self.failures += 1
        return f"gripper {goal.kind} failed: {error or 'no reason given'}"

    def check_timeout(self, now: float) -> GripperGoal | None:
        """The goal in flight if it ran past the timeout (the caller cancels it and reports it), else None."""
        goal = self.in_flight
        if goal is None or now - goal.sent_at <= self.timeout_s:
            return None
        self.in_flight, self.done_closed = None, None  # where the fingers are is unknown: act on the next decision
        self.failures += 1
        return goal
