"""fast-dvla-eval on a hand-built bag whose rates, gaps, events and latencies are known by construction.

The bag is written with rosbags exactly as a recorder would (CDR, MCAP, full definitions), with
remapped topic names, so the test also covers discovery by type. Every assertion reads the
analysis objects; the report files are checked for existence and for the headline numbers.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from fast_dvla_ros.bag.typestore import typestore
from fast_dvla_ros.evaluation.analysis import BagAnalysis, analyze
from fast_dvla_ros.evaluation.cli import main as eval_main
from fast_dvla_ros.evaluation.topics import Role

T0_NS = 1_700_000_000 * 10**9  # bag start, system clock
TICK = 1.0 / 30.0
END_S = 10.0
GAP = (4.0, 4.5)  # no commands strictly inside
HORIZON, JOINTS = 8, 7
CHUNK_EVERY_TICKS = 6  # a chunk every 0.2 s
LATENCY = {"pipelined": 0.040, "bidirectional": 0.120}  # decoder of chunks before / after 5 s
TRANSPORT_S = 0.001
OBS_OFFSET_S = 0.001  # observations are taken 1 ms after a control tick
LOST_SEQUENCE = 30  # never published (lost in transport)
OFFSET_SEQUENCE = 10  # this chunk disagrees with its neighbours by OFFSET_RAD on joint 3
OFFSET_RAD = 0.1
UNDERRUN_TICKS = {123: 1, 126: 1, 129: 2}  # tick index -> underruns added (4.1, 4.2, 4.3 s)
WATCHDOG_TICK = 129
START_UNDERRUNS = 5  # the executor ran before the bag started
GRIPPER_CLOSED = (3.0, 7.0)

# Primitive fields a scene leaves out are zero: the type store parses msg/*.msg from the source tree, so a
# field added there later must not break writing these bags.
ZERO = {"int": 0, "float": 0.0, "bool": False, "str": ""}


def message(T, msgtype: str, **given):
    """A ``msgtype`` message with the ``given`` fields and zeros elsewhere (primitive fields only)."""
    cls = T[msgtype]
    zeros = {f.name: ZERO[f.type] for f in dataclasses.fields(cls) if f.type in ZERO and f.name not in given}
    return cls(**zeros, **given)


TOPICS = {
    "commands": "/fr3_trajectory_controller/joint_trajectory",  # remapped, as on the robot
    "chunks": "/fast_dvla_policy/action_chunk",
    "status": "/chunk_executor/status",
    "gripper": "/chunk_executor/gripper_command",
    "decoy": "/belt/speed",  # Float64 too, must not be taken for the gripper
    "outcomes": "/conveyor_sim/episode_outcome",
}


def _ns(t: float) -> int:
    return T0_NS + round(t * 1e9)


def _time(store, t: float):
    ns = _ns(t)
    return store.types["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)


def _header(store, t: float):
    return store.types["std_msgs/msg/Header"](stamp=_time(store, t), frame_id="")


def ramp(t: float) -> np.ndarray:
    """The plan every consistent chunk agrees on: joint j at time t is 0.1 (j + 1) t."""
    return 0.1 * (np.arange(JOINTS) + 1) * t


def command_ticks() -> list[int]:
    return [k for k in range(int(END_S * 30) + 1) if not GAP[0] < k * TICK < GAP[1] - 1e-9]


def command_times(rng: np.random.Generator) -> list[float]:
    """Ticks with +-1 ms uniform jitter (the gap's edges keep their exact times)."""
    out = []
    for k in command_ticks():
        jitter = 0.0 if k * TICK in GAP else rng.uniform(-1e-3, 1e-3)
        out.append(k * TICK + jitter)
    return out


def chunk_plan() -> list[dict]:
    chunks = []
    for seq, k in enumerate(range(0, int(END_S * 30) - 5, CHUNK_EVERY_TICKS)):
        stamp = k * TICK + OBS_OFFSET_S
        decoder = "pipelined" if stamp < 5.0 else "bidirectional"
        actions = np.stack([ramp(stamp + (i + 1) * TICK) for i in range(HORIZON)])
        if seq == OFFSET_SEQUENCE:
            actions[:, 2] += OFFSET_RAD
        chunks.append(
            dict(seq=seq, stamp=stamp, decoder=decoder, arrival=stamp + LATENCY[decoder] + TRANSPORT_S, actions=actions)
        )
    return [c for c in chunks if c["seq"] != LOST_SEQUENCE]


def write_synthetic_bag(path: Path, seed: int = 0, latency_scale: float = 1.0, stamp_offset_s: float = 0.0) -> None:
    """The scenario of the module docstring; ``latency_scale`` makes a slower twin for --compare,
    ``stamp_offset_s`` puts the chunks' header stamps on another clock (sim time)."""
    store = typestore()
    T = store.types
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, float, object]] = []
    joint_names = [f"fr3_joint{i + 1}" for i in range(JOINTS)]
    for t in command_times(rng):
        point = T["trajectory_msgs/msg/JointTrajectoryPoint"](
            positions=ramp(t + TICK),
            velocities=np.zeros(0),
            accelerations=np.zeros(0),
            effort=np.zeros(0),
            time_from_start=T["builtin_interfaces/msg/Duration"](sec=0, nanosec=33_333_333),
        )
        msg = T["trajectory_msgs/msg/JointTrajectory"](
            header=_header(store, 0.0), joint_names=joint_names, points=[point]
        )
        rows.append((TOPICS["commands"], t, msg))
    plan = chunk_plan()
    for c in plan:
        latency = LATENCY[c["decoder"]] * latency_scale
        stats = T["fast_dvla_ros/msg/DecodeStats"](
            latency_s=latency,
            forward_passes=4,
            tokens_committed=64,
            tokens_per_second=64 / latency,
            tokens_per_forward=16.0,
            observation_age_s=0.0,  # as in bags from before the field: the split reports the age as unknown
        )
        msg = T["fast_dvla_ros/msg/ActionChunk"](prefix_steps=0,
            header=_header(store, c["stamp"] + stamp_offset_s),
            sequence_id=c["seq"],
            action_kind="joint_position",
            joint_names=joint_names,
            step_period=T["builtin_interfaces/msg/Duration"](sec=0, nanosec=33_333_333),
            horizon=HORIZON,
            actions=c["actions"].reshape(-1),
            gripper=np.full(HORIZON, 0.08),
            decoder=c["decoder"],
            checkpoint="test-ckpt",
            stats=stats,
        )
        rows.append((TOPICS["chunks"], c["stamp"] + latency + TRANSPORT_S, msg))
    underruns, watchdog = START_UNDERRUNS, 0
    for k in range(int(END_S * 30) + 1):
        t = k * TICK
        underruns += UNDERRUN_TICKS.get(k, 0)
        event = ""
        if k == WATCHDOG_TICK:
            watchdog += 1
            event = "watchdog: no fresh chunk"
        accepted = [c["seq"] for c in plan if c["arrival"] <= t]
        state = 3 if WATCHDOG_TICK * TICK <= t < GAP[1] else 2
        msg = message(
            T,
            "fast_dvla_ros/msg/ExecutorStatus",
            header=_header(store, t),
            state=state,
            last_sequence_id=accepted[-1] if accepted else 0,
            chunk_age_s=0.0,
            steps_remaining=4,
            chunks_received=len(accepted),
            chunks_rejected=0,
            steps_dropped_stale=0,
            underruns=underruns,
            watchdog_trips=watchdog,
            clamped_values=0,
            last_event=event,
        )
        rows.append((TOPICS["status"], t, msg))
        closed = GRIPPER_CLOSED[0] <= t + 1e-9 < GRIPPER_CLOSED[1]
        rows.append((TOPICS["gripper"], t, T["std_msgs/msg/Float64"](data=0.0 if closed else 0.08)))
        rows.append((TOPICS["decoy"], t, T["std_msgs/msg/Float64"](data=0.0 if k % 2 else 0.08)))
    for t, episode, success, cause in ((5.0, 0, True, ""), (9.9, 1, False, "dropped")):
        msg = T["fast_dvla_ros/msg/EpisodeOutcome"](
            header=_header(store, t),
            episode=episode,
            seed=100 + episode,
            success=success,
            failure_cause=cause,
            duration_s=4.5,
            belt_speed_mps=0.05,
            control_steps=135,
            first_close_distance_m=float("nan"),  # never closed
        )
        rows.append((TOPICS["outcomes"], t, msg))

    rows.sort(key=lambda r: r[1])
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    connections = {}
    for topic, _t, msg in rows:
        if topic not in connections:
            connections[topic] = writer.add_connection(topic, msg.__msgtype__, typestore=store)
    for topic, t, msg in rows:
        writer.write(connections[topic], _ns(t), store.serialize_cdr(msg, msg.__msgtype__))
    writer.close()


