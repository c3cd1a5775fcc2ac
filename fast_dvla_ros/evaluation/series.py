"""Turn the bag's messages into plain numpy series, the only input the metric modules see.

Why a separate step: metrics stay pure functions of arrays (testable without bags) and the bag
is read once. Times are seconds relative to the first message of any analysed topic; both the
receive (log) time and the header stamps are shifted by the same origin, so they stay
comparable as long as the recorder and the nodes share a clock (same machine, or chrony/PTP).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fast_dvla_ros.bag.reader import list_topics, read_messages
from fast_dvla_ros.evaluation.topics import Role, TopicSelection, select_topics

NS = 1e-9
# Beyond this, header stamps and receive times are on different clocks (sim time, unsynchronised
# machines): transport between processes never takes half a second.
CLOCK_MISMATCH_S = 0.5


def _stamp_s(stamp: object) -> float:
    return float(stamp.sec) + float(stamp.nanosec) * NS


@dataclass
class Chunk:
    """One ActionChunk as the evaluation needs it."""

    arrival_s: float  # receive time in the bag
    stamp_s: float  # observation time (header.stamp)
    sequence_id: int
    decoder: str
    checkpoint: str
    latency_s: float
    tokens_per_second: float
    tokens_per_forward: float
    step_period_s: float
    actions: np.ndarray  # [horizon, joints]
    gripper: np.ndarray  # [horizon]
    # stamp -> decode start (DecodeStats.observation_age_s); 0 in bags recorded before the field existed
    observation_age_s: float = 0.0

    def step_time(self, index: int) -> float:
        """When step ``index`` is meant to be executed (ActionChunk.msg: stamp + (i + 1) * period)."""
        return self.stamp_s + (index + 1) * self.step_period_s


@dataclass(frozen=True)
class CommandShape:
    """What one JointTrajectory command carried (its first point and how much came with it)."""

    points: int
    has_velocities: bool
    first_positions: tuple[float, ...]
    first_time_from_start_s: float


def _command_shape(msg: object) -> CommandShape:
    if not msg.points:
        return CommandShape(0, False, (), float("nan"))
    first = msg.points[0]
    return CommandShape(
        points=len(msg.points),
        has_velocities=len(first.velocities) == len(first.positions) > 0,
        first_positions=tuple(float(x) for x in first.positions),
        first_time_from_start_s=_stamp_s(first.time_from_start),
    )


@dataclass
class StatusSeries:
    """ExecutorStatus counters over time (arrays of equal length)."""

    time_s: np.ndarray
    state: np.ndarray
    last_sequence_id: np.ndarray
    chunk_age_s: np.ndarray
    chunks_rejected: np.ndarray
    steps_dropped_stale: np.ndarray
    underruns: np.ndarray
    watchdog_trips: np.ndarray
    clamped_values: np.ndarray
    last_event: list[str]


@dataclass
class Outcome:
    """One EpisodeOutcome."""

    time_s: float
    episode: int
    seed: int
    success: bool
    failure_cause: str
    duration_s: float
    belt_speed_mps: float
    # hand-to-block distance (m) at the episode's first close command; NaN: never closed, or an older bag
    first_close_distance_m: float = float("nan")


@dataclass
class BagSeries:
    """Everything the metrics need from one bag."""

    path: Path
    selection: TopicSelection
    origin_ns: int
    duration_s: float
    command_times_s: np.ndarray
    command_shapes: list[CommandShape]
    chunks: list[Chunk]
    status: StatusSeries | None
    gripper_times_s: np.ndarray
    gripper_widths: np.ndarray
    outcomes: list[Outcome] = field(default_factory=list)


def _status_series(rows: list[tuple[float, object]]) -> StatusSeries | None:
    if not rows:
        return None

    def column(attr: str, dtype: type = np.int64) -> np.ndarray:
        return np.array([getattr(m, attr) for _, m in rows], dtype=dtype)

    return StatusSeries(
        time_s=np.array([t for t, _ in rows]),
        state=column("state"),
        last_sequence_id=column("last_sequence_id"),
        chunk_age_s=column("chunk_age_s", float),
        chunks_rejected=column("chunks_rejected"),
        steps_dropped_stale=column("steps_dropped_stale"),
        underruns=column("underruns"),
        watchdog_trips=column("watchdog_trips"),
        clamped_values=column("clamped_values"),
        last_event=[str(m.last_event) for _, m in rows],
    )


def _chunk(arrival_s: float, origin_s: float, msg: object) -> Chunk | None:
    """Convert; None for a malformed chunk (it is counted, never crashes the report)."""
    joints = len(msg.joint_names)
    horizon = int(msg.horizon)
    actions = np.asarray(msg.actions, dtype=float)
    if joints == 0 or horizon == 0 or actions.size != horizon * joints:
        return None
    gripper = np.asarray(msg.gripper, dtype=float)
    if gripper.size != horizon:
        gripper = np.full(horizon, np.nan)
    return Chunk(
        arrival_s=arrival_s,
        stamp_s=_stamp_s(msg.header.stamp) - origin_s,
        sequence_id=int(msg.sequence_id),
        decoder=str(msg.decoder) or "(unnamed)",
        checkpoint=str(msg.checkpoint),
        latency_s=float(msg.stats.latency_s),
        tokens_per_second=float(msg.stats.tokens_per_second),
        tokens_per_forward=float(msg.stats.tokens_per_forward),
        step_period_s=_stamp_s(msg.step_period),
        actions=actions.reshape(horizon, joints),
        gripper=gripper,
        observation_age_s=float(getattr(msg.stats, "observation_age_s", 0.0)),
    )


def align_chunk_clock(chunks: list[Chunk]) -> float | None:
    """Shift chunk stamps onto the receive clock when the two clocks clearly differ.

    arrival - stamp = camera age + decode latency + transport (+ clock offset); transport is
    milliseconds, so the median of (arrival - stamp - age - latency) estimates the offset. Returns
    the offset applied, or None when the clocks agree.
    """
    if not chunks:
        return None
    offset = float(np.median([c.arrival_s - c.stamp_s - c.observation_age_s - c.latency_s for c in chunks]))
    if abs(offset) <= CLOCK_MISMATCH_S:
        return None
    for chunk in chunks:
        chunk.stamp_s += offset
    return offset


def load_series(path: Path | str, overrides: dict[Role, str] | None = None) -> BagSeries:
    """Read the selected topics of a bag into a :class:`BagSeries`."""
    path = Path(path)
    selection = select_topics(list_topics(path), overrides)
    role_of = {topic: role for role, topic in selection.topics.items() if topic}
    raw: dict[Role, list[tuple[int, object]]] = {role: [] for role in Role}
    for topic, log_ns, msg in read_messages(path, role_of):
        raw[role_of[topic]].append((log_ns, msg))
    all_times = [t for rows in raw.values() for t, _ in rows]
    origin_ns = min(all_times) if all_times else 0
    end_ns = max(all_times) if all_times else 0
    origin_s = origin_ns * NS

    def rel(t_ns: int) -> float:
        return (t_ns - origin_ns) * NS

    chunks = [c for t, m in raw[Role.CHUNKS] if (c := _chunk(rel(t), origin_s, m)) is not None]
    malformed = len(raw[Role.CHUNKS]) - len(chunks)
    if malformed:
        selection.notes.append(f"{malformed} malformed ActionChunk messages skipped (shape mismatch)")
    offset = align_chunk_clock(chunks)
    if offset is not None:
        selection.notes.append(
            f"ActionChunk stamps are {offset:+.3f} s off the bag's receive clock (sim time or unsynchronised "
            "machines); shifted onto it using arrival - camera age - decode latency, so latencies exclude transport"
        )
    return BagSeries(
        path=path,
        selection=selection,
        origin_ns=origin_ns,
        duration_s=(end_ns - origin_ns) * NS,
        command_times_s=np.array([rel(t) for t, _ in raw[Role.COMMANDS]]),
        command_shapes=[_command_shape(m) for _, m in raw[Role.COMMANDS]],
        chunks=chunks,
        status=_status_series([(rel(t), m) for t, m in raw[Role.STATUS]]),
        gripper_times_s=np.array([rel(t) for t, _ in raw[Role.GRIPPER]]),
        gripper_widths=np.array([float(m.data) for _, m in raw[Role.GRIPPER]]),
        outcomes=[
            Outcome(
                time_s=rel(t),
                episode=int(m.episode),
                seed=int(m.seed),
                success=bool(m.success),
                failure_cause=str(m.failure_cause),
                duration_s=float(m.duration_s),
                belt_speed_mps=float(m.belt_speed_mps),
                first_close_distance_m=float(getattr(m, "first_close_distance_m", float("nan"))),
            )
            for t, m in raw[Role.OUTCOMES]
        ],
    )
