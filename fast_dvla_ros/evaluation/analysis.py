"""One call from a bag path to every metric of the report (:class:`BagAnalysis`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fast_dvla_ros.evaluation.command_content import CommandContent, command_content
from fast_dvla_ros.evaluation.command_rate import GAP_FACTOR, CommandRateStats, command_rate
from fast_dvla_ros.evaluation.discontinuity import Discontinuity, discontinuity
from fast_dvla_ros.evaluation.executor_events import ExecutorEvents, executor_events
from fast_dvla_ros.evaluation.gripper import GripperEvent, gripper_events
from fast_dvla_ros.evaluation.latency import DecoderLatency, ObsToCommand, decode_latency_by_decoder, obs_to_command
from fast_dvla_ros.evaluation.outcomes import OutcomeSummary, summarize_outcomes
from fast_dvla_ros.evaluation.series import BagSeries, load_series
from fast_dvla_ros.evaluation.topics import Role


@dataclass
class BagAnalysis:
    """Metrics of one bag; a part is None when the bag lacks the topic it needs."""

    name: str
    series: BagSeries
    rate: CommandRateStats | None
    commands: CommandContent | None
    decoders: dict[str, DecoderLatency]
    obs_to_command: ObsToCommand | None
    executor: ExecutorEvents | None
    discontinuity: Discontinuity | None
    gripper: list[GripperEvent]
    outcomes: OutcomeSummary | None
    notes: list[str] = field(default_factory=list)


def analyze(
    path: Path | str,
    overrides: dict[Role, str] | None = None,
    *,
    nominal_rate_hz: float | None = None,
    name: str | None = None,
) -> BagAnalysis:
    """Read the bag and compute every metric the bag has data for."""
    series = load_series(path, overrides)
    notes = list(series.selection.notes)
    for role in Role:
        if series.selection[role] is None:
            notes.append(f"no {role.value} topic in the bag: that part of the report is empty")
    has_commands = series.command_times_s.size > 0
    rate = command_rate(series.command_times_s, nominal_rate_hz) if has_commands else None
    max_interval = GAP_FACTOR * rate.nominal_period_s if rate is not None else 0.0
    return BagAnalysis(
        name=name or Path(path).name,
        series=series,
        rate=rate,
        commands=command_content(series.command_times_s, series.command_shapes, max_interval),
        decoders=decode_latency_by_decoder(series.chunks),
        obs_to_command=obs_to_command(series.chunks, series.command_times_s, series.status)
        if series.chunks and has_commands
        else None,
        executor=executor_events(series.status) if series.status is not None else None,
        discontinuity=discontinuity(series.chunks) if len(series.chunks) > 1 else None,
        gripper=gripper_events(series.gripper_times_s, series.gripper_widths),
        outcomes=summarize_outcomes(series.outcomes) if series.outcomes else None,
        notes=notes,
    )
