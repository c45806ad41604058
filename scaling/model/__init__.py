"""The Mamba-2 point model family: config, network, mixer (pure torch or mamba_ssm), FLOP counts.

>>> from scaling.model import ModelConfig, build_model, resolve_model_config
>>> model = build_model(ModelConfig(name="m1"), out_dim=90)
"""

from scaling.model.config import ModelConfig, resolve_model_config
from scaling.model.family import MODEL_FAMILY
from scaling.model.network import PointModel, build_model, count_parameters

__all__ = [
    "MODEL_FAMILY",
    "ModelConfig",
    "PointModel",
    "build_model",
    "count_parameters",
    "resolve_model_config",
]
