"""Episode outcomes (EpisodeOutcome): success rate and failure causes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from fast_dvla_ros.evaluation.series import Outcome


@dataclass
class OutcomeSummary:
    """Counts over the episodes in the bag."""

    episodes: int
    successes: int
    failure_causes: dict[str, int]
    mean_duration_s: float

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else float("nan")


def summarize_outcomes(outcomes: list[Outcome]) -> OutcomeSummary:
    """Success rate, failure causes (most common first) and mean episode duration."""
    causes = Counter(o.failure_cause or "unknown" for o in outcomes if not o.success)
    durations = [o.duration_s for o in outcomes]
    return OutcomeSummary(
        episodes=len(outcomes),
        successes=sum(o.success for o in outcomes),
        failure_causes=dict(causes.most_common()),
        mean_duration_s=sum(durations) / len(durations) if durations else float("nan"),
    )
