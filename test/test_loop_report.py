"""bench/loop.py's report and the demo summary on a hand-built bag whose latencies and outcomes are known.

Every chunk of the bag spends 20 ms as camera age, 30 ms decoding and 2 ms in delivery, then waits 5 ms
for the executor's next tick, so the split must come out as exactly those four parts (57 ms in all).
Four episodes on seeds 7..10 succeed twice, with first-close distances 10, 30, 20 mm and one episode
that never closed. The same scene written with the message definitions of before
DecodeStats.observation_age_s and EpisodeOutcome.first_close_distance_m must still analyse, with the
age and the distance reported as unknown. No ROS graph: the bag is written with rosbags.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from fast_dvla_ros.bag.typestore import find_msg_dir, typestore
from fast_dvla_ros.demo import TOPICS, summarize
from fast_dvla_ros.evaluation.analysis import BagAnalysis, analyze
from fast_dvla_ros.evaluation.closed_loop import EvalResult

ROOT = Path(__file__).resolve().parents[1]
T0_NS = 1_700_000_000 * 10**9
TICK = 1.0 / 30.0
COMMAND_TICKS = 90  # 3 s of commands at 30 Hz, from 1 s on
FIRST_COMMAND_S = 1.0
AGE, DECODE, DELIVERY, WAIT = 0.020, 0.030, 0.002, 0.005
CHUNK_EVERY_TICKS = 3
HORIZON, JOINTS = 8, 7
# seed, success, failure cause, first-close distance (m; NaN = never closed), outcome time (s)
EPISODES = [
    (7, True, "", 0.010, 1.5),
    (8, False, "dropped", 0.030, 2.0),
    (9, True, "", 0.020, 2.5),
    (10, False, "timeout", float("nan"), 4.5),
]
NEW_FIELDS = {"DecodeStats": "observation_age_s", "EpisodeOutcome": "first_close_distance_m"}

# Primitive fields a scene leaves out are zero: the type store parses msg/*.msg from the source tree, so a
# field added there later must not break writing these bags.
ZERO = {"int": 0, "float": 0.0, "bool": False, "str": ""}


def message(T, msgtype: str, **given):
    """A ``msgtype`` message with the ``given`` fields and zeros elsewhere (primitive fields only)."""
    cls = T[msgtype]
    zeros = {f.name: ZERO[f.type] for f in dataclasses.fields(cls) if f.type in ZERO and f.name not in given}
    return cls(**zeros, **given)


def _load_bench_loop():
    spec = importlib.util.spec_from_file_location("bench_loop", ROOT / "bench" / "loop.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


loop = _load_bench_loop()


def old_typestore():
    """This package's messages as they were before the two new fields (what older bags embed)."""
    store = get_typestore(Stores.ROS2_JAZZY)
    types = {}
    for name in ("DecodeStats", "ActionChunk", "ExecutorStatus", "EpisodeOutcome"):
        text = (find_msg_dir() / f"{name}.msg").read_text()
        if name in NEW_FIELDS:
            text = "\n".join(line for line in text.splitlines() if NEW_FIELDS[name] not in line)
        types.update(get_types_from_msg(text, f"fast_dvla_ros/msg/{name}"))
    store.register(types)
    return store


def _ns(t: float) -> int:
    return T0_NS + round(t * 1e9)


def _header(T, t: float):
    ns = _ns(t)
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9),
                                    frame_id="")


def command_times() -> np.ndarray:
    return FIRST_COMMAND_S + np.arange(COMMAND_TICKS) * TICK


def chunk_plan() -> list[dict[str, float]]:
    """Chunk i is observed 57 ms before command tick 3 + 3 i and arrives 5 ms before it."""
    ticks = command_times()
    plan = []
    for seq, k in enumerate(range(CHUNK_EVERY_TICKS, COMMAND_TICKS, CHUNK_EVERY_TICKS)):
        stamp = ticks[k] - (AGE + DECODE + DELIVERY + WAIT)
        plan.append({"seq": seq, "stamp": stamp, "arrival": stamp + AGE + DECODE + DELIVERY})
    return plan


