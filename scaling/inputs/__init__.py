"""Model inputs: coordinates and normalisation, serialisation orders, per-event pipeline and packing.

>>> from scaling.inputs import Normalizer, prepare_event, pack_samples

Names are imported on first use (scaling/lazy.py): `scaling.inputs.serialization` needs no torch.
"""

from scaling.lazy import lazy_exports

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
_PIPELINE = ("pack_by_token_budget", "pack_samples", "pad_samples", "prepare_event")
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Normalizer": "scaling.inputs.coordinates",
        "to_cylindrical": "scaling.inputs.coordinates",
        "SERIALIZATIONS": "scaling.inputs.serialization",
        "raster_boxes": "scaling.inputs.serialization",
        "serialize": "scaling.inputs.serialization",
        **dict.fromkeys(("PackedBatch", "PaddedBatch", "Sample"), "scaling.inputs.batch"),
        **dict.fromkeys(_PIPELINE, "scaling.inputs.pipeline"),
    },
)