def expected_obs_to_command() -> list[float]:
    """Per chunk: the first command tick after its arrival minus its observation time."""
    ticks = np.array(command_ticks()) * TICK
    return [ticks[np.searchsorted(ticks, c["arrival"])] - c["stamp"] for c in chunk_plan()]


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("eval") / "synthetic"
    write_synthetic_bag(path)
    return path


@pytest.fixture(scope="module")
def analysis(bag: Path) -> BagAnalysis:
    return analyze(bag)


def test_topics_are_found_by_type_despite_remapping_and_decoys(analysis: BagAnalysis) -> None:
    sel = analysis.series.selection
    assert sel[Role.COMMANDS] == TOPICS["commands"]
    assert sel[Role.CHUNKS] == TOPICS["chunks"]
    assert sel[Role.STATUS] == TOPICS["status"]
    assert sel[Role.GRIPPER] == TOPICS["gripper"]
    assert sel[Role.OUTCOMES] == TOPICS["outcomes"]


def test_command_rate_jitter_and_exactly_one_gap(analysis: BagAnalysis) -> None:
    rate = analysis.rate
    assert rate.count == len(command_ticks())
    assert rate.nominal_rate_hz == pytest.approx(30.0, rel=0.01)
    assert len(rate.gaps) == 1
    gap = rate.gaps[0]
    assert gap.start_s == pytest.approx(GAP[0], abs=1e-6)
    assert gap.duration_s == pytest.approx(GAP[1] - GAP[0], abs=1e-6)
    assert gap.missed_ticks == 14
    # interval jitter = difference of two U(-1, 1) ms: std sqrt(2/3) ms = 0.816 ms
    assert 0.6e-3 < rate.jitter_std_s < 1.05e-3
    assert rate.jitter_max_abs_s <= 2e-3 + 1e-6
    in_gap_bin = rate.rate_hz[(rate.rate_bins_s <= 4.2) & (rate.rate_bins_s + 1 > 4.2)]
    assert in_gap_bin.size == 1 and in_gap_bin[0] < 20
    full_bins = rate.rate_hz[(rate.rate_bins_s + 1 <= GAP[0]) | (rate.rate_bins_s >= 5.0 - 1e-6)]
    assert np.all(np.abs(full_bins[:-1] - 30) <= 1.01)


