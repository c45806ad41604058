"""Pretraining: one run of a scaling study, from a resolved config to a run directory analysis can trust.

    python -m scaling.train CONFIG.yaml [a.b=c ...] --run-dir DIR      # one process per rank

    >>> from scaling.train import run, DistEnv, load_train_config
    >>> code = run(load_train_config("scaling/train/configs/tiny_cpu.yaml"), "runs/x", DistEnv.from_environ())

Exit codes: 0 completed, 1 crash, 2 config error, 3 preempted (checkpointed; requeue), 4 failed at run time.
`load_frozen_model(run_dir_or_checkpoint, step=None) -> (model, cfg)` needs no distributed start-up.
Names are imported on first use (scaling/lazy.py): `scaling.train.config` needs no torch.
"""

from scaling.lazy import lazy_exports

__all__ = ["EXIT_CONFIG", "EXIT_CRASH", "EXIT_FAILED", "EXIT_OK", "EXIT_PREEMPTED", "DistEnv",
           "TrainConfig", "load_frozen_model", "load_train_config", "run"]  # fmt: skip
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "load_frozen_model": "scaling.train.checkpoint",
        "TrainConfig": "scaling.train.config",
        "load_train_config": "scaling.train.config",
        "DistEnv": "scaling.train.dist",
        **dict.fromkeys(
            ("EXIT_CONFIG", "EXIT_CRASH", "EXIT_FAILED", "EXIT_OK", "EXIT_PREEMPTED"), "scaling.train.exits"
        ),
        "run": "scaling.train.entry",
    },
)
