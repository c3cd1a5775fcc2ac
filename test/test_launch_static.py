"""Static checks of launch/ and the controller configs, runnable without ROS' launch packages.

The launch files are parsed with ``ast`` (``launch``/``launch_ros`` are not installable here), so
these tests catch what would otherwise surface only on a robot: an executable CMake does not
install, a parameter file that does not exist, an argument used but never declared (a typo
fails only when that code path runs), an argument without a description, or a controller
config naming the wrong joints.
"""

from __future__ import annotations

import ast
import configparser
import re
from pathlib import Path

import pytest
import yaml

from fast_dvla_ros.graph import markdown as graph_docs
from fast_dvla_ros.graph import topics as graph
from fast_dvla_ros.graph.parameters import NODE_PARAMETERS
from ros_peers.shared import FRANKA_RELEASES, franka_release, shared_dir

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"
LAUNCH_FILES = sorted(LAUNCH.glob("*.launch.py"))
COMMON = LAUNCH / "fast_dvla_common.py"
PACKAGE = "fast_dvla_ros"


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    """Every call of ``name(...)`` or ``x.name(...)``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if called == name:
                found.append(node)
    return found


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _const(node: ast.expr | None, constants: dict[str, str]) -> str | None:
    """A string literal, an f-string of known module constants, or a known module constant."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    if isinstance(node, ast.JoinedStr):
        parts = [_const(v.value if isinstance(v, ast.FormattedValue) else v, constants) for v in node.values]
        return None if None in parts else "".join(parts)
    return None


def _module_constants(tree: ast.Module) -> dict[str, str]:
    out = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            out[node.targets[0].id] = node.value.value
    return out


def _constants_for(path: Path) -> dict[str, str]:
    """Module string constants of ``path`` and fast_dvla_common, and the node names they import from the graph."""
    imported = {k: v for k, v in vars(graph).items() if k.isupper() and isinstance(v, str)}
    return {**imported, **_module_constants(_tree(COMMON)), **_module_constants(_tree(path))}


def _declared(tree: ast.AST, constants: dict[str, str]) -> dict[str, ast.Call]:
    return {_const(c.args[0], constants): c for c in _calls(tree, "DeclareLaunchArgument") if c.args}


def _loop_values(tree: ast.AST) -> dict[str, list[str]]:
    """Loop variables iterating over literal string tuples: ``for name in ("a", "b")``."""
    values: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, (ast.For, ast.comprehension))
            and isinstance(node.target, ast.Name)
            and isinstance(node.iter, (ast.Tuple, ast.List))
        ):
            items = [_const(e, {}) for e in node.iter.elts]
            if None not in items:
                values.setdefault(node.target.id, []).extend(items)
    return values


def _used(tree: ast.AST, constants: dict[str, str]) -> set[str]:
    """Argument names read with LaunchConfiguration(...); None marks one that cannot be resolved.

    ``overrides(context, {"arg": type, ...})`` (fast_dvla_common) reads the arguments named by its
    dict's keys, so those keys count as used and the generic read inside ``overrides`` is skipped.
    """
    loops = _loop_values(tree)
    helper_calls = {
        id(call)
        for fn in ast.walk(tree)
        if isinstance(fn, ast.FunctionDef) and fn.name == "overrides"
        for call in _calls(fn, "LaunchConfiguration")
    }
    used: set[str | None] = set()
    for call in _calls(tree, "LaunchConfiguration"):
        if id(call) in helper_calls:
            continue
        arg = call.args[0] if call.args else None
        if isinstance(arg, ast.Name) and arg.id in loops:
            used.update(loops[arg.id])
        else:
            used.add(_const(arg, constants))
    for call in _calls(tree, "overrides"):
        mapping = call.args[1] if len(call.args) > 1 else None
        assert isinstance(mapping, ast.Dict), f"overrides() needs a literal dict: {ast.unparse(call)}"
        used.update(_const(k, constants) for k in mapping.keys)
    return used


