"""The result of one law fit (what the CLI prints and `--json` writes) and the input checks every law shares.

>>> check_points(names, {"params": n, "loss": y}, n_params=3)   # ValueError naming the row and the fix
>>> json.dumps(fit.to_json())                                    # NaN written as null
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(kw_only=True)
class LawFit:
    """One fitted law, as the CLI prints it and `--json` writes it."""

    law: str
    formula: str
    params: dict[str, float]
    ci95: dict[str, list[float]]
    n_points: int
    converged: bool
    at_bound: list[str]
    r2_log: float
    rms_log_residual: float
    x: str
    loss: str
    irreducible: bool | None = None
    selection: str = ""
    n_bootstrap: int = 0
    n_bootstrap_failed: int = 0
    points: list[dict[str, Any]] = field(default_factory=list)
    excluded: list[dict[str, str]] = field(default_factory=list)
    derived: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    boot: dict[str, list[float]] = field(default_factory=dict)  # bootstrap samples (for bands), not in JSON

    @property
    def reliable(self) -> bool:
        return self.converged and not self.at_bound

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("boot")
        out["reliable"] = self.reliable
        return _finite_or_none(out)


def _finite_or_none(obj: Any) -> Any:
    """NaN/inf as null, so the JSON is standard."""
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_or_none(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer | np.bool_):
        return obj.item()
    return obj


def check_points(names: list[str], columns: dict[str, np.ndarray], n_params: int) -> None:
    """Raise one clear ValueError for inputs no power law can be fitted to."""
    for col, values in columns.items():
        for name, value in zip(names, values, strict=True):
            if not math.isfinite(value):
                raise ValueError(f"run/row {name!r}: {col} is {value}; drop the row or fill it in")
            if value <= 0:
                raise ValueError(
                    f"run/row {name!r}: {col} = {value} is not positive; power laws need x, L > 0"
                )
    if len(names) < n_params + 1:
        raise ValueError(
            f"{len(names)} point(s) for a law with {n_params} parameters: need at least "
            f"{n_params + 1}; add runs or fix fewer parameters (--irreducible no)"
        )
    for col, values in columns.items():
        if np.ptp(np.log(values)) < 1e-12:
            raise ValueError(
                f"{col} is constant ({values[0]:g}) over all {len(names)} points: nothing to fit"
            )
