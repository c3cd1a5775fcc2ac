"""docs/LAUNCH.md's generated sections: the node parameter tables and the topics table.

    python -m fast_dvla_ros.graph --markdown            # print both sections (with their markers)
    python -m fast_dvla_ros.graph --write docs/LAUNCH.md  # replace them between the markers

test/test_launch_static.py fails when docs/LAUNCH.md differs from what this prints.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from fast_dvla_ros.graph.parameters import NODE_PARAMETERS, NodeParameter
from fast_dvla_ros.graph.topics import TOPICS, Endpoint, Topic


def _begin(section: str) -> str:
    return f"<!-- BEGIN GENERATED {section} (python -m fast_dvla_ros.graph --write docs/LAUNCH.md) -->"


def _end(section: str) -> str:
    return f"<!-- END GENERATED {section} -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    if value == "":
        return "''"
    return str(value)


def _range(p: NodeParameter) -> str:
    if p.range is None:
        return ""
    lo, hi = p.range
    return f"{int(lo)} .. {int(hi)}" if p.integer else f"{lo:g} .. {hi:g}"


def parameters_markdown() -> str:
    parts = []
    for node, table in NODE_PARAMETERS.items():
        rows = [f"`{node}`:", "", "| parameter | default | range | mode | description |", "|---|---|---|---|---|"]
        for p in table:
            kind = "read-only" if p.read_only else "dynamic"
            default = _cell(_value(p.default))
            rows.append(f"| `{p.name}` | `{default}` | {_range(p)} | {kind} | {_cell(p.description)} |")
        parts.append("\n".join(rows))
    return "\n\n".join(parts)


def _ends(endpoints: tuple[Endpoint, ...]) -> str:
    return ", ".join(f"{e.node} `{e.name}`" for e in endpoints)


def _flow(t: Topic) -> str:
    flow = f"{_ends(t.publishers) or '-'} -> {_ends(t.subscribers) or '-'}"
    return flow + (f" ({t.note})" if t.note else "")


def _name(name: str | None) -> str:
    return "-" if name is None else f"`{name}`"


def topics_markdown() -> str:
    rows = [
        "| argument | robot default | sim default | type | QoS | publishers -> subscribers |",
        "|---|---|---|---|---|---|",
    ]
    for t in TOPICS:
        arg = f"`{t.argument}`" + (f" + `{t.suffix}`" if t.suffix else "") if t.argument else "(fixed)"
        rows.append(
            f"| {arg} | {_name(t.robot)} | {_name(t.sim)} | `{t.msg_type}` | `{t.qos}` | {_cell(_flow(t))} |"
        )
    return "\n".join(rows)


SECTIONS = {"PARAMETERS": parameters_markdown, "TOPICS": topics_markdown}


def section(name: str) -> str:
    """One generated section with its markers."""
    return f"{_begin(name)}\n{SECTIONS[name]()}\n{_end(name)}"


def replace_sections(text: str) -> str:
    """``text`` with every generated section replaced by today's; each must be present once."""
    for name in SECTIONS:
        pattern = re.compile(re.escape(_begin(name)) + r".*?" + re.escape(_end(name)), re.S)
        if len(pattern.findall(text)) != 1:
            raise ValueError(f"expected one generated {name} section between its markers")
        text = pattern.sub(lambda _m, name=name: section(name), text)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fast_dvla_ros.graph", description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--markdown", action="store_true", help="print the generated docs sections")
    mode.add_argument("--write", type=Path, metavar="DOC", help="replace the sections in DOC between the markers")
    a = p.parse_args(argv)
    if a.markdown:
        print("\n\n".join(section(name) for name in SECTIONS))
        return 0
    try:
        a.write.write_text(replace_sections(a.write.read_text(encoding="utf-8")), encoding="utf-8")
    except (OSError, ValueError) as exc:
        print(f"{a.write}: {exc}", file=sys.stderr)
        return 1
    return 0