def _installed_programs() -> set[str]:
    cmake = (ROOT / "CMakeLists.txt").read_text()
    block = re.search(r"install\(PROGRAMS(.*?)DESTINATION lib/\$\{PROJECT_NAME\}\)", cmake, re.S)
    assert block, "CMakeLists.txt installs no programs to lib/${PROJECT_NAME}"
    return {Path(p).name for p in block.group(1).split()}


def _console_scripts() -> dict[str, str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = cfg["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict(tuple(part.strip() for part in line.split("=", 1)) for line in lines if "=" in line)


def _executables(path: Path) -> list[str]:
    constants = _constants_for(path)
    found = []
    for tree in (_tree(path), _tree(COMMON)):
        for call in _calls(tree, "Node"):
            package = _const(_keyword(call, "package"), constants)
            executable = _const(_keyword(call, "executable"), constants)
            if package == PACKAGE:
                assert executable, f"{path.name}: a {PACKAGE} Node without a literal executable"
                found.append(executable)
    return found


def test_there_are_a_robot_and_a_sim_launch_file() -> None:
    assert {p.name for p in LAUNCH_FILES} == {"conveyor_picking.launch.py", "sim_conveyor.launch.py"}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_every_executable_is_installed_and_has_a_console_script(path: Path) -> None:
    executables = _executables(path)
    expected = {"conveyor_picking.launch.py": {"policy_node", "executor_node"}}.get(
        path.name, {"policy_node", "executor_node", "sim_node"}
    )
    assert set(executables) == expected
    installed = _installed_programs()
    scripts = _console_scripts()
    for exe in executables:
        assert exe in installed, f"{exe} is not installed by CMakeLists.txt to lib/fast_dvla_ros"
        wrapper = (ROOT / "scripts" / exe).read_text()
        module = re.search(r"from (fast_dvla_ros\.[\w.]+) import main", wrapper)
        assert module, f"scripts/{exe} does not call a fast_dvla_ros main()"
        targets = set(scripts.values())
        assert f"{module.group(1)}:main" in targets, f"no console script runs {module.group(1)}:main"


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_every_argument_is_declared_with_a_description(path: Path) -> None:
    constants = _constants_for(path)
    declared = {**_declared(_tree(COMMON), constants), **_declared(_tree(path), constants)}
    assert None not in declared, "an argument name is not a literal"
    for name, call in declared.items():
        description = _const(_keyword(call, "description"), constants)
        assert description and len(description) > 15, f"{path.name}: argument {name!r} lacks a real description"
        assert _keyword(call, "default_value") is not None, f"{path.name}: argument {name!r} has no default"
    used = _used(_tree(path), constants) | _used(_tree(COMMON), constants)
    undeclared = used - set(declared)
    assert not undeclared, f"{path.name} uses undeclared arguments {sorted(undeclared)}"


def _franka_values_keys() -> set[str]:
    """Keys of the ``values`` dict robot_bringup hands franka_launch_arguments()."""
    tree = _tree(LAUNCH / "conveyor_picking.launch.py")
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "robot_bringup")
    values = next(
        n.value for n in ast.walk(fn)
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "values" and isinstance(n.value, ast.Dict)
    )  # fmt: skip
    return {k.value for k in values.keys}


def test_robot_launch_accepts_both_franka_spellings_and_passes_them_through() -> None:
    from fast_dvla_ros.franka_args import OPTIONAL, REQUIRED

    path = LAUNCH / "conveyor_picking.launch.py"
    tree = _tree(path)
    declared = _declared(tree, _constants_for(path))
    for arg in ("robot_ip", "robot_type", "arm_id", "use_fake_hardware", "fake_sensor_commands", "load_gripper",
                "namespace", "camera", "record", "start_policy", "start_executor"):  # fmt: skip
        assert arg in declared or arg in _declared(_tree(COMMON), {}), arg
    # every argument franka_launch_arguments() may pass is given to it
    assert _franka_values_keys() == set(REQUIRED) | set(OPTIONAL)
    include = next(c for c in _calls(tree, "IncludeLaunchDescription") if "franka" in ast.unparse(c))
    assert ast.unparse(_keyword(include, "launch_arguments")) == "arguments.items()"
    assert "franka_launch_arguments(declared, robot_type, values)" in ast.unparse(tree)
    assert "franka.launch.py" in ast.unparse(tree)
    spawner = next(c for c in _calls(tree, "Node") if _const(_keyword(c, "executable"), {}) == "spawner")
    assert "CONTROLLER" in ast.unparse(_keyword(spawner, "arguments"))


# --- franka contract: the real franka_bringup of each release (shared/franka_ros2) -----------------


def _franka(release: str) -> Path:
    path = franka_release(release)
    if path is None:
        pytest.skip(f"franka_ros2 {release} sources not found under {shared_dir()}/franka_ros2 (CI reference folder)")
    return path


def _franka_declared(release: str) -> dict[str, ast.Call]:
    launch_file = _franka(release) / "franka_bringup" / "launch" / "franka.launch.py"
    return _declared(_tree(launch_file), {})


@pytest.mark.parametrize("release", FRANKA_RELEASES)
def test_every_argument_passed_to_franka_launch_is_declared_by_the_release(release: str) -> None:
    from fast_dvla_ros.franka_args import franka_launch_arguments

    declared = _franka_declared(release)
    assert "robot_type" in declared and "arm_id" not in declared  # both lines are >= 2.2.0
    values = {name: "x" for name in _franka_values_keys()}
    for robot_type, expected in (("fr3", "fr3"), ("fer", "fer"), ("panda", "fer")):
        passed = franka_launch_arguments(declared, robot_type, values)
        undeclared = sorted(set(passed) - set(declared))
        assert not undeclared, f"franka_ros2 {release} does not declare {undeclared}"
        assert passed["robot_type"] == expected and passed["controllers_yaml"] == "x"
        assert set(passed) == set(values) | {"robot_type"}  # nothing the user asked for is dropped here


def test_franka_arguments_for_an_arm_id_release_and_for_missing_arguments() -> None:
    """franka_ros2 < 2.2 calls the arm type arm_id; a release lacking controllers_yaml cannot run our controller."""
    from fast_dvla_ros.franka_args import FrankaArgumentError, franka_launch_arguments

    values = {name: "" for name in _franka_values_keys()} | {"robot_ip": "1.2.3.4", "controllers_yaml": "c.yaml"}
    old = {"arm_id", "robot_ip", "use_fake_hardware", "controllers_yaml", "load_gripper"}
    passed = franka_launch_arguments(old, "panda", values)
    assert passed == {"arm_id": "panda", "robot_ip": "1.2.3.4", "controllers_yaml": "c.yaml",
                      "use_fake_hardware": "", "load_gripper": ""}  # fmt: skip
    with pytest.raises(FrankaArgumentError, match="namespace:=robot1 is not supported"):
        franka_launch_arguments(old, "fr3", values | {"namespace": "robot1"})
    with pytest.raises(FrankaArgumentError, match="'controllers_yaml'"):
        franka_launch_arguments(old - {"controllers_yaml"}, "fr3", values)
    with pytest.raises(FrankaArgumentError, match="neither"):
        franka_launch_arguments({"robot_ip", "controllers_yaml"}, "fr3", values)


class _MergingLoader(yaml.SafeLoader):
    """Repeated mapping keys merge, as rcl's parameter file parser reads them (franka's fr3_ros_controllers.yaml
    has two top-level ``/**:`` sections; plain YAML keeps only the last)."""


def _merge_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    out: dict = {}
    for key_node, value_node in node.value:
        key, value = loader.construct_object(key_node, deep=True), loader.construct_object(value_node, deep=True)
        if isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


_MergingLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _merge_mapping)


