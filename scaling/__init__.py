"""Pretraining side of the toolkit: event data, the FM4NPP model family, objectives and the trainer.

`scaling` knows nothing of Slurm or of analysis: the launcher talks to it through a run's config file and
the `python -m scaling.train` entry point; analysis reads the run directories it writes.
"""

__version__ = "0.1.0"
