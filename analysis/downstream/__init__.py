"""Frozen-backbone downstream evaluation: adapters for track finding, particle ID and noise tagging, their
metrics, a feature cache per (checkpoint, split), the `python -m analysis.downstream` run entry point and the
report sections (FM4NPP Section 5: Figure 5, Tables 5-6).

Submodules: `config` (the run's config classes, torch-free, for the launcher), `metrics` (pure numpy),
`adapters` and `matching` (torch), `features`, `train`, `report`, `display`.
"""
