"""Policy node parameters left empty take the checkpoint's values (in process: no DDS peers needed)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")

from fast_dvla_ros.nodes.policy_node import PolicyNode  # noqa: E402
from fast_dvla_ros.nodes.runner import StartupError  # noqa: E402

pytestmark = pytest.mark.ros
DISTILLED = str(Path(__file__).resolve().parents[1] / "models" / "student_distilled")


@contextmanager
def policy_node(*params: str) -> Iterator[PolicyNode]:
    args = ["--ros-args", "-p", "warmup:=false"]
    for p in params:
        args += ["-p", p]
    rclpy.init(args=args)
    node = None
    try:
        node = PolicyNode()
        yield node
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.shutdown()


def test_empty_parameters_take_the_checkpoint_s_values() -> None:
    with policy_node(f"checkpoint:={DISTILLED}") as node:
        assert node.get_parameter("decoder").value == "" and node.get_parameter("action_rate_hz").value == 0.0
        spec = node.policy.decoder_spec
        assert (spec.name, spec.build().n, spec.build().tau_conf) == ("pipelined", 1, 0.5)  # config.json's
        assert node.action_rate_hz == 30.0 and node.step_period == pytest.approx(1 / 30)
        assert node.period == pytest.approx(1 / 30)  # chunk rate: the action rate


def test_the_node_declares_its_table() -> None:
    """What `ros2 param describe` shows is fast_dvla_ros/graph/parameters.py: names, defaults, ranges, read-only."""
    from fast_dvla_ros.graph.parameters import POLICY_PARAMETERS

    with policy_node(f"checkpoint:={DISTILLED}") as node:
        rclpy_own = ("use_sim_time", "start_type_description_service")
        assert [n for n in node._parameters if n not in rclpy_own] == [p.name for p in POLICY_PARAMETERS]
        for p in POLICY_PARAMETERS:
            d = node.describe_parameter(p.name)
            assert d.description.startswith(p.description) and d.read_only == p.read_only, p.name
            ranges = [(r.from_value, r.to_value) for r in (*d.integer_range, *d.floating_point_range)]
            assert ranges == ([p.range] if p.range else []), p.name
            if p.name not in ("checkpoint", "warmup"):  # set by policy_node()
                assert node.get_parameter(p.name).value == p.ros_default, p.name


def test_set_parameters_win() -> None:
    with policy_node(
        f"checkpoint:={DISTILLED}", "decoder:=pipelined:n=2", "action_rate_hz:=15.0", "control_rate_hz:=10.0"
    ) as node:
        assert node.policy.decoder.n == 2
        assert node.step_period == pytest.approx(1 / 15) and node.period == pytest.approx(1 / 10)


@pytest.mark.parametrize(
    ("param", "message"),
    [("decoder:=pipelined:m=1", "has no option 'm'"), ("n:=2", "parameters n are no longer read")],
)
def test_bad_decoder_settings_stop_the_start(param: str, message: str) -> None:
    with pytest.raises(StartupError, match=message), policy_node(f"checkpoint:={DISTILLED}", param):
        pass
