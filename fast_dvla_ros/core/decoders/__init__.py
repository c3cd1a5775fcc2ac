"""Decoders for DVLA: one interface ``decode(ObservationBatch) -> DecodeOutput``, four strategies.

Their names and options are declared in ``fast_dvla_ros.core.decoder_options`` (no torch there);
this module maps each name to its class.
"""

from __future__ import annotations

from typing import Any

from fast_dvla_ros.core.decoder_options import DecoderSpec, parse_decoder_spec
from fast_dvla_ros.core.decoders.base import DecodeOutput, Decoder, DecodeStats, ObservationBatch
from fast_dvla_ros.core.decoders.bidirectional import BidirectionalDecoder
from fast_dvla_ros.core.decoders.block_cache import BlockCacheDecoder
from fast_dvla_ros.core.decoders.pipelined import PipelinedDecoder
from fast_dvla_ros.core.decoders.prefix_cache import PrefixCacheDecoder
from fast_dvla_ros.core.model import DVLA

DECODERS: dict[str, type[Decoder]] = {
    cls.name: cls for cls in (BidirectionalDecoder, PrefixCacheDecoder, BlockCacheDecoder, PipelinedDecoder)
}


def make_decoder(spec: str | DecoderSpec, model: DVLA, **options: Any) -> Decoder:
    """Build a decoder from its name or spec (``"pipelined:n=1"``) and keyword options, which win over the
    spec's (None = not given). Unknown decoders, options and bad values raise ``DecoderSpecError``."""
    resolved = (spec if isinstance(spec, DecoderSpec) else parse_decoder_spec(spec)).with_options(**options)
    return DECODERS[resolved.name](model, resolved.build())


__all__ = [
    "DECODERS",
    "BidirectionalDecoder",
    "BlockCacheDecoder",
    "DecodeOutput",
    "DecodeStats",
    "Decoder",
    "ObservationBatch",
    "PipelinedDecoder",
    "PrefixCacheDecoder",
    "make_decoder",
]
