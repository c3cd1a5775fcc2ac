"""The decoders' names and options, and the one parser of decoder specs: torch-free on purpose.

A decoder spec names a decoder and, optionally, some of its options: ``pipelined``,
``pipelined:n=1,tau_conf=0.3``, ``bidirectional:steps=8``. Every entry point (policy node, launch
files, ``fast-dvla-sim-eval``, the demo, the benchmarks) parses specs here, so a bad name, an option
the decoder does not have or a bad value fails the same way everywhere, and a node or launch file can
reject one before it imports torch (seconds) and loads a checkpoint.

Each decoder's options are one dataclass below; the decoder classes (core/decoders/) are built from
an instance of it, so a default lives in exactly one place.
"""

from __future__ import annotations

import argparse
import functools
import math
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, ClassVar

__all__ = [
    "DECODER_NAMES",
    "DECODER_OPTIONS",
    "BidirectionalOptions",
    "BlockCacheOptions",
    "DecoderOptions",
    "DecoderSpec",
    "DecoderSpecError",
    "PipelinedOptions",
    "PrefixCacheOptions",
    "build_options",
    "check_decoder_name",
    "decoder_spec_argument",
    "parse_decoder_spec",
    "resolve_decoder_spec",
]

# Options that tune how a run is measured or verified rather than how a checkpoint is best decoded;
# a checkpoint's recommended settings (core/contract.py) leave them out.
_KNOB = {"knob": True}
_TRUE, _FALSE, _NONE = ("true", "yes", "on", "1"), ("false", "no", "off", "0"), ("none", "null", "")


class DecoderSpecError(ValueError):
    """A decoder spec or option that cannot be used: unknown decoder, unknown option or bad value."""


@dataclass(frozen=True)
class DecoderOptions:
    """Options every decoder has (see ``core/decoders/base.py`` for what each does).

    ``tokens_per_step``: a fixed schedule instead of the confidence rule (benchmarks on random weights);
    ``temperature`` 0 = greedy, > 0 samples with a generator seeded by ``seed``; ``backend`` "fast"
    (FastQwen2) or "transformers"; ``readout`` "mean" or "argmax" for the joint bins, None = the
    decoder's own (``Decoder.default_readout``).
    """

    decoder: ClassVar[str] = "base"

    tokens_per_step: int | None = field(default=None, metadata=_KNOB)
    temperature: float = field(default=0.0, metadata=_KNOB)
    seed: int = field(default=0, metadata=_KNOB)
    backend: str = field(default="fast", metadata=_KNOB)
    readout: str | None = None

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in fields(self):  # accept numbers and strings alike: values come from YAML, argv and Python
            object.__setattr__(self, f.name, _convert(self.decoder, f.name, hints[f.name], getattr(self, f.name)))
        self._check()

    def _check(self) -> None:
        if self.tokens_per_step is not None and self.tokens_per_step < 1:
            self._fail("tokens_per_step must be >= 1")
        if self.temperature < 0:
            self._fail("temperature must be >= 0")
        if self.backend not in ("fast", "transformers"):
            self._fail(f"backend must be 'fast' or 'transformers', got {self.backend!r}")
        if self.readout not in (None, "mean", "argmax"):
            self._fail(f"readout must be 'mean' or 'argmax', got {self.readout!r}")

    def _fail(self, message: str) -> None:
        raise DecoderSpecError(f"decoder {self.decoder!r}: {message}")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def settings(cls) -> tuple[str, ...]:
        """The options that say how a checkpoint is decoded (all but the measurement knobs)."""
        return tuple(f.name for f in fields(cls) if not f.metadata.get("knob"))


@dataclass(frozen=True)
class BidirectionalOptions(DecoderOptions):
    """``steps``: MaskGIT refinement steps (cosine schedule), 12 as in the paper."""

    decoder: ClassVar[str] = "bidirectional"
    steps: int = 12

    def _check(self) -> None:
        super()._check()
        if self.steps < 1:
            self._fail("steps must be >= 1")


