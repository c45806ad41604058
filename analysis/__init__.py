"""What is done with pretrained runs: scaling-law fits and reports from what the runs wrote (run directories
or CSV tables), linear probes of their frozen backbones (`probe/`), and the downstream study (`downstream/`),
which trains adapters on those backbones as runs of its own (`python -m analysis.downstream`, launched as a
sweep like pretraining). It reads pretraining runs and never alters their checkpoints (a finetuned backbone is
a copy in the downstream run; the probes add a probe.json beside them).

    python -m analysis.fit runs/<sweep>/ --law model|data|compute|joint [--json FILE] [--out DIR]
    python -m analysis.mup_transfer runs/lr_transfer/ --out DIR
    python -m analysis.report runs/<sweep>/ --out DIR

Modules: `runs` (run directories and tables into records), `laws` (each law one registered definition: the
points it takes, its fit and its figure; and the batched fitting cores), `bootstrap` (resampling runs,
intervals, goodness of fit), `frontier` (the compute frontier), `fit` (fit a law by name with intervals, CLI),
`mup_transfer` (learning-rate transfer across widths), `plots`, `report`, `result`; `probe/` and
`downstream/` as above.
"""
