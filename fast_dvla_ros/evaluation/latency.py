"""Decode latency per decoder and observation-to-command latency.

Observation-to-command is what the robot feels: from the camera frame (ActionChunk.header.stamp)
to the first command the executor sends after the chunk arrived. It contains decode time,
transport, and the wait for the next control tick. A chunk the executor never accepted (its
sequence id never shows in ExecutorStatus.last_sequence_id) is not counted as used.

:func:`latency_split` says where that time goes, chunk by chunk, so a slow loop points at its cause:

    camera age     stamp -> decode start (DecodeStats.observation_age_s: image transport plus the wait
                   for the decoder to finish the previous chunk)
    decode         DecodeStats.latency_s
    delivery       the rest up to the chunk's receive time in the bag (publish + DDS transport)
    executor wait  arrival -> first trajectory command recorded after it (the next control tick)

The four add up to the total of each chunk exactly; their p50s need not add up to the total's p50.
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
class LatencySplit:
    """Observation -> command latency of the used chunks, split into its parts (module docstring)."""

    camera_age: Distribution | None  # None: every age is 0, a bag from before DecodeStats.observation_age_s
    decode: Distribution
    delivery: Distribution  # includes the camera age when camera_age is None
    executor_wait: Distribution
    total: Distribution
    parts_s: dict[str, np.ndarray]  # per used chunk, keys as PARTS plus "total"

    PARTS = ("camera_age", "decode", "delivery", "executor_wait")

    def p50_ms(self) -> dict[str, float]:
        """p50 of each part and of the total in ms (NaN for an unknown camera age)."""
        out = {}
        for name in (*self.PARTS, "total"):
            d = getattr(self, name)
            out[name] = float("nan") if d is None else 1000.0 * d.p50
        return out

    def describe(self) -> str:
        """One line for summaries: the p50 of every part and of the total."""
        ms = self.p50_ms()
        age = "n/a" if self.camera_age is None else f"{ms['camera_age']:.1f}"
        delivery = "delivery" if self.camera_age is not None else "delivery (incl. camera age)"
        return (
            f"camera age {age} + decode {ms['decode']:.1f} + {delivery} {ms['delivery']:.1f} + "
            f"executor wait {ms['executor_wait']:.1f} ms (p50 each); total p50 {ms['total']:.1f} ms, "
            f"p99 {1000 * self.total.p99:.1f} ms over {self.total.count} chunks"
        )


@dataclass
class ObsToCommand:
    """Latency from observation to first command using the chunk."""

    obs_to_arrival: Distribution  # decode + transport
    obs_to_command: Distribution
    values_s: np.ndarray
    chunks_used: int
    chunks_never_accepted: int
    sequence_gaps: int  # chunks lost between policy and recorder (sequence id jumps)
    split: LatencySplit | None = None  # where obs_to_command goes; None when no chunk was used


def _first_commands(
    chunks: list[Chunk], command_times_s: np.ndarray, status: StatusSeries | None
) -> tuple[list[tuple[Chunk, float]], int]:
    """(chunk, time of the first command at or after its arrival) of each used chunk, and the number
    of chunks surely never accepted."""
    commands = np.sort(np.asarray(command_times_s, dtype=float))
    # ExecutorStatus reports only the newest accepted id per tick, so a chunk superseded within
    # one tick never shows; only ids beyond the last accepted one are surely never used.
    accepted_max = int(status.last_sequence_id.max()) if status is not None and status.time_s.size else None
    used, never = [], 0
    for chunk in chunks:
        if accepted_max is not None and chunk.sequence_id > accepted_max:
            never += 1
            continue
        idx = int(np.searchsorted(commands, chunk.arrival_s, side="left"))
        if idx < commands.size:
            used.append((chunk, float(commands[idx])))
    return used, never


def _split(used: list[tuple[Chunk, float]]) -> LatencySplit | None:
    if not used:
        return None
    age = np.array([c.observation_age_s for c, _ in used])
    age_known = bool(np.any(age != 0.0))
    if not age_known:
        age = np.zeros_like(age)  # delivery then carries the (unknown) age
    decode = np.array([c.latency_s for c, _ in used])
    arrival = np.array([c.arrival_s - c.stamp_s for c, _ in used])
    total = np.array([t - c.stamp_s for c, t in used])
    parts = {
        "camera_age": age,
        "decode": decode,
        "delivery": arrival - age - decode,
        "executor_wait": total - arrival,
        "total": total,
    }
    return LatencySplit(
        camera_age=Distribution.of(age) if age_known else None,
        decode=Distribution.of(parts["decode"]),
        delivery=Distribution.of(parts["delivery"]),
        executor_wait=Distribution.of(parts["executor_wait"]),
        total=Distribution.of(total),
        parts_s=parts,
    )


def latency_split(
    chunks: list[Chunk], command_times_s: np.ndarray, status: StatusSeries | None
) -> LatencySplit | None:
    """Camera age, decode, delivery and executor wait of each used chunk (module docstring); None
    when no chunk has a command after it."""
    return _split(_first_commands(chunks, command_times_s, status)[0])


def obs_to_command(chunks: list[Chunk], command_times_s: np.ndarray, status: StatusSeries | None) -> ObsToCommand:
    """See module docstring."""
    used, never = _first_commands(chunks, command_times_s, status)
    ids = np.array(sorted({c.sequence_id for c in chunks}), dtype=np.int64)
    seq_gaps = int(np.sum(np.diff(ids) - 1)) if ids.size > 1 else 0
    values = np.array([t - c.stamp_s for c, t in used])
    return ObsToCommand(
        obs_to_arrival=Distribution.of([c.arrival_s - c.stamp_s for c in chunks]),
        obs_to_command=Distribution.of(values),
        values_s=values,
        chunks_used=int(values.size),
        chunks_never_accepted=never,
        sequence_gaps=seq_gaps,
        split=_split(used),
    )
