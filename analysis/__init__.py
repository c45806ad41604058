"""Analysis of scaling studies: reads what runs wrote (run directories or CSV tables), never a live process.

    python -m analysis.fit runs/<sweep>/ --law model|data|compute|joint [--json FILE] [--out DIR]
    python -m analysis.mup_transfer runs/lr_transfer/ --out DIR
    python -m analysis.report runs/<sweep>/ --out DIR

Modules: `runs` (run directories and tables into records), `laws` (each law one registered definition: the
points it takes, its fit and its figure; and the batched fitting cores), `bootstrap` (resampling runs,
intervals, goodness of fit), `frontier` (the compute frontier), `fit` (fit a law by name with intervals, CLI),
`mup_transfer` (learning-rate transfer across widths), `plots`, `report`, `synthetic` (sweeps with known laws,
for tests and demonstrations); `downstream/` holds the frozen-backbone evaluation.
"""