@dataclass(frozen=True)
class PrefixCacheOptions(DecoderOptions):
    """``tau_conf``: commit every masked token at least this confident (and the most confident one)."""

    decoder: ClassVar[str] = "prefix_cache"
    tau_conf: float = 0.5


@dataclass(frozen=True)
class BlockCacheOptions(DecoderOptions):
    """``tau_conf``: commit every masked token of the block at least this confident (and the most confident)."""

    decoder: ClassVar[str] = "block_cache"
    tau_conf: float = 0.5


@dataclass(frozen=True)
class PipelinedOptions(DecoderOptions):
    """Fast-dVLA's pipeline (core/decoders/pipelined.py): ``tau_conf`` commit threshold; ``n``: a fully
    active block commits at least remaining/n tokens per step (1 = the whole block in one forward);
    ``tau_add``: add the next block once the last is this decoded; ``tau_act``: fully activate a block
    once its predecessor is this decoded; ``use_kv_cache`` False recomputes everything (verification)."""

    decoder: ClassVar[str] = "pipelined"
    tau_conf: float = 0.5
    n: int = 2
    tau_add: float = 0.5
    tau_act: float = 0.7
    use_kv_cache: bool = field(default=True, metadata=_KNOB)

    def _check(self) -> None:
        super()._check()
        if self.n < 1:
            self._fail("n must be >= 1")


DECODER_OPTIONS: dict[str, type[DecoderOptions]] = {
    o.decoder: o for o in (BidirectionalOptions, PrefixCacheOptions, BlockCacheOptions, PipelinedOptions)
}
DECODER_NAMES: tuple[str, ...] = tuple(DECODER_OPTIONS)


def build_options(cls: type[DecoderOptions], values: Mapping[str, Any]) -> DecoderOptions:
    """``cls(**values)``, with an option the decoder does not have named in a DecoderSpecError."""
    unknown = sorted(set(values) - set(cls.names()))
    if unknown:
        raise DecoderSpecError(
            f"decoder {cls.decoder!r} has no option {', '.join(map(repr, unknown))}; its options: "
            f"{', '.join(cls.names())}"
        )
    return cls(**values)


def check_decoder_name(name: str) -> str:
    """``name`` if it is a decoder's, else DecoderSpecError listing the decoders."""
    if name not in DECODER_OPTIONS:
        raise DecoderSpecError(f"unknown decoder {name!r}; choose from {', '.join(DECODER_NAMES)}")
    return name


@dataclass(frozen=True)
class DecoderSpec:
    """A decoder and the options set explicitly for it (the others keep the decoder's defaults)."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_decoder_name(self.name)
        object.__setattr__(self, "options", self._given(self.options))

    def _given(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` converted to the options' types (unknown names raise), in a stable order."""
        built = build_options(DECODER_OPTIONS[self.name], values)
        return {k: getattr(built, k) for k in sorted(values)}

    @classmethod
    def parse(cls, text: str) -> DecoderSpec:
        """``"pipelined:n=1,tau_conf=0.3"`` -> DecoderSpec("pipelined", {"n": 1, "tau_conf": 0.3})."""
        name, _, settings = str(text).strip().partition(":")
        options: dict[str, str] = {}
        for item in filter(None, (s.strip() for s in settings.split(","))):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise DecoderSpecError(f"decoder setting {item!r} in {text!r} is not key=value")
            if key.strip() in options:
                raise DecoderSpecError(f"decoder setting {key.strip()!r} given twice in {text!r}")
            options[key.strip()] = value.strip()
        return cls(name.strip(), options)

    def build(self) -> DecoderOptions:
        """The decoder's options dataclass with these settings."""
        return DECODER_OPTIONS[self.name](**self.options)

    def with_options(self, **values: Any) -> DecoderSpec:
        """These settings plus ``values`` (which win); None means "not given". Unknown names raise."""
        given = {k: v for k, v in values.items() if v is not None}
        return replace(self, options={**self.options, **self._given(given)}) if given else self

    def applicable(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The entries of ``values`` that are options of this decoder and given (not None)."""
        names = DECODER_OPTIONS[self.name].names()
        return {k: v for k, v in values.items() if k in names and v is not None}

    def full(self) -> DecoderSpec:
        """Every setting explicit (``DecoderOptions.settings``): what a checkpoint records, so a later
        change of a decoder's default cannot change how the checkpoint is decoded."""
        built = self.build()
        settings = {k: getattr(built, k) for k in type(built).settings()}
        if settings.get("readout", "") is None:
            settings.pop("readout")  # the decoder's own readout (Decoder.default_readout) stays implicit
        return replace(self, options={**settings, **self.options})

    def __str__(self) -> str:
        if not self.options:
            return self.name
        return f"{self.name}:" + ",".join(f"{k}={_text(v)}" for k, v in sorted(self.options.items()))

    def label(self) -> str:
        """``"pipelined n=1"``: the name and the settings that differ from the decoder's defaults."""
        changed = {k: v for k, v in sorted(self.options.items()) if v != _default_of(self.name, k)}
        return " ".join([self.name, ",".join(f"{k}={_text(v)}" for k, v in changed.items())]).strip()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "options": dict(sorted(self.options.items()))}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DecoderSpec:
        unknown = set(d) - {"name", "options"}
        if unknown or "name" not in d:
            raise DecoderSpecError(f"a decoder entry is {{'name': ..., 'options': {{...}}}}, got keys {sorted(d)}")
        return cls(str(d["name"]), dict(d.get("options") or {}))