def test_decode_latency_per_decoder(analysis: BagAnalysis) -> None:
    assert set(analysis.decoders) == {"pipelined", "bidirectional"}
    plan = chunk_plan()
    for name, latency in LATENCY.items():
        d = analysis.decoders[name]
        assert d.latency.count == sum(c["decoder"] == name for c in plan)
        assert d.latency.mean == pytest.approx(latency, abs=1e-9)
        assert d.latency.max == pytest.approx(latency, abs=1e-9)
        assert d.mean_tokens_per_second == pytest.approx(64 / latency)
        assert d.checkpoints == ["test-ckpt"]


def test_obs_to_command_latency_matches_construction(analysis: BagAnalysis) -> None:
    o = analysis.obs_to_command
    expected = expected_obs_to_command()
    # pipelined: 2 ticks - 1 ms = 65.7 ms; bidirectional: 4 ticks - 1 ms = 132.3 ms; the gap delays three
    assert sorted(o.values_s) == pytest.approx(sorted(expected), abs=1.1e-3)
    assert np.isclose(expected, 2 * TICK - OBS_OFFSET_S).sum() == 22
    assert o.obs_to_arrival.p50 == pytest.approx(LATENCY["pipelined"] + TRANSPORT_S, abs=1e-6) or (
        o.obs_to_arrival.p50 == pytest.approx(LATENCY["bidirectional"] + TRANSPORT_S, abs=1e-6)
    )
    assert o.sequence_gaps == 1
    assert o.chunks_never_accepted == 0
    # every DecodeStats.observation_age_s is 0 here (a bag from before the field): the age is unknown and
    # delivery = arrival - stamp - decode is the 1 ms transport (the observation offset is none of it)
    split = o.split
    assert split.camera_age is None
    assert split.delivery.max == pytest.approx(TRANSPORT_S, abs=1e-6)
    assert sorted(split.parts_s["total"]) == pytest.approx(sorted(o.values_s))
    assert "camera age n/a" in split.describe()