def _franka_controllers(release: str) -> dict:
    path = _franka(release) / "franka_fr3_moveit_config" / "config" / "fr3_ros_controllers.yaml"
    return yaml.load(path.read_text(), Loader=_MergingLoader)["/**"]  # a SafeLoader subclass


@pytest.mark.parametrize("release", FRANKA_RELEASES)
@pytest.mark.parametrize(("config", "prefix"), [("fr3_trajectory_controller.yaml", "fr3"),
                                                ("panda_trajectory_controller.yaml", "fer")])  # fmt: skip
def test_trajectory_controller_config_matches_franka_own(release: str, config: str, prefix: str) -> None:
    """Our JTC config names the joints and interfaces franka's own JTC (fr3_arm_controller) uses; the command
    interface is position on purpose (docs/LAUNCH.md), one franka_hardware exports beside effort."""
    theirs_all = _franka_controllers(release)
    theirs = theirs_all["fr3_arm_controller"]["ros__parameters"]
    ours_all = yaml.safe_load((ROOT / "config" / config).read_text())["/**"]
    controller = graph.CONTROLLER
    ours = ours_all[controller]["ros__parameters"]
    assert ours["joints"] == [j.replace("fr3_", f"{prefix}_") for j in theirs["joints"]]
    assert ours["state_interfaces"] == theirs["state_interfaces"]
    assert theirs["command_interfaces"] == ["effort"] and ours["command_interfaces"] == ["position"]
    their_manager = theirs_all["controller_manager"]["ros__parameters"]
    our_manager = ours_all["controller_manager"]["ros__parameters"]
    assert our_manager["update_rate"] == their_manager["update_rate"]
    assert our_manager[controller]["type"] == their_manager["fr3_arm_controller"]["type"]
    # ours replaces franka_bringup's controllers.yaml: the broadcasters franka.launch.py spawns keep their types
    bringup_file = _franka(release) / "franka_bringup" / "config" / "controllers.yaml"
    bringup = yaml.load(bringup_file.read_text(), _MergingLoader)
    bringup_manager = bringup["/**"]["controller_manager"]["ros__parameters"]
    for name in ("joint_state_broadcaster", "franka_robot_state_broadcaster"):
        assert our_manager[name]["type"] == bringup_manager[name]["type"], name
        assert f"'{name}'" in (_franka(release) / "franka_bringup" / "launch" / "franka.launch.py").read_text()