def _commands(T, names: list[str]) -> list[tuple[str, float, object]]:
    rows = []
    for t in command_times():
        point = T["trajectory_msgs/msg/JointTrajectoryPoint"](
            positions=np.zeros(JOINTS), velocities=np.zeros(JOINTS), accelerations=np.zeros(0), effort=np.zeros(0),
            time_from_start=T["builtin_interfaces/msg/Duration"](sec=0, nanosec=33_333_333),
        )
        msg = T["trajectory_msgs/msg/JointTrajectory"](header=_header(T, t), joint_names=names, points=[point])
        rows.append((TOPICS["trajectory"], t, msg))
    return rows


def _chunks(T, names: list[str], old_schema: bool) -> list[tuple[str, float, object]]:
    rows = []
    for c in chunk_plan():
        stats = {"latency_s": DECODE, "forward_passes": 4, "tokens_committed": 64, "tokens_per_second": 64 / DECODE,
                 "tokens_per_forward": 16.0}
        if not old_schema:
            stats["observation_age_s"] = AGE
        msg = T["fast_dvla_ros/msg/ActionChunk"](prefix_steps=c["seq"] % 3,
            header=_header(T, c["stamp"]), sequence_id=c["seq"], action_kind="joint_position", joint_names=names,
            step_period=T["builtin_interfaces/msg/Duration"](sec=0, nanosec=33_333_333), horizon=HORIZON,
            actions=np.zeros(HORIZON * JOINTS), gripper=np.full(HORIZON, 0.08), decoder="pipelined",
            checkpoint="test-ckpt", stats=message(T, "fast_dvla_ros/msg/DecodeStats", **stats),
        )
        rows.append((TOPICS["action_chunk"], c["arrival"], msg))
    return rows


def _status(T) -> list[tuple[str, float, object]]:
    plan, rows = chunk_plan(), []
    for t in command_times():
        accepted = [c["seq"] for c in plan if c["arrival"] <= t]
        msg = message(
            T, "fast_dvla_ros/msg/ExecutorStatus", header=_header(T, t), state=2,
            last_sequence_id=accepted[-1] if accepted else 0, steps_remaining=4, chunks_received=len(accepted),
            seam_velocity_jump=0.01 * accepted[-1] if len(accepted) > 1 else math.nan, seam_acceleration_jump=1.0,
        )
        rows.append((TOPICS["status"], t, msg))
    return rows


def _outcomes(T, old_schema: bool) -> list[tuple[str, float, object]]:
    rows = []
    for episode, (seed, success, cause, distance, t) in enumerate(EPISODES):
        fields = {"header": _header(T, t), "episode": episode, "seed": seed, "success": success,
                  "failure_cause": cause, "duration_s": 0.5, "belt_speed_mps": 0.05, "control_steps": 15}
        if not old_schema:
            fields["first_close_distance_m"] = distance
        rows.append((TOPICS["outcome"], t, message(T, "fast_dvla_ros/msg/EpisodeOutcome", **fields)))
    return rows


def write_loop_bag(path: Path, old_schema: bool = False) -> None:
    """The scene of the module docstring, on the demo's topic names (what bench/loop.py records)."""
    store = old_typestore() if old_schema else typestore()
    T = store.types
    names = [f"panda_joint{i + 1}" for i in range(JOINTS)]
    write_bag(path, store, [*_commands(T, names), *_chunks(T, names, old_schema), *_status(T),
                            *_outcomes(T, old_schema)])


def write_bag(path: Path, store, rows: list[tuple[str, float, object]]) -> None:
    """An MCAP bag of ``(topic, time s, message)`` rows, written in time order."""
    rows = sorted(rows, key=lambda r: r[1])
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    connections = {}
    for topic, _t, msg in rows:
        if topic not in connections:
            connections[topic] = writer.add_connection(topic, msg.__msgtype__, typestore=store)
    for topic, t, msg in rows:
        writer.write(connections[topic], _ns(t), store.serialize_cdr(msg, msg.__msgtype__))
    writer.close()


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("loop") / "loop_bag"
    write_loop_bag(path)
    return path