def test_underruns_and_watchdog_at_known_times(analysis: BagAnalysis) -> None:
    e = analysis.executor
    assert e.totals["underruns"] == 4  # relative to the first recorded status, not START_UNDERRUNS + 4
    assert e.times("underruns") == pytest.approx([123 * TICK, 126 * TICK, 129 * TICK, 129 * TICK], abs=1e-6)
    assert e.times("watchdog_trips") == pytest.approx([WATCHDOG_TICK * TICK], abs=1e-6)
    assert [ev.last_event for ev in e.events if ev.counter == "watchdog_trips"] == ["watchdog: no fresh chunk"]
    holding_s = GAP[1] - WATCHDOG_TICK * TICK
    assert e.state_fraction["holding"] == pytest.approx(holding_s / END_S, abs=TICK / END_S)
    assert e.restarts == 0
    # ticks 123, 126, 129 are 0.1 s apart: three separate stalls, the last adding two underruns
    assert [(round(r.start_s, 6), round(r.end_s, 6), r.underruns) for r in e.underrun_runs] == [
        (round(123 * TICK, 6), round(123 * TICK, 6), 1),
        (round(126 * TICK, 6), round(126 * TICK, 6), 1),
        (round(129 * TICK, 6), round(129 * TICK, 6), 2),
    ]


def test_switch_over_discontinuity_finds_the_offset_chunk(analysis: BagAnalysis) -> None:
    d = analysis.discontinuity
    plan = chunk_plan()
    pipelined = sum(c["decoder"] == "pipelined" for c in plan)
    # pipelined chunks overlap their predecessor; bidirectional ones arrive after it ended
    assert len(d.switches) == pipelined - 1
    assert d.no_overlap == len(plan) - 1 - (pipelined - 1)
    jumps = d.above(OFFSET_RAD / 2)
    assert [(s.from_sequence, s.to_sequence) for s in jumps] == [
        (OFFSET_SEQUENCE - 1, OFFSET_SEQUENCE),
        (OFFSET_SEQUENCE, OFFSET_SEQUENCE + 1),
    ]
    assert all(s.worst_joint == 2 for s in jumps)
    assert d.joint_jump.max == pytest.approx(OFFSET_RAD, abs=1e-9)
    others = [s.joint_jump_rad for s in d.switches if s not in jumps]
    assert max(others) < 1e-9


def test_gripper_events_and_outcomes(analysis: BagAnalysis) -> None:
    assert [(e.kind, round(e.time_s, 6)) for e in analysis.gripper] == [
        ("close", GRIPPER_CLOSED[0]),
        ("open", GRIPPER_CLOSED[1]),
    ]
    o = analysis.outcomes
    assert (o.episodes, o.successes, o.failure_causes) == (2, 1, {"dropped": 1})
    assert o.success_rate == 0.5