def test_every_parameter_file_named_exists() -> None:
    names = set()
    for path in [*LAUNCH_FILES, COMMON]:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(".yaml"):
                names.add(node.value)
    assert {
        "conveyor_picking.yaml",
        "sim_conveyor.yaml",
        "fr3_trajectory_controller.yaml",
        "panda_trajectory_controller.yaml",
    } <= names
    for name in names:
        assert (ROOT / "config" / name).is_file(), f"config/{name} is named by a launch file but does not exist"


def _robot_configs() -> dict[str, str]:
    tree = _tree(LAUNCH / "conveyor_picking.launch.py")
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "CONTROLLER_CONFIGS":
            return ast.literal_eval(node.value)
    raise AssertionError("CONTROLLER_CONFIGS not found")


@pytest.mark.parametrize(
    ("config", "prefix"),
    [("fr3_trajectory_controller.yaml", "fr3"), ("panda_trajectory_controller.yaml", "fer")],
)
def test_controller_configs_parse_and_name_the_right_joints(config: str, prefix: str) -> None:
    params = yaml.safe_load((ROOT / "config" / config).read_text())["/**"]
    controller = graph.CONTROLLER
    manager = params["controller_manager"]["ros__parameters"]
    assert manager[controller]["type"] == "joint_trajectory_controller/JointTrajectoryController"
    # franka.launch.py spawns these itself from the same file: they must stay declared.
    assert manager["joint_state_broadcaster"]["type"] == "joint_state_broadcaster/JointStateBroadcaster"
    assert "franka_robot_state_broadcaster" in manager
    assert manager["update_rate"] == 1000
    jtc = params[controller]["ros__parameters"]
    assert jtc["joints"] == [f"{prefix}_joint{i}" for i in range(1, 8)]
    assert jtc["command_interfaces"] == ["position"]
    assert jtc["state_interfaces"] == ["position", "velocity"]
    assert jtc["allow_nonzero_velocity_at_trajectory_end"] is True
    assert jtc["interpolation_method"] == "splines"
    constraints = jtc["constraints"]
    assert 0 < constraints["stopped_velocity_tolerance"] <= 0.1
    assert 0 < constraints["goal_time"] < jtc["cmd_timeout"]
    assert {k for k in constraints if k.startswith(prefix)} == set(jtc["joints"])
    # the launch file maps franka_ros2 robot types to the config with their joint names
    types = {"fr3": {"fr3"}, "fer": {"fer", "panda"}}[prefix]
    assert {t for t, file in _robot_configs().items() if file == config} == types


