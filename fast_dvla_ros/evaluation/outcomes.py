"""Episode outcomes (EpisodeOutcome): success rate with its confidence interval, failure causes, and
how well aimed the first grasp was."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from fast_dvla_ros.evaluation.intervals import wilson_interval
from fast_dvla_ros.evaluation.latency import Distribution
from fast_dvla_ros.evaluation.series import Outcome


@dataclass
class OutcomeSummary:
    """Counts over the episodes in the bag."""

    episodes: int
    successes: int
    failure_causes: dict[str, int]
    mean_duration_s: float
    ci95: tuple[float, float] = (0.0, 1.0)  # Wilson interval of the success rate
    # Over the episodes with a finite EpisodeOutcome.first_close_distance_m (count 0: never closed,
    # or a bag from before the field existed).
    first_close_distance_m: Distribution = field(default_factory=lambda: Distribution.of([]))
    success_seeds: list[int] = field(default_factory=list)
    failure_seeds: list[int] = field(default_factory=list)
    total_duration_s: float = 0.0  # the episodes' summed time, failed ones included
    belt_speed_mps: tuple[float, float] = (float("nan"), float("nan"))  # slowest and fastest episode's belt

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else float("nan")

    @property
    def picks_per_minute(self) -> float:
        """What a conveyor cell delivers: successes per minute of episode time, failures' time included."""
        return picks_per_minute(self.successes, self.total_duration_s)

    def describe_throughput(self) -> str:
        """'x picks/min (belt lo-hi m/s)'."""
        lo, hi = self.belt_speed_mps
        rate = self.picks_per_minute
        text = f"{rate:.2f} picks/min" if math.isfinite(rate) else "n/a"
        if math.isfinite(lo):
            text += f" (belt {lo:.3f} m/s)" if lo == hi else f" (belt {lo:.3f}-{hi:.3f} m/s)"
        return text

    def describe_success(self) -> str:
        """'k/N = x% [lo, hi] (95% Wilson)', the headline of a loop run."""
        lo, hi = self.ci95
        return (
            f"{self.successes}/{self.episodes} = {100 * self.success_rate:.0f}% "
            f"[{100 * lo:.0f}, {100 * hi:.0f}] (95% Wilson)"
        )

    def describe_causes(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.failure_causes.items()) or "none"

    def describe_first_close(self) -> str:
        """Median and p90 in mm, or n/a when no episode has a finite distance."""
        d = self.first_close_distance_m
        if d.count == 0:
            return "n/a"
        return f"median {1000 * d.p50:.1f} mm, p90 {1000 * d.p90:.1f} mm over {d.count} episodes"


def picks_per_minute(successes: int, total_duration_s: float) -> float:
    """Successes per minute of summed episode time; NaN for no time."""
    return 60.0 * successes / total_duration_s if total_duration_s > 0 else float("nan")


def summarize_outcomes(outcomes: list[Outcome]) -> OutcomeSummary:
    """Success rate and its Wilson interval, failure causes (most common first), mean episode duration,
    first-close distance and the seeds of successes and failures."""
    causes = Counter(o.failure_cause or "unknown" for o in outcomes if not o.success)
    durations = [o.duration_s for o in outcomes]
    successes = sum(o.success for o in outcomes)
    distances = [o.first_close_distance_m for o in outcomes if math.isfinite(o.first_close_distance_m)]
    belts = [o.belt_speed_mps for o in outcomes]
    return OutcomeSummary(
        episodes=len(outcomes),
        successes=successes,
        failure_causes=dict(causes.most_common()),
        mean_duration_s=sum(durations) / len(durations) if durations else float("nan"),
        ci95=wilson_interval(successes, len(outcomes)),
        first_close_distance_m=Distribution.of(distances),
        success_seeds=[o.seed for o in outcomes if o.success],
        failure_seeds=[o.seed for o in outcomes if not o.success],
        total_duration_s=float(sum(durations)),
        belt_speed_mps=(min(belts), max(belts)) if belts else (math.nan, math.nan),
    )