@pytest.fixture(scope="module")
def old_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("loop_old") / "old_bag"
    write_loop_bag(path, old_schema=True)
    return path


@pytest.fixture(scope="module")
def analysis(bag: Path) -> BagAnalysis:
    return analyze(bag, nominal_rate_hz=30.0)


def test_latency_split_parts_as_constructed(analysis: BagAnalysis) -> None:
    split = analysis.obs_to_command.split
    expected = {"camera_age": AGE, "decode": DECODE, "delivery": DELIVERY, "executor_wait": WAIT,
                "total": AGE + DECODE + DELIVERY + WAIT}
    for name, value in expected.items():
        d = getattr(split, name)
        assert d.count == len(chunk_plan())
        assert d.p50 == pytest.approx(value, abs=2e-6), name
        assert d.max == pytest.approx(value, abs=2e-6), name
    parts = sum(split.parts_s[name] for name in split.PARTS)
    assert parts == pytest.approx(split.parts_s["total"], abs=1e-9)
    assert split.p50_ms()["delivery"] == pytest.approx(2.0, abs=2e-3)
    assert split.describe().startswith("camera age 20.0 + decode 30.0 + delivery 2.0 + executor wait 5.0 ms")


def test_outcomes_wilson_interval_first_close_and_seeds(analysis: BagAnalysis) -> None:
    o = analysis.outcomes
    assert (o.episodes, o.successes, o.failure_causes) == (4, 2, {"dropped": 1, "timeout": 1})
    # Wilson 95% for 2/4 (published tables: 0.150 .. 0.850; the normal approximation would give 0.01 .. 0.99)
    assert o.ci95 == pytest.approx((0.1500, 0.8500), abs=5e-4)
    d = o.first_close_distance_m
    assert d.count == 3  # the episode that never closed is left out, not counted as 0 m
    assert d.p50 == pytest.approx(0.020)
    assert d.p90 == pytest.approx(0.028)  # numpy's linear interpolation between 20 and 30 mm
    assert (o.success_seeds, o.failure_seeds) == ([7, 9], [8, 10])
    assert o.describe_success() == "2/4 = 50% [15, 85] (95% Wilson)"
    assert o.describe_first_close() == "median 20.0 mm, p90 28.0 mm over 3 episodes"
    # 2 picks in 4 episodes of 0.5 s each: failed episodes' time counts (what a conveyor cell delivers)
    assert o.picks_per_minute == pytest.approx(60.0)
    assert o.describe_throughput() == "60.00 picks/min (belt 0.050 m/s)"


def test_bench_loop_report_rows(bag: Path) -> None:
    m = loop.loop_metrics(bag)
    split = m["latency_split_ms"]
    for name, value in {"camera_age": 20.0, "decode": 30.0, "delivery": 2.0, "executor_wait": 5.0,
                        "total": 57.0}.items():
        assert split[name]["p50"] == pytest.approx(value, abs=2e-3), name
    assert m["tick_period_error_ms"]["p99"] == pytest.approx(0.0, abs=1e-3)
    assert [e["seed"] for e in m["outcomes"]["per_episode"]] == [7, 8, 9, 10]
    lines = loop.format_loop_report(m, requested=5)
    assert lines[2] == "| success (95% Wilson) | 2/4 = 50% [15, 85] |"  # the headline comes first
    for row in (
        "| episodes finished / requested | 4 / 5 (the loop stopped early) |",
        "| failures by cause | dropped 1, timeout 1 |",
        "| first-close hand-to-block distance | median 20.0 / p90 28.0 mm (3 episodes) |",
        "| seeds of successes | 7, 9 |",
        "| seeds of failures | 8 dropped, 10 timeout |",
        "| obs -> command p50: camera age / decode / delivery / executor wait / total | 20.0 / 30.0 / 2.0 / 5.0 / "
        "57.0 ms |",
        "| executor underruns / watchdog trips | 0 / 0 |",
    ):
        assert row in lines
    seqs = [c["seq"] for c in chunk_plan()]
    c = m["chunks"]
    assert c["forwards_per_chunk"] == 4 and c["prefix_steps_per_chunk"] == pytest.approx(np.mean([q % 3 for q in seqs]))
    seams = 0.01 * np.asarray(seqs[1:])  # one per accepted chunk after the first, however many ticks name it
    assert c["seam_velocity_jump_rad_s"]["count"] == len(seams)
    assert c["seam_velocity_jump_rad_s"]["p50"] == pytest.approx(float(np.median(seams)))
    # strict JSON (no NaN) for RESULTS.md tooling; the never-closed episode's distance becomes null
    text = json.dumps(loop._json_safe(m), allow_nan=False)
    assert json.loads(text)["outcomes"]["per_episode"][3]["first_close_distance_m"] is None