def test_cli_report_and_compare(bag: Path, tmp_path: Path) -> None:
    out = tmp_path / "single"
    assert eval_main([str(bag), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    for png in ("command_rate", "command_jitter", "decode_latency", "obs_to_command", "executor_events"):
        assert (out / f"{png}.png").stat().st_size > 5000
        assert f"({png}.png)" in text
    assert "| command gaps | 1 (longest 500 ms) |" in text
    assert "| underruns | 4 |" in text
    assert "| success 95% CI | 1/2 = 50% [9, 91] (95% Wilson) |" in text
    assert "| first-close hand-to-block | n/a |" in text

    slow = tmp_path / "slow_twin"
    write_synthetic_bag(slow, seed=1, latency_scale=2.0)
    cmp_out = tmp_path / "cmp"
    assert eval_main(["--compare", str(bag), str(slow), "--out", str(cmp_out)]) == 0
    text = (cmp_out / "report.md").read_text()
    assert "| metric | `synthetic` | `slow_twin` |" in text
    row = next(line for line in text.splitlines() if line.startswith("| decode latency `pipelined`"))
    assert "mean 40.0 " in row and "mean 80.0 " in row


def test_single_mcap_file_and_overrides(bag: Path, tmp_path: Path) -> None:
    mcap_file = next(bag.glob("*.mcap"))
    a = analyze(mcap_file, {Role.GRIPPER: TOPICS["decoy"]})
    assert a.series.selection[Role.GRIPPER] == TOPICS["decoy"]
    assert a.rate.count == len(command_ticks())


def test_bad_input_is_a_clear_error_not_a_crash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert eval_main([str(tmp_path / "missing")]) == 2
    assert "bag not found" in capsys.readouterr().err
    (tmp_path / "not_a_bag").mkdir()
    assert eval_main([str(tmp_path / "not_a_bag")]) == 2
    assert "no metadata.yaml" in capsys.readouterr().err


def test_override_of_wrong_type_is_rejected(bag: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert eval_main([str(bag), "--commands-topic", TOPICS["status"], "--out", str(bag.parent / "x")]) == 2
    assert "needs trajectory_msgs/msg/JointTrajectory" in capsys.readouterr().err


def test_chunk_stamps_on_another_clock_are_aligned(tmp_path: Path) -> None:
    """Sim time in the header (here: 1.7e9 s behind) must not turn latencies into nonsense."""
    path = tmp_path / "sim_time"
    write_synthetic_bag(path, stamp_offset_s=-1_700_000_000.0)
    a = analyze(path)
    assert any("off the bag's receive clock" in note for note in a.notes)
    # aligned with arrival - decode latency, the 1 ms transport drops out of obs -> command
    assert sorted(a.obs_to_command.values_s) == pytest.approx(
        sorted(e - TRANSPORT_S for e in expected_obs_to_command()), abs=1.1e-3
    )
    assert [(s.from_sequence, s.to_sequence) for s in a.discontinuity.above(OFFSET_RAD / 2)] == [
        (OFFSET_SEQUENCE - 1, OFFSET_SEQUENCE),
        (OFFSET_SEQUENCE, OFFSET_SEQUENCE + 1),
    ]


def test_command_content(analysis: BagAnalysis) -> None:
    c = analysis.commands
    assert (c.mean_points, c.with_velocities) == (1.0, 0.0)
    fastest = 0.1 * JOINTS  # rad/s of the ramp's last joint
    assert c.max_speed_rad_s == pytest.approx(fastest, rel=1e-6)  # gaps excluded from speeds
    assert c.max_step_rad == pytest.approx(fastest * (GAP[1] - GAP[0]), rel=1e-6)  # the jump across the gap
    assert c.worst_step_time_s == pytest.approx(GAP[1], abs=1e-6)


def test_adjacent_underrun_ticks_merge_and_a_counter_reset_is_a_restart() -> None:
    from fast_dvla_ros.evaluation.executor_events import executor_events
    from fast_dvla_ros.evaluation.series import StatusSeries

    n = 12
    underruns = np.array([0, 0, 1, 2, 3, 3, 3, 3, 0, 1, 1, 1])  # 3 adjacent ticks, restart, then 1
    zeros = np.zeros(n, dtype=np.int64)
    status = StatusSeries(
        time_s=np.arange(n) * TICK,
        state=np.full(n, 2),
        last_sequence_id=zeros,
        chunk_age_s=np.zeros(n),
        chunks_rejected=zeros,
        steps_dropped_stale=zeros,
        underruns=underruns,
        watchdog_trips=zeros,
        clamped_values=zeros,
        last_event=[""] * n,
    )
    e = executor_events(status)
    assert e.restarts == 1
    assert e.totals["underruns"] == 4  # 3 before the restart, 1 after (the reset itself adds 0)
    assert [(round(r.start_s / TICK), round(r.end_s / TICK), r.underruns) for r in e.underrun_runs] == [
        (2, 4, 3),
        (9, 9, 1),
    ]