# --- node parameters: config file keys <-> parameters the nodes declare ---------------------

NODE_MODULES = {"fast_dvla_policy": "policy_node", "chunk_executor": "executor_node", "conveyor_sim": "sim_node"}
NODES_DIR = ROOT / "fast_dvla_ros" / "nodes"


def _param_files() -> list[Path]:
    """Every node parameter file a launch file names (robot and simulator may differ)."""
    names = set()
    for path in [*LAUNCH_FILES, COMMON]:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(".yaml"):
                names.add(node.value)
    return [ROOT / "config" / n for n in sorted(names) if "trajectory_controller" not in n]


def _flatten(params: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _node_parameters(node_name: str) -> set[str]:
    """The parameters a node declares: its table (fast_dvla_ros/graph/parameters.py)."""
    return {p.name for p in NODE_PARAMETERS[node_name]}


def test_nodes_declare_their_parameters_only_from_their_table() -> None:
    """A declare_parameter call in a node module would be a parameter the table, the docs and these checks miss."""
    for module in NODE_MODULES.values():
        tree = _tree(NODES_DIR / f"{module}.py")
        assert not _calls(tree, "declare_parameter") and not _calls(tree, "declare_parameters"), module
        assert len(_calls(tree, "declare_all")) == 1, f"{module} does not declare_all(self, <its table>)"
    assert set(NODE_MODULES) == set(NODE_PARAMETERS)


def test_node_parameter_files_exist_and_name_only_declared_parameters() -> None:
    files = _param_files()
    assert files, "no node parameter file is named by the launch files"
    for path in files:
        assert path.is_file(), f"config/{path.name} is named by a launch file but does not exist"
        content = yaml.safe_load(path.read_text())
        assert isinstance(content, dict), f"{path.name} is not a mapping of node names"
        for node_key, section in content.items():
            node_name = node_key.rsplit("/", 1)[-1]
            assert node_name in NODE_MODULES, (
                f"{path.name}: unknown node {node_key!r} (expected {sorted(NODE_MODULES)})"
            )
            declared = _node_parameters(node_name)
            assert declared, f"no declared parameters found in the {node_name} module"
            keys = _flatten(section["ros__parameters"])
            unknown = sorted(k for k in keys if k not in declared and k != "use_sim_time")
            assert not unknown, f"{path.name}: {node_name} does not declare {unknown}"


def _launch_overrides() -> dict[str, set[str]]:
    """Node name -> parameters a launch argument can override (``overrides(...)`` in parameters=)."""
    result: dict[str, set[str]] = {}
    for path in [*LAUNCH_FILES, COMMON]:
        tree = _tree(path)
        constants = _constants_for(path)
        assigned = {
            node.targets[0].id: node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
        }
        for call in _calls(tree, "Node"):
            name = _const(_keyword(call, "name"), constants)
            params = _keyword(call, "parameters")
            for item in getattr(params, "elts", []):
                value = assigned.get(item.id) if isinstance(item, ast.Name) else item
                for call in _calls(value, "overrides") if value is not None else []:
                    result.setdefault(name, set()).update(_const(k, constants) for k in call.args[1].keys)
    return result


def test_launch_overrides_target_the_right_nodes() -> None:
    assert _launch_overrides() == {
        "fast_dvla_policy": {"checkpoint", "decoder", "action_prefix_steps"},
        "chunk_executor": {"blend_mode"},
        "conveyor_sim": {"episodes", "seed"},
    }


def test_launch_overrides_are_declared_node_parameters() -> None:
    for node_name, names in _launch_overrides().items():
        undeclared = sorted(names - set(_node_parameters(node_name)))
        assert not undeclared, f"launch arguments override parameters {node_name} does not declare: {undeclared}"


def test_robot_type_parameters_are_declared_node_parameters() -> None:
    tree = _tree(LAUNCH / "conveyor_picking.launch.py")
    call = next(iter(_calls(tree, "policy_and_executor_nodes")))
    for keyword, node_name in (
        ("robot_policy_params", "fast_dvla_policy"),
        ("robot_executor_params", "chunk_executor"),
    ):
        names = {_const(k, {}) for k in _keyword(call, keyword).keys}
        assert names, keyword
        undeclared = sorted(names - set(_node_parameters(node_name)))
        assert not undeclared, f"the robot launch sets parameters {node_name} does not declare: {undeclared}"


# --- the graph's topics: one table (fast_dvla_ros/graph/topics.py) for launch files, demo and docs ---------


def _launch_remaps() -> dict[str, set[tuple[str, str, str]]]:
    """Node name -> {(private name, launch argument, suffix)} of fast_dvla_common's remappings."""
    constants = _constants_for(COMMON)
    out: dict[str, set[tuple[str, str, str]]] = {}
    for call in _calls(_tree(COMMON), "Node"):
        rules = out.setdefault(_const(_keyword(call, "name"), constants), set())
        for item in getattr(_keyword(call, "remappings"), "elts", []):
            if isinstance(item, ast.Starred):  # the robot launch's extras
                continue
            private, target = item.elts
            suffix = ""
            if isinstance(target, ast.List):  # [LaunchConfiguration("x"), "/suffix"]
                target, suffix = target.elts[0], _const(target.elts[1], constants)
            assert _calls(target, "LaunchConfiguration"), ast.unparse(item)
            rules.add((_const(private, constants), _const(target.args[0], constants), suffix))
    return out


def test_launch_remaps_are_the_topic_table() -> None:
    expected: dict[str, set[tuple[str, str, str]]] = {}
    for t in graph.TOPICS:
        for ep in (*t.publishers, *t.subscribers) if t.argument else ():
            if ep.node != graph.SIM_NODE:  # the simulator keeps its private names (the sim defaults)
                expected.setdefault(ep.node, set()).add((ep.name, t.argument, t.suffix))
    assert _launch_remaps() == expected


def test_topic_table_defaults_are_consistent() -> None:
    for t in graph.TOPICS:
        for ep in (*t.publishers, *t.subscribers):
            if ep.node == graph.SIM_NODE:  # so the simulator needs no remapping in its own graph
                assert t.sim == f"{graph.SIM_NODE}/{ep.name.removeprefix('~/')}", t.key
            if ep.name.startswith("/"):
                assert t.robot == t.sim == ep.name, t.key
        if t.suffix:
            base = next(b for b in graph.TOPICS if b.argument == t.argument and not b.suffix)
            assert (t.robot, t.sim) == (base.robot + t.suffix, base.sim + t.suffix), t.key
    # the sim launch's remaps in the demo: every rule the launch gives a node in the sim graph
    for node, rules in _launch_remaps().items():
        sim = graph.launch_defaults("sim")
        assert graph.remaps(node, "sim") == {p: graph.global_name(sim[a] + s) for p, a, s in rules}, node


def test_launch_topic_arguments_are_the_topic_table() -> None:
    declared = {
        name for name in _declared(_tree(COMMON), _constants_for(COMMON)) if name and name.endswith("_topic")
    }
    assert declared == {t.argument for t in graph.TOPICS if t.argument}
    for graph_name, launch_file in (("robot", "conveyor_picking.launch.py"), ("sim", "sim_conveyor.launch.py")):
        call = next(iter(_calls(_tree(LAUNCH / launch_file), "policy_executor_arguments")))
        assert _const(_keyword(call, "graph"), {}) == graph_name, launch_file


def _qos_profiles() -> set[str]:
    tree = _tree(NODES_DIR / "qos.py")
    return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}


