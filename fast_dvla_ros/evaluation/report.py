"""Markdown report of one bag, or of two bags side by side (``--compare``).

The report states numbers with units and the topics they came from, so a reader can check
them against the bag; plots are linked PNGs next to the Markdown file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

from fast_dvla_ros.evaluation import plots
from fast_dvla_ros.evaluation.analysis import BagAnalysis
from fast_dvla_ros.evaluation.topics import Role

MAX_LISTED = 15  # events listed per table; the rest are counted


def _fmt(value: float | None, scale: float = 1.0, digits: int = 2, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value * scale:.{digits}f}{unit}"


# One row of the summary table: label and a function of an analysis.
SummaryRow = tuple[str, Callable[[BagAnalysis], str]]


def _decoder_rows(analyses: Sequence[BagAnalysis]) -> list[SummaryRow]:
    decoders = sorted({d for a in analyses for d in a.decoders})
    rows: list[SummaryRow] = []
    for name in decoders:

        def cell(a: BagAnalysis, key: str = name) -> str:
            d = a.decoders.get(key)
            if d is None:
                return "-"
            lat = d.latency
            return (
                f"{lat.count} chunks, mean {_fmt(lat.mean, 1e3, 1)} / p90 {_fmt(lat.p90, 1e3, 1)} / "
                f"max {_fmt(lat.max, 1e3, 1)} ms, {_fmt(d.mean_tokens_per_second, digits=0)} tok/s"
            )

        rows.append((f"decode latency `{name}`", cell))
    return rows


def summary_rows(analyses: Sequence[BagAnalysis]) -> list[SummaryRow]:
    """The headline metrics, one function per row (shared by single and compare reports)."""

    def rate(a: BagAnalysis) -> str:
        r = a.rate
        return "-" if r is None else f"{_fmt(r.mean_rate_hz, digits=2)} Hz (nominal {_fmt(r.nominal_rate_hz)} Hz)"

    def executor(a: BagAnalysis, counter: str) -> str:
        return "-" if a.executor is None else str(a.executor.totals[counter])

    def o2c(a: BagAnalysis) -> str:
        o = a.obs_to_command
        if o is None:
            return "-"
        d = o.obs_to_command
        return f"mean {_fmt(d.mean, 1e3, 1)} / p90 {_fmt(d.p90, 1e3, 1)} / max {_fmt(d.max, 1e3, 1)} ms"

    def disc(a: BagAnalysis) -> str:
        d = a.discontinuity
        if d is None:
            return "-"
        if not d.switches:
            return f"no overlapping switch ({d.no_overlap} chunks arrived after their predecessor ended)"
        j = d.joint_jump
        return f"mean {_fmt(j.mean, digits=4)} / p90 {_fmt(j.p90, digits=4)} / max {_fmt(j.max, digits=4)} rad"

    def gaps(a: BagAnalysis) -> str:
        if a.rate is None:
            return "-"
        longest = max((g.duration_s for g in a.rate.gaps), default=None)
        return f"{len(a.rate.gaps)} (longest {_fmt(longest, 1e3, 0)} ms)"

    def content(a: BagAnalysis) -> str:
        c = a.commands
        return "-" if c is None else f"{_fmt(c.mean_points, digits=1)} / {_fmt(c.with_velocities, 100, 0)} %"

    def step(a: BagAnalysis) -> str:
        c = a.commands
        if c is None:
            return "-"
        return (
            f"{_fmt(c.max_step_rad, digits=4)} rad at {_fmt(c.worst_step_time_s)} s "
            f"(max {_fmt(c.max_speed_rad_s)} rad/s)"
        )

    def success(a: BagAnalysis) -> str:
        o = a.outcomes
        return "-" if o is None else f"{o.successes}/{o.episodes} ({_fmt(o.success_rate, 100, 1)} %)"

    def split(a: BagAnalysis) -> str:
        s = a.obs_to_command.split if a.obs_to_command else None
        return "-" if s is None else s.describe()

    return [
        ("duration", lambda a: _fmt(a.series.duration_s, digits=1, unit=" s")),
        ("commands", lambda a: "-" if a.rate is None else str(a.rate.count)),
        ("command rate", rate),
        (
            "jitter std / p99 of abs",
            lambda a: (
                "-" if a.rate is None else f"{_fmt(a.rate.jitter_std_s, 1e3)} / {_fmt(a.rate.jitter_p99_abs_s, 1e3)} ms"
            ),
        ),
        ("command gaps", gaps),
        ("points per command / with velocities", content),
        ("max step between commands", step),
        ("chunks", lambda a: str(len(a.series.chunks))),
        *_decoder_rows(analyses),
        ("obs -> command", o2c),
        ("obs -> command split", split),
        ("underruns", lambda a: executor(a, "underruns")),
        ("watchdog trips", lambda a: executor(a, "watchdog_trips")),
        ("chunks rejected", lambda a: executor(a, "chunks_rejected")),
        ("switch-over jump", disc),
        ("gripper events", lambda a: str(len(a.gripper))),
        ("episodes (success)", success),
        ("success 95% CI", lambda a: "-" if a.outcomes is None else a.outcomes.describe_success()),
        ("first-close hand-to-block", lambda a: "-" if a.outcomes is None else a.outcomes.describe_first_close()),
        ("picks per minute (episode time, failures included)",
         lambda a: "-" if a.outcomes is None else a.outcomes.describe_throughput()),
    ]


def _summary_table(analyses: Sequence[BagAnalysis]) -> list[str]:
    header = "| metric | " + " | ".join(f"`{a.name}`" for a in analyses) + " |"
    lines = [header, "|---" * (len(analyses) + 1) + "|"]
    for label, cell in summary_rows(analyses):
        lines.append(f"| {label} | " + " | ".join(cell(a) for a in analyses) + " |")
    return lines


def _details(a: BagAnalysis) -> list[str]:
    lines = [f"### `{a.name}`", "", f"Bag: `{a.series.path}`", "", "| role | topic |", "|---|---|"]
    lines += [f"| {role.value} | `{a.series.selection[role] or '-'}` |" for role in Role]
    if a.notes:
        lines += ["", *[f"- {note}" for note in a.notes]]
    if a.rate and a.rate.gaps:
        lines += ["", "Command gaps:", "", "| start (s) | length (ms) | missed ticks |", "|---|---|---|"]
        lines += [
            f"| {g.start_s:.3f} | {g.duration_s * 1e3:.0f} | {g.missed_ticks} |" for g in a.rate.gaps[:MAX_LISTED]
        ]
        if len(a.rate.gaps) > MAX_LISTED:
            lines.append(f"\n... and {len(a.rate.gaps) - MAX_LISTED} more")
    if a.obs_to_command:
        o = a.obs_to_command
        lines += [
            "",
            f"Chunks used: {o.chunks_used}; never accepted by the executor: {o.chunks_never_accepted}; "
            f"lost in transport (sequence gaps): {o.sequence_gaps}; observation -> chunk arrival mean "
            f"{_fmt(o.obs_to_arrival.mean, 1e3, 1)} ms.",
        ]
    if a.executor:
        e = a.executor
        states = ", ".join(f"{k} {_fmt(v, 100, 1)} %" for k, v in e.state_fraction.items())
        lines += ["", f"Executor time per state: {states}. Restarts seen: {e.restarts}."]
        rare = [ev for ev in e.events if ev.counter in ("watchdog_trips", "chunks_rejected")]
        if rare:
            lines += ["", "| time (s) | event | +n | last event |", "|---|---|---|---|"]
            lines += [
                f"| {ev.time_s:.3f} | {ev.counter} | {ev.delta} | {ev.last_event or ''} |" for ev in rare[:MAX_LISTED]
            ]
            if len(rare) > MAX_LISTED:
                lines.append(f"\n... and {len(rare) - MAX_LISTED} more")
        runs = sorted(e.underrun_runs, key=lambda r: -r.underruns)
        if runs:
            lines += ["", f"Underrun stretches: {len(runs)}; longest:", "", "| from (s) | to (s) | underruns |"]
            lines += ["|---|---|---|", *[f"| {r.start_s:.3f} | {r.end_s:.3f} | {r.underruns} |" for r in runs[:5]]]
        lines += [
            "",
            f"Also counted: {e.totals['steps_dropped_stale']} chunk steps dropped as stale on arrival, "
            f"{e.totals['clamped_values']} values clamped to limits.",
        ]
    if a.discontinuity:
        d = a.discontinuity
        lines += ["", f"Switch-overs compared: {len(d.switches)}; without overlap: {d.no_overlap}."]
        worst = sorted(d.switches, key=lambda s: -s.joint_jump_rad)[:5]
        if worst:
            lines += ["", "| time (s) | chunk | jump (rad) | joint | gripper jump (m) |", "|---|---|---|---|---|"]
            lines += [
                f"| {s.time_s:.3f} | {s.from_sequence} -> {s.to_sequence} | {s.joint_jump_rad:.4f} | "
                f"{s.worst_joint + 1} | {s.gripper_jump_m:.4f} |"
                for s in worst
            ]
    if a.gripper:
        events = ", ".join(f"{e.kind} at {e.time_s:.2f} s" for e in a.gripper[:MAX_LISTED])
        lines += ["", f"Gripper: {events}."]
    if a.outcomes:
        causes = ", ".join(f"{k}: {v}" for k, v in a.outcomes.failure_causes.items()) or "none"
        lines += [
            "",
            f"Episodes: {a.outcomes.episodes}, mean duration {_fmt(a.outcomes.mean_duration_s)} s, "
            f"failure causes: {causes}.",
        ]
    return lines


def write_report(analyses: Sequence[BagAnalysis], out_dir: Path | str) -> Path:
    """Write ``report.md`` and its PNGs into ``out_dir``; return the Markdown path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    title = "Fast-dVLA run report" if len(analyses) == 1 else "Fast-dVLA run comparison"
    lines = [f"# {title}", "", *_summary_table(analyses), ""]
    images = [name for plot in plots.ALL_PLOTS if (name := plot(analyses, out))]
    if images:
        lines += ["## Plots", ""]
        lines += [f"![{Path(name).stem}]({name})\n" for name in images]
    lines += ["## Details", ""]
    for a in analyses:
        lines += [*_details(a), ""]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
