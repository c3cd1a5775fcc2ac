"""Decoder specs parse in one place, fail clearly, and the registry imports without torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fast_dvla_ros.core.decoder_options import (
    DECODER_NAMES,
    DECODER_OPTIONS,
    DecoderSpec,
    DecoderSpecError,
    PipelinedOptions,
    parse_decoder_spec,
    resolve_decoder_spec,
)


def test_registry_imports_without_torch() -> None:
    """Nodes and launch files check a decoder spec before paying for torch."""
    code = (
        "import sys\n"
        "from fast_dvla_ros.core.decoder_options import DECODER_NAMES, parse_decoder_spec\n"
        "import fast_dvla_ros.core.contract\n"
        "parse_decoder_spec('pipelined:n=1')\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "print(','.join(DECODER_NAMES))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "bidirectional,prefix_cache,block_cache,pipelined"


@pytest.mark.parametrize(
    ("text", "name", "options"),
    [
        ("pipelined", "pipelined", {}),
        (" pipelined:n=1 ", "pipelined", {"n": 1}),
        ("pipelined:n=1,tau_conf=0.3", "pipelined", {"n": 1, "tau_conf": 0.3}),
        ("pipelined:tau_conf=1,use_kv_cache=false", "pipelined", {"tau_conf": 1.0, "use_kv_cache": False}),
        ("bidirectional:steps=8,readout=argmax", "bidirectional", {"steps": 8, "readout": "argmax"}),
        ("block_cache:tokens_per_step=none", "block_cache", {"tokens_per_step": None}),
        ("prefix_cache:", "prefix_cache", {}),
    ],
)
def test_valid_specs(text: str, name: str, options: dict) -> None:
    spec = parse_decoder_spec(text)
    assert (spec.name, dict(spec.options)) == (name, options)
    assert all(type(v) is type(options[k]) for k, v in spec.options.items())  # typed from the dataclass
    assert parse_decoder_spec(str(spec)) == spec  # str() is a spec again


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("greedy", "unknown decoder 'greedy'; choose from bidirectional, prefix_cache, block_cache, pipelined"),
        ("", "unknown decoder ''"),
        ("block_cache:n=1", "decoder 'block_cache' has no option 'n'; its options: tokens_per_step, "),
        ("bidirectional:tau_conf=0.5", "decoder 'bidirectional' has no option 'tau_conf'"),
        ("pipelined:n=two", "decoder 'pipelined': option n='two' must be an integer"),
        ("pipelined:n=1.5", "option n='1.5' must be an integer"),
        ("pipelined:tau_conf=high", "option tau_conf='high' must be a number"),
        ("pipelined:tau_conf=nan", "must be a number"),
        ("pipelined:use_kv_cache=maybe", "must be true or false"),
        ("pipelined:n=0", "decoder 'pipelined': n must be >= 1"),
        ("pipelined:readout=median", "readout must be 'mean' or 'argmax'"),
        ("pipelined:n", "decoder setting 'n' in 'pipelined:n' is not key=value"),
        ("pipelined:n=1,n=2", "given twice"),
    ],
)
def test_bad_specs_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(DecoderSpecError) as info:
        parse_decoder_spec(text)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)  # callers that catch ValueError keep working


def test_each_decoder_declares_its_options_once() -> None:
    from fast_dvla_ros.core.decoders import DECODERS

    assert tuple(DECODERS) == DECODER_NAMES
    for name, cls in DECODERS.items():
        assert cls.name == name and cls.Options is DECODER_OPTIONS[name]
    # the defaults the decoders had as constructor arguments
    assert PipelinedOptions() == PipelinedOptions(tau_conf=0.5, n=2, tau_add=0.5, tau_act=0.7, use_kv_cache=True)
    assert DECODER_OPTIONS["bidirectional"]().steps == 12
    assert DECODER_OPTIONS["block_cache"]().tau_conf == DECODER_OPTIONS["prefix_cache"]().tau_conf == 0.5
    assert DECODER_OPTIONS["pipelined"]().readout is None  # the decoder's own (Decoder.default_readout)


def test_recorded_settings_are_explicit_and_labels_show_what_differs() -> None:
    assert dict(DecoderSpec.parse("pipelined:n=1").full().options) == {
        "n": 1, "tau_conf": 0.5, "tau_add": 0.5, "tau_act": 0.7,
    }  # fmt: skip
    assert dict(DecoderSpec.parse("bidirectional").full().options) == {"steps": 12}
    assert DecoderSpec.parse("pipelined:n=1").full().label() == "pipelined n=1"
    assert DecoderSpec.parse("pipelined:tau_conf=0.5").label() == "pipelined"
    assert DecoderSpec.from_dict(DecoderSpec.parse("pipelined:n=1").to_dict()) == DecoderSpec.parse("pipelined:n=1")


def test_resolution_empty_named_and_flags() -> None:
    recommended = DecoderSpec.parse("pipelined:n=1").full()
    assert resolve_decoder_spec(None, recommended) == recommended
    assert resolve_decoder_spec("  ", recommended) == recommended
    assert resolve_decoder_spec("pipelined", recommended) == DecoderSpec("pipelined")  # its own defaults
    flags = {"n": 2, "steps": 5, "tau_conf": None}
    assert resolve_decoder_spec("", recommended, flags).build().n == 2
    assert dict(resolve_decoder_spec("bidirectional", recommended, flags).options) == {"steps": 5}
    assert resolve_decoder_spec("pipelined:n=3", recommended, flags).build().n == 3  # the spec wins
    with pytest.raises(DecoderSpecError, match="has no option 'steps'"):
        DecoderSpec("pipelined").with_options(steps=3)