def test_node_endpoints_are_the_topic_table() -> None:
    """Every publisher and subscription a node creates under a literal name is in the table, with its type and
    QoS, and every endpoint the table lists exists (the executor's dry-run switch builds two names)."""
    table = {(ep.node, ep.name): t for t in graph.TOPICS for ep in (*t.publishers, *t.subscribers)}
    assert {t.qos for t in graph.TOPICS} <= _qos_profiles()
    seen = set()
    for node_name, module in NODE_MODULES.items():
        tree = _tree(NODES_DIR / f"{module}.py")
        for kind in ("create_publisher", "create_subscription"):
            for call in _calls(tree, kind):
                msg_type, name = ast.unparse(call.args[0]), _const(call.args[1], {})
                qos = ast.unparse(call.args[3 if kind == "create_subscription" else 2])
                if name is None:  # the executor's out + "joint_trajectory": ~/ or ~/dry_run/
                    names = [n + ast.unparse(call.args[1]).split("+")[-1].strip().strip("'\"")
                             for n in ("~/", "~/dry_run/")]  # fmt: skip
                else:
                    names = [name]
                for n in names:
                    t = table.get((node_name, n))
                    assert t is not None, f"{module}: {n} is not in fast_dvla_ros/graph/topics.py"
                    assert t.msg_type.rsplit("/", 1)[-1] == msg_type and t.qos == qos, (module, n, msg_type, qos)
                    seen.add((node_name, n))
    # franka.py subscribes ~/robot_state for the executor (only where franka_msgs is installed)
    assert set(table) - seen == {(graph.EXECUTOR_NODE, "~/robot_state")}