def test_bag_from_before_the_new_fields_still_analyses(old_bag: Path) -> None:
    a = analyze(old_bag, nominal_rate_hz=30.0)
    split = a.obs_to_command.split
    assert split.camera_age is None
    assert split.delivery.p50 == pytest.approx(AGE + DELIVERY, abs=2e-6)  # the unknown age stays in delivery
    assert split.total.p50 == pytest.approx(AGE + DECODE + DELIVERY + WAIT, abs=2e-6)
    assert math.isnan(a.series.outcomes[0].first_close_distance_m)
    assert a.outcomes.describe_first_close() == "n/a"
    lines = loop.format_loop_report(loop.loop_metrics(old_bag))
    assert "| first-close hand-to-block distance | n/a |" in lines
    assert ("| obs -> command p50: camera age / decode / delivery (incl. camera age) / executor wait / total | "
            "n/a / 30.0 / 22.0 / 5.0 / 57.0 ms |") in lines


def test_demo_summary_puts_the_loop_outcome_first(bag: Path) -> None:
    lines = summarize(bag, 4.0, {"sim": 0, "policy": 0, "executor": 0}).splitlines()
    expected_order = [
        "loop success 2/4 = 50% [15, 85] (95% Wilson)",
        "failure causes: dropped 1, timeout 1",
        "first-close hand-to-block distance: median 20.0 mm, p90 28.0 mm over 3 episodes",
        "observation -> command: camera age 20.0 + decode 30.0 + delivery 2.0 + executor wait 5.0 ms",
        "executor tick: 30.",
        "trajectory messages: 30.00/s",
        "decode latency [pipelined]",
        "executor: underruns 0",
    ]
    found = [next(i for i, line in enumerate(lines) if line.startswith(prefix)) for prefix in expected_order]
    assert found == sorted(found)


def _eval_result(successes_by_seed: dict[int, bool]) -> EvalResult:
    per_episode = [{"seed": s, "success": ok, "failure_cause": "" if ok else "missed", "steps": 300,
                    "belt_speed": 0.05} for s, ok in successes_by_seed.items()]
    k, n = sum(successes_by_seed.values()), len(successes_by_seed)
    return EvalResult(
        checkpoint="test-ckpt", decoder="pipelined", episodes=n, successes=k, success_rate=k / n,
        ci95=(0.0, 1.0), failure_causes={"missed": n - k} if n > k else {}, latency_mean_ms=30.0,
        latency_p50_ms=30.0, latency_p99_ms=31.0, forwards_per_chunk=4.0, tokens_per_forward=16.0,
        tokens_per_second=2000.0, chunks=300 * n, execute_steps=1, blend="temporal_ensemble", per_episode=per_episode,
    )


def test_side_by_side_table_loop_first_and_disagreeing_seeds(bag: Path) -> None:
    outcomes = loop.loop_metrics(bag)["outcomes"]
    ev = dataclasses.asdict(_eval_result({7: True, 8: True, 9: False, 10: False}))
    ev["label"] = loop.EVALUATOR_LABELS["sync"]
    lines = loop.comparison_table(outcomes, [ev])
    assert lines[:4] == [
        "| where | success [95% CI] | failures |",
        "|---|---|---|",
        "| real-time ROS loop | 2/4 = 50% [15, 85] | dropped 1, timeout 1 |",
        "| evaluator (sync, loop's mode) | 2/4 = 50% [15, 85] | missed 2 |",
    ]
    assert lines[4].endswith("disagree: 8 (loop dropped, evaluator ok), 9 (loop ok, evaluator missed)")


