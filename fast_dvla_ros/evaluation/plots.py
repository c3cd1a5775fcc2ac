"""PNG plots of one or two analyses (two: side by side in one figure, same axes).

Each function returns the file name it wrote, or None when no bag has the data, so the report
links only existing images. Matplotlib runs headless (Agg): reports are made on servers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from fast_dvla_ros.evaluation.analysis import BagAnalysis
from fast_dvla_ros.evaluation.command_rate import GAP_FACTOR

COLORS = ("tab:blue", "tab:orange")


def _save(fig: plt.Figure, out_dir: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out_dir / name, dpi=110)
    plt.close(fig)
    return name


def command_rate_plot(analyses: Sequence[BagAnalysis], out_dir: Path) -> str | None:
    """Commands per second over time, gaps marked."""
    if not any(a.rate and a.rate.count > 2 for a in analyses):
        return None
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for a, color in zip(analyses, COLORS, strict=False):
        if a.rate and a.rate.count > 2:
            ax.step(a.rate.rate_bins_s, a.rate.rate_hz, where="post", color=color, label=a.name)
            for gap in a.rate.gaps:
                ax.axvspan(gap.start_s, gap.start_s + gap.duration_s, color=color, alpha=0.2)
    ax.set_xlabel("time in bag (s)")
    ax.set_ylabel("commands / s (1 s bins)")
    ax.set_title("Executor command rate (shaded: gaps)")
    ax.legend()
    return _save(fig, out_dir, "command_rate.png")


def jitter_plot(analyses: Sequence[BagAnalysis], out_dir: Path) -> str | None:
    """Histogram of interval minus nominal period (ms), gaps excluded."""
    usable = [a for a in analyses if a.rate and a.rate.count > 2]
    if not usable:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for a, color in zip(analyses, COLORS, strict=False):
        if a in usable:
            r = a.rate
            regular = r.intervals_s[r.intervals_s <= GAP_FACTOR * r.nominal_period_s] - r.nominal_period_s
            label = f"{a.name} (std {r.jitter_std_s * 1e3:.2f} ms)"
            ax.hist(regular * 1e3, bins=60, alpha=0.55, color=color, label=label)
    ax.set_xlabel("command interval - nominal period (ms)")
    ax.set_ylabel("count")
    ax.set_yscale("log")
    ax.set_title("Command jitter")
    ax.legend()
    return _save(fig, out_dir, "command_jitter.png")


def decode_latency_plot(analyses: Sequence[BagAnalysis], out_dir: Path) -> str | None:
    """Box plot of decode latency per bag and decoder."""
    data, labels = [], []
    for a in analyses:
        for decoder, d in a.decoders.items():
            data.append(d.latencies_s * 1e3)
            labels.append(f"{a.name}\n{decoder}" if len(analyses) > 1 else decoder)
    if not data:
        return None
    fig, ax = plt.subplots(figsize=(max(5.0, 1.8 * len(data)), 3.6))
    ax.boxplot(data, showfliers=True)
    ax.set_xticks(range(1, len(labels) + 1), labels)
    ax.set_ylabel("decode latency (ms)")
    ax.set_title("Decode latency per decoder (ActionChunk.stats)")
    return _save(fig, out_dir, "decode_latency.png")


def obs_to_command_plot(analyses: Sequence[BagAnalysis], out_dir: Path) -> str | None:
    """Histogram of observation-to-first-command latency (ms)."""
    usable = [a for a in analyses if a.obs_to_command and a.obs_to_command.values_s.size]
    if not usable:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for a, color in zip(analyses, COLORS, strict=False):
        if a in usable:
            ax.hist(a.obs_to_command.values_s * 1e3, bins=40, alpha=0.55, color=color, label=a.name)
    ax.set_xlabel("observation -> first command using its chunk (ms)")
    ax.set_ylabel("chunks")
    ax.set_title("Observation-to-command latency")
    ax.legend()
    return _save(fig, out_dir, "obs_to_command.png")


def executor_events_plot(analyses: Sequence[BagAnalysis], out_dir: Path) -> str | None:
    """Cumulative underruns and watchdog trips over time."""
    usable = [a for a in analyses if a.executor is not None]
    if not usable:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for a, color in zip(analyses, COLORS, strict=False):
        if a in usable:
            for counter, style in (("underruns", "-"), ("watchdog_trips", "--")):
                times = a.executor.times(counter)
                ax.step(
                    [0.0, *times, a.executor.end_s],  # hold the total until the bag ends
                    [*range(len(times) + 1), len(times)],
                    where="post",
                    color=color,
                    linestyle=style,
                    label=f"{a.name}: {counter}",
                )
    ax.set_xlabel("time in bag (s)")
    ax.set_ylabel("cumulative count")
    ax.set_title("Executor underruns and watchdog trips")
    ax.legend(fontsize="small")
    return _save(fig, out_dir, "executor_events.png")


def discontinuity_plot(analyses: Sequence[BagAnalysis], out_dir: Path) -> str | None:
    """Joint jump at each chunk switch-over over time."""
    usable = [a for a in analyses if a.discontinuity and a.discontinuity.switches]
    if not usable:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for a, color in zip(analyses, COLORS, strict=False):
        if a in usable:
            s = a.discontinuity.switches
            ax.plot([x.time_s for x in s], [x.joint_jump_rad for x in s], ".", color=color, label=a.name)
    ax.set_xlabel("time in bag (s)")
    ax.set_ylabel("max joint jump (rad)")
    ax.set_title("Chunk-to-chunk discontinuity at switch-over")
    ax.legend()
    return _save(fig, out_dir, "discontinuity.png")


def gripper_plot(analyses: Sequence[BagAnalysis], out_dir: Path) -> str | None:
    """Commanded gripper width with open/close events."""
    usable = [a for a in analyses if a.series.gripper_times_s.size]
    if not usable:
        return None
    fig, ax = plt.subplots(figsize=(8, 2.8))
    for a, color in zip(analyses, COLORS, strict=False):
        if a in usable:
            ax.step(a.series.gripper_times_s, a.series.gripper_widths * 1e3, where="post", color=color, label=a.name)
            for e in a.gripper:
                ax.axvline(e.time_s, color=color, linestyle=":" if e.kind == "open" else "-", alpha=0.6)
    ax.set_xlabel("time in bag (s)")
    ax.set_ylabel("width (mm)")
    ax.set_title("Gripper commands (solid: close, dotted: open)")
    ax.legend()
    return _save(fig, out_dir, "gripper.png")


ALL_PLOTS = (
    command_rate_plot,
    jitter_plot,
    decode_latency_plot,
    obs_to_command_plot,
    executor_events_plot,
    discontinuity_plot,
    gripper_plot,
)