def test_launch_docs_generated_sections_are_up_to_date() -> None:
    doc = (ROOT / "docs" / "LAUNCH.md").read_text(encoding="utf-8")
    fix = "python -m fast_dvla_ros.graph --write docs/LAUNCH.md"
    for name in graph_docs.SECTIONS:
        assert doc.count(graph_docs.section(name)) == 1, f"docs/LAUNCH.md: {name} section out of date: {fix}"
    assert graph_docs.replace_sections(doc) == doc


def test_nodes_readme_commands_use_the_topic_table() -> None:
    """fast_dvla_ros/nodes/README.md starts the simulator graph by hand: the same remaps as the launch and demo."""
    text = (NODES_DIR / "README.md").read_text(encoding="utf-8").replace("\\\n", " ")
    modules = {module: node for node, module in NODE_MODULES.items()}
    found = {}
    for line in text.splitlines():
        m = re.search(r"-m fast_dvla_ros\.nodes\.(\w+) --ros-args(.*)", line)
        if m:
            rules = dict(r.split(":=", 1) for r in re.findall(r"-r (\S+)", m.group(2)) if not r.startswith("__"))
            found[modules[m.group(1)]] = rules
    assert set(found) == set(NODE_MODULES)
    for node, rules in found.items():
        # the README leaves out the two rules to topics nobody publishes in the simulator
        unused = ("~/image/compressed", "~/robot_state")
        expected = {k: v for k, v in graph.remaps(node, "sim").items() if k not in unused}
        assert rules == expected, node
