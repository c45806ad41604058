"""Model inputs: coordinates and normalisation, serialisation orders, per-event pipeline and packing.

>>> from scaling.inputs import Normalizer, prepare_event, pack_samples
"""

from scaling.inputs.coordinates import Normalizer, to_cylindrical
from scaling.inputs.pipeline import (
    PackedBatch,
    PaddedBatch,
    Sample,
    pack_by_token_budget,
    pack_samples,
    pad_samples,
    prepare_event,
)
from scaling.inputs.serialization import SERIALIZATIONS, raster_boxes, serialize

__all__ = [
    "SERIALIZATIONS",
    "Normalizer",
    "PackedBatch",
    "PaddedBatch",
    "Sample",
    "pack_by_token_budget",
    "pack_samples",
    "pad_samples",
    "prepare_event",
    "raster_boxes",
    "serialize",
    "to_cylindrical",
]
