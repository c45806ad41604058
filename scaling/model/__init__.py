"""The Mamba-2 point model family: config, network, mixer (pure torch or mamba_ssm), FLOP counts.

>>> from scaling.model import ModelConfig, build_model, resolve_model_config
>>> model = build_model(resolve_model_config(ModelConfig(name="m1")), out_dim=90)

Names are imported on first use (scaling/lazy.py): `scaling.model.config` needs no torch.
"""

from scaling.lazy import lazy_exports

__all__ = [
    "MODEL_FAMILY",
    "ModelConfig",
    "PointModel",
    "build_model",
    "check_resolved",
    "count_parameters",
    "resolve_model_config",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "MODEL_FAMILY": "scaling.model.family",
        "ModelConfig": "scaling.model.config",
        "resolve_model_config": "scaling.model.config",
        "check_resolved": "scaling.model.config",
        "PointModel": "scaling.model.network",
        "build_model": "scaling.model.network",
        "count_parameters": "scaling.model.network",
    },
)