def test_evaluator_options_follow_the_params_file(tmp_path: Path) -> None:
    yaml_file = ROOT / "config" / "sim_conveyor.yaml"
    assert loop.decoder_spec("", yaml_file) == ""  # the params file leaves it to the checkpoint
    assert loop.decoder_spec("bidirectional", yaml_file) == "bidirectional"
    custom = tmp_path / "params.yaml"
    custom.write_text("/fast_dvla_policy:\n  ros__parameters:\n    decoder: pipelined:n=2,readout=argmax\n")
    assert loop.decoder_spec("", custom) == "pipelined:n=2,readout=argmax"

    from fast_dvla_ros.sim.config import SimConfig

    overrides, ensemble_m = loop.evaluator_setup(yaml_file)
    cfg = SimConfig(**overrides)  # the keys are SimConfig's, the values the simulator node's
    assert (cfg.belt_speed_range, cfg.image_size, cfg.episode_time_limit) == ((0.03, 0.08), 96, 10.0)
    assert ensemble_m == 0.1


def test_realtime_guard_reads_the_signature() -> None:
    def without(policy: object, episodes: int) -> None: ...

    def with_keyword(policy: object, episodes: int, *, realtime: bool = False) -> None: ...

    assert not loop.accepts_keyword(without, "realtime")
    assert loop.accepts_keyword(with_keyword, "realtime")


def test_reset_drift_is_the_motion_between_a_reset_and_the_episode_s_first_chunk(tmp_path: Path) -> None:
    """Three episodes: the first is left out (it waits for the policy), the second's arm drifts 0.1 rad
    before its first chunk arrives (what stale commands did), the third's holds still; motion after a
    chunk is the policy's and does not count."""
    store = typestore()
    T = store.types
    names = [f"panda_joint{i + 1}" for i in range(JOINTS)]
    rows = []
    for episode, t0 in enumerate((0.0, 1.0, 2.0)):
        start = T["fast_dvla_ros/msg/EpisodeStart"](header=_header(T, t0), episode=episode, seed=episode,
                                                     instruction="pick")
        rows.append((TOPICS["episode_start"], t0 + 0.002, start))
        chunk = message(T, "fast_dvla_ros/msg/ActionChunk", header=_header(T, t0 + 0.05), joint_names=names,
                        step_period=T["builtin_interfaces/msg/Duration"](sec=0, nanosec=33_333_333),
                        horizon=HORIZON, actions=np.zeros(HORIZON * JOINTS), gripper=np.full(HORIZON, 0.08),
                        stats=message(T, "fast_dvla_ros/msg/DecodeStats"))
        rows.append((TOPICS["action_chunk"], t0 + 0.19, chunk))
        for k in range(1, 30):  # 60 Hz from just after the reset
            t = t0 + k / 60
            q = np.zeros(9)
            if episode == 1:
                q[0] = 0.1 * min(1.0, (t - t0) / 0.15)
            if t > t0 + 0.19:
                q[1] = 0.5  # the policy's own motion
            js = T["sensor_msgs/msg/JointState"](header=_header(T, t), name=[*names, "f1", "f2"], position=q,
                                                 velocity=np.zeros(9), effort=np.zeros(0))
            rows.append((TOPICS["joint_states"], t, js))
    path = tmp_path / "reset_bag"
    write_bag(path, store, rows)
    r = loop.reset_drift(path)
    assert r["resets"] == 2 and r["above_threshold"] == 1
    assert r["max"] == pytest.approx(0.1 - 0.1 * (1 / 60) / 0.15, abs=1e-6)  # from the first joint state after it
    assert r["p50"] == pytest.approx(r["max"] / 2)