def parse_decoder_spec(text: str) -> DecoderSpec:
    """``DecoderSpec.parse``; DecoderSpecError (a ValueError) with a message naming what is wrong."""
    return DecoderSpec.parse(text)


def decoder_spec_argument(text: str) -> str:
    """argparse ``type=`` for a decoder spec: the stripped text if it parses (or is empty), else a usage error."""
    if text.strip():
        try:
            parse_decoder_spec(text)
        except DecoderSpecError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return text.strip()


def resolve_decoder_spec(
    spec: str | DecoderSpec | None, recommended: DecoderSpec, settings: Mapping[str, Any] | None = None
) -> DecoderSpec:
    """The spec a decoder is built from.

    ``spec`` empty (None or "") -> ``recommended`` (the checkpoint's decoder with its settings); a spec
    naming a decoder -> that decoder with its own defaults and the options the spec gives. ``settings``
    (command-line flags shared by all decoders; None = not given) set the options the chosen decoder has
    and are ignored by the others, so ``--n 1`` means nothing to the bidirectional baseline; a spec's own
    options win over them, so one run can hold rows of one decoder with different settings.
    """
    if isinstance(spec, str):
        spec = parse_decoder_spec(spec) if spec.strip() else None
    base = recommended if spec is None else DecoderSpec(spec.name)
    own = {} if spec is None else dict(spec.options)
    return base.with_options(**base.applicable(settings or {})).with_options(**own)


# ---------------------------------------------------------------------------------------------- values
@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _default(f: Any) -> Any:
    return f.default if f.default is not MISSING else f.default_factory()


def _default_of(name: str, key: str) -> Any:
    return next(_default(f) for f in fields(DECODER_OPTIONS[name]) if f.name == key)


def _text(value: Any) -> str:
    return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _convert(decoder: str, key: str, kind: Any, value: Any) -> Any:
    """``value`` (a Python value or the text of a spec) as an option of type ``kind``."""
    args = typing.get_args(kind)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), kind) if args else kind
    bad = DecoderSpecError(f"decoder {decoder!r}: option {key}={value!r} must be {_describe(base, optional)}")
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in _NONE):
        if optional:
            return None
        raise bad
    if base is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise bad
    if base is str:
        return str(value).strip()
    if isinstance(value, bool):
        raise bad
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise bad from None
    if not math.isfinite(number):
        raise bad
    if base is int:
        if not number.is_integer():
            raise bad
        return int(number)
    return number


def _describe(kind: Any, optional: bool) -> str:
    what = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(kind, str(kind))
    return f"{what} or none" if optional else what
