"""The three nodes as separate processes over real DDS, wired like the demo (config/sim_conveyor.yaml).

A random-weight checkpoint is used: this checks the plumbing (chunks flow, the executor streams safe
commands at the control rate, the simulated arm moves, an episode ends, the sim exits after it), not
the policy's skill. A second test kills the policy mid-run: the executor must hold (watchdog).
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("pybullet")

from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from fast_dvla_ros.core.actuation import step_times
from fast_dvla_ros.core.plan_track import PlanTrack
from fast_dvla_ros.execution import load_joint_limits
from fast_dvla_ros.msg import ActionChunk, EpisodeOutcome, ExecutorStatus
from fast_dvla_ros.nodes.conversions import time_to_sec
from fast_dvla_ros.nodes.qos import CHUNK_QOS, SENSOR_QOS, STATUS_QOS
from fast_dvla_ros.params_file import node_parameters
from ros_peers.testing import ROOT, NodeProcess, Probe, check_commands_safe, count_reanchors

PARAMS = str(ROOT / "config" / "sim_conveyor.yaml")
# The demo's wiring under a per-run prefix, so no other graph on the machine can cross-talk.
_NS = f"/e2e{os.getpid()}"
T = {
    "image": f"{_NS}/camera/image_raw",
    "joint_states": f"{_NS}/joint_states",
    "instruction": f"{_NS}/fast_dvla/instruction",
    "chunk": f"{_NS}/fast_dvla/action_chunk",
    "traj": f"{_NS}/fast_dvla/joint_trajectory",
    "gripper": f"{_NS}/fast_dvla/gripper_command",
    "status": f"{_NS}/chunk_executor/status",
    "outcome": f"{_NS}/conveyor_sim/episode_outcome",
    "episode_start": f"{_NS}/fast_dvla/episode_start",
    "plan": f"{_NS}/fast_dvla/plan",
}
# What a recorder subscribes with: the nodes' depth-1 queues drop messages whenever this test process is
# starved of CPU (the nodes run beside it on 2 cores), and every command and tick must be counted here.
RECORD_QOS = QoSProfile(depth=1000, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
LIMITS = load_joint_limits("panda")
VSCALE = float(node_parameters(PARAMS, "chunk_executor")["velocity_scale"])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    import torch

    from fast_dvla_ros.core.config import DVLAConfig
    from fast_dvla_ros.core.model import DVLA

    torch.manual_seed(1)
    model = DVLA(DVLAConfig.preset("tiny"))
    model.set_proprio_stats(np.zeros(8), np.ones(8))
    return str(model.save_pretrained(tmp_path_factory.mktemp("ck") / "tiny_random"))


@pytest.fixture(scope="module")
def prefix_checkpoint(checkpoint: str, tmp_path_factory) -> str:
    """The same random weights, with a contract that allows an action prefix of up to 4 steps."""
    import dataclasses

    from fast_dvla_ros.core.model import DVLA
    from fast_dvla_ros.core.policy import runtime_contract

    model = DVLA.from_pretrained(checkpoint)
    contract, _ = runtime_contract(model)
    model.config = dataclasses.replace(model.config, runtime=dataclasses.replace(contract, action_prefix_steps=4))
    return str(model.save_pretrained(tmp_path_factory.mktemp("ck") / "tiny_prefix"))


def start_graph(checkpoint: str, episodes: int, time_limit: float, blend: str = "", prefix: int = 0
                ) -> dict[str, NodeProcess]:
    base = ["--params-file", PARAMS]
    sim = NodeProcess("sim_node", [*base, "-p", f"episodes:={episodes}", "-p", f"episode_time_limit_s:={time_limit}",
        "-r", f"~/image:={T['image']}", "-r", f"~/joint_states:={T['joint_states']}",
        "-r", f"~/instruction:={T['instruction']}", "-r", f"~/episode_outcome:={T['outcome']}",
        "-r", f"~/joint_trajectory:={T['traj']}", "-r", f"~/gripper_command:={T['gripper']}",
        "-r", f"~/episode_start:={T['episode_start']}"],
        name="conveyor_sim")  # fmt: skip
    policy = NodeProcess("policy_node", [*base, "-p", f"checkpoint:={checkpoint}",
        "-p", f"action_prefix_steps:={prefix}",
        "-r", f"~/image:={T['image']}", "-r", f"~/joint_states:={T['joint_states']}",
        "-r", f"~/instruction:={T['instruction']}", "-r", f"~/action_chunk:={T['chunk']}",
        "-r", f"~/episode_start:={T['episode_start']}", "-r", f"~/plan:={T['plan']}"],
        name="fast_dvla_policy")  # fmt: skip
    blend_args = ["-p", f"blend_mode:={blend}"] if blend else []
    executor = NodeProcess("executor_node", [*base, *blend_args, "-r", f"~/status:={T['status']}",
        "-r", f"~/plan:={T['plan']}",
        "-r", f"~/action_chunk:={T['chunk']}", "-r", f"~/joint_states:={T['joint_states']}",
        "-r", f"~/joint_trajectory:={T['traj']}", "-r", f"~/gripper_command:={T['gripper']}",
        "-r", f"~/episode_start:={T['episode_start']}"],
        name="chunk_executor")  # fmt: skip
    return {"sim": sim, "policy": policy, "executor": executor}


def stamp_s(status: ExecutorStatus) -> float:
    return time_to_sec(status.header.stamp)


def make_probe() -> Probe:
    probe = Probe("e2e_probe")
    probe.record(ActionChunk, T["chunk"], CHUNK_QOS)
    probe.record(JointTrajectory, T["traj"], RECORD_QOS)
    probe.record(ExecutorStatus, T["status"], RECORD_QOS)
    probe.record(EpisodeOutcome, T["outcome"], STATUS_QOS)
    probe.record(JointState, T["joint_states"], SENSOR_QOS)
    return probe


def stop_all(nodes: dict[str, NodeProcess]) -> dict[str, tuple[int | None, str]]:
    return {name: n.stop() for name, n in nodes.items()}


def test_three_nodes_chunks_flow_arm_moves_episode_ends(checkpoint: str) -> None:
    nodes = start_graph(checkpoint, episodes=1, time_limit=10.0)
    probe = make_probe()
    try:
        assert probe.wait_for(lambda: len(probe.got(T["chunk"])) >= 3, 60.0), nodes["policy"].output
        q_start = np.array(probe.got(T["joint_states"])[0].position[:7])
        # The tick rate from the executor's own status stamps (one per tick), not from when this process
        # got around to reading them.
        s0 = probe.now()
        assert probe.wait_for(lambda: any(stamp_s(s) > s0 + 2.0 for s in probe.got(T["status"])[-1:]), 10.0)
        ticks = sum(s0 <= stamp_s(s) < s0 + 2.0 for s in probe.got(T["status"]))
        assert ticks / 2.0 > 15.0, (
            f"executor ticked only {ticks / 2.0:.1f} times/s (30 Hz nominal)", nodes["executor"].output[-3000:])
        # 10 s of belt time: longer on a starved machine, where the simulator runs slower than the wall clock
        assert probe.wait_for(lambda: probe.got(T["outcome"]), 60.0), nodes["sim"].output[-3000:]
        outcome = probe.got(T["outcome"])[0]
        assert outcome.episode == 0 and outcome.control_steps > 10 and outcome.duration_s > 0
        assert nodes["sim"].wait(10.0) == 0, nodes["sim"].output  # exits by itself after the last episode
        moved = max(np.max(np.abs(np.array(m.position[:7]) - q_start)) for m in probe.got(T["joint_states"]))
        assert moved > 0.05, f"the simulated arm did not move ({moved:.3f} rad)"
        statuses = probe.got(T["status"])
        executing = sum(s.state == ExecutorStatus.STATE_EXECUTING for s in statuses)
        assert executing > 10
        trajs = probe.got(T["traj"])
        # every executing tick streams a command (a few may precede this probe's discovery of one topic)
        assert len(trajs) >= executing - 5, f"{len(trajs)} commands for {executing} executing ticks"
        assert statuses[-1].chunks_received >= 3
        limits = (list(LIMITS.joint_names), LIMITS.lower, LIMITS.upper, LIMITS.velocity * VSCALE, 30.0)
        check_commands_safe(trajs, *limits, allowed_jumps=count_reanchors(statuses))
    finally:
        results = stop_all(nodes)
        probe.close()
    for name, (code, out) in results.items():
        assert code == 0, f"{name} exit {code}:\n{out[-3000:]}"
        assert "Traceback" not in out, f"{name}:\n{out[-3000:]}"


def test_action_prefix_the_policy_continues_the_executor_s_plan(prefix_checkpoint: str) -> None:
    """Blend mode action_prefix: the executor's ~/plan reaches the policy, whose chunks then carry an action
    prefix equal to the plan, and the executor switches over to them; commands stay within the limits."""
    nodes = start_graph(prefix_checkpoint, episodes=1, time_limit=6.0, blend="action_prefix", prefix=-1)
    probe = make_probe()
    probe.record(ActionChunk, T["plan"], SENSOR_QOS)
    try:
        assert probe.wait_for(lambda: any(c.prefix_steps > 0 for c in probe.got(T["chunk"])), 60.0), (
            nodes["policy"].output[-3000:], nodes["executor"].output[-3000:])
        assert probe.wait_for(lambda: probe.got(T["outcome"]), 30.0), nodes["sim"].output
        assert nodes["sim"].wait(10.0) == 0, nodes["sim"].output  # exits by itself after the last episode
        plans, chunks = probe.got(T["plan"]), probe.got(T["chunk"])
        assert plans and all(p.decoder == "executor_plan" and p.horizon == 8 for p in plans)
        prefixed = [c for c in chunks if c.prefix_steps > 0]
        assert all(1 <= c.prefix_steps <= 4 for c in prefixed)
        # the prefix is the plan: rebuild the policy's view of it at each decode's start and compare
        checked = 0
        for c in prefixed:
            start = _sec(c.header.stamp) + c.stats.observation_age_s
            track = PlanTrack()
            for p in plans:
                if _sec(p.header.stamp) <= start - 0.005:  # surely received by then
                    track.add(_sec(p.header.stamp), 1 / 30, _plan_values(p))
            times = step_times(_sec(c.header.stamp), c.prefix_steps, 1 / 30)
            if track.covered(times) < c.prefix_steps:
                continue
            got = np.asarray(c.actions).reshape(c.horizon, -1)[: c.prefix_steps]
            assert np.max(np.abs(got - track.at(times)[:, :7])) < 0.1, (got, track.at(times))
            checked += 1
        assert checked >= len(prefixed) // 2, (checked, len(prefixed))
        seams = [s.seam_velocity_jump for s in probe.got(T["status"]) if np.isfinite(s.seam_velocity_jump)]
        assert seams, "the executor measured no switch-over"
        limits = (list(LIMITS.joint_names), LIMITS.lower, LIMITS.upper, LIMITS.velocity * VSCALE, 30.0)
        check_commands_safe(probe.got(T["traj"]), *limits, allowed_jumps=count_reanchors(probe.got(T["status"])))
    finally:
        results = stop_all(nodes)
        probe.close()
    for name, (code, out) in results.items():
        assert code == 0, f"{name} exit {code}:\n{out[-3000:]}"
        assert "Traceback" not in out, f"{name}:\n{out[-3000:]}"


def _sec(stamp) -> float:
    return stamp.sec + 1e-9 * stamp.nanosec


def _plan_values(p: ActionChunk) -> np.ndarray:
    return np.concatenate([np.asarray(p.actions).reshape(p.horizon, -1), np.asarray(p.gripper)[:, None]], axis=1)


def test_policy_killed_mid_run_executor_holds(checkpoint: str) -> None:
    nodes = start_graph(checkpoint, episodes=0, time_limit=60.0)
    probe = make_probe()
    try:
        assert probe.wait_for(lambda: len(probe.got(T["chunk"])) >= 3, 60.0), nodes["policy"].output
        assert probe.wait_for(
            lambda: probe.got(T["status"]) and probe.got(T["status"])[-1].state == ExecutorStatus.STATE_EXECUTING, 10.0
        )
        nodes["policy"].proc.send_signal(signal.SIGKILL)  # no goodbye: a crash
        nodes["policy"].proc.wait(10.0)
        assert probe.wait_for(lambda: probe.got(T["status"])[-1].state == ExecutorStatus.STATE_HOLDING, 5.0), nodes[
            "executor"
        ].output
        statuses = probe.got(T["status"])
        assert statuses[-1].watchdog_trips >= 1
        # The trip is reported in the status of its tick; a re-anchor (arm lagging a slow simulator) may follow it.
        assert any("watchdog" in s.last_event for s in statuses), [s.last_event for s in statuses[-10:]]
        time.sleep(0.3)
        hold = probe.got(T["traj"])[-1]
        q_hold = [list(p.positions) for p in hold.points]
        assert all(q == q_hold[0] for q in q_hold) and all(v == 0.0 for p in hold.points for v in p.velocities)
        limits = (list(LIMITS.joint_names), LIMITS.lower, LIMITS.upper, LIMITS.velocity * VSCALE, 30.0)
        check_commands_safe(probe.got(T["traj"]), *limits, allowed_jumps=count_reanchors(probe.got(T["status"])))
    finally:
        nodes.pop("policy")
        results = stop_all(nodes)
        probe.close()
    for name, (code, out) in results.items():
        assert code == 0, f"{name} exit {code}:\n{out[-3000:]}"
        assert "Traceback" not in out, f"{name}:\n{out[-3000:]}"
