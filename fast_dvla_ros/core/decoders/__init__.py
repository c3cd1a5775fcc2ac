"""Decoders for DVLA: one interface ``decode(ObservationBatch) -> DecodeOutput``, four strategies."""

from __future__ import annotations

from fast_dvla_ros.core.decoders.base import DecodeOutput, Decoder, DecodeStats, ObservationBatch
from fast_dvla_ros.core.decoders.bidirectional import BidirectionalDecoder
from fast_dvla_ros.core.decoders.block_cache import BlockCacheDecoder
from fast_dvla_ros.core.decoders.pipelined import PipelinedDecoder
from fast_dvla_ros.core.decoders.prefix_cache import PrefixCacheDecoder
from fast_dvla_ros.core.model import DVLA

DECODERS: dict[str, type[Decoder]] = {
    "bidirectional": BidirectionalDecoder,
    "prefix_cache": PrefixCacheDecoder,
    "block_cache": BlockCacheDecoder,
    "pipelined": PipelinedDecoder,
}


def make_decoder(name: str, model: DVLA, **kwargs) -> Decoder:
    """Build a decoder by its contract name; unknown names/parameters raise ValueError/TypeError clearly."""
    try:
        cls = DECODERS[name]
    except KeyError:
        raise ValueError(f"unknown decoder {name!r}; choose from {sorted(DECODERS)}") from None
    return cls(model, **kwargs)


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
