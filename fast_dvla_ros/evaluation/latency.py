"""Decode latency per decoder and observation-to-command latency.

Observation-to-command is what the robot feels: from the camera frame (ActionChunk.header.stamp)
to the first command the executor sends after the chunk arrived. It contains decode time,
transport, and the wait for the next control tick. A chunk the executor never accepted (its
sequence id never shows in ExecutorStatus.last_sequence_id) is not counted as used.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from fast_dvla_ros.evaluation.series import Chunk, StatusSeries


@dataclass(frozen=True)
class Distribution:
    """Summary statistics of a sample (seconds unless said otherwise)."""

    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: np.ndarray | list[float]) -> Distribution:
        v = np.asarray(values, dtype=float)
        v = v[np.isfinite(v)]
        if v.size == 0:
            nan = float("nan")
            return cls(0, nan, nan, nan, nan, nan)
        p50, p90, p99 = np.percentile(v, [50, 90, 99])
        return cls(int(v.size), float(v.mean()), float(p50), float(p90), float(p99), float(v.max()))


@dataclass
class DecoderLatency:
    """Decode statistics of the chunks of one decoder."""

    decoder: str
    latency: Distribution
    latencies_s: np.ndarray
    mean_tokens_per_second: float
    mean_tokens_per_forward: float
    checkpoints: list[str]


def decode_latency_by_decoder(chunks: list[Chunk]) -> dict[str, DecoderLatency]:
    """Group chunks by ActionChunk.decoder."""
    groups: dict[str, list[Chunk]] = defaultdict(list)
    for chunk in chunks:
        groups[chunk.decoder].append(chunk)
    result = {}
    for decoder, group in sorted(groups.items()):
        lat = np.array([c.latency_s for c in group])
        result[decoder] = DecoderLatency(
            decoder=decoder,
            latency=Distribution.of(lat),
            latencies_s=lat,
            mean_tokens_per_second=float(np.mean([c.tokens_per_second for c in group])),
            mean_tokens_per_forward=float(np.mean([c.tokens_per_forward for c in group])),
            checkpoints=sorted({c.checkpoint for c in group}),
        )
    return result


@dataclass
class ObsToCommand:
    """Latency from observation to first command using the chunk."""

    obs_to_arrival: Distribution  # decode + transport
    obs_to_command: Distribution
    values_s: np.ndarray
    chunks_used: int
    chunks_never_accepted: int
    sequence_gaps: int  # chunks lost between policy and recorder (sequence id jumps)


def obs_to_command(chunks: list[Chunk], command_times_s: np.ndarray, status: StatusSeries | None) -> ObsToCommand:
    """See module docstring."""
    commands = np.sort(np.asarray(command_times_s, dtype=float))
    # ExecutorStatus reports only the newest accepted id per tick, so a chunk superseded within
    # one tick never shows; only ids beyond the last accepted one are surely never used.
    accepted_max = int(status.last_sequence_id.max()) if status is not None and status.time_s.size else None
    arrival, latency = [], []
    never = 0
    for chunk in chunks:
        arrival.append(chunk.arrival_s - chunk.stamp_s)
        if accepted_max is not None and chunk.sequence_id > accepted_max:
            never += 1
            continue
        idx = int(np.searchsorted(commands, chunk.arrival_s, side="left"))
        if idx < commands.size:
            latency.append(commands[idx] - chunk.stamp_s)
    ids = np.array(sorted({c.sequence_id for c in chunks}), dtype=np.int64)
    seq_gaps = int(np.sum(np.diff(ids) - 1)) if ids.size > 1 else 0
    values = np.array(latency)
    return ObsToCommand(
        obs_to_arrival=Distribution.of(arrival),
        obs_to_command=Distribution.of(values),
        values_s=values,
        chunks_used=int(values.size),
        chunks_never_accepted=never,
        sequence_gaps=seq_gaps,
    )
