"""Checkpoint folders: `checkpoints/step-NNNNNNNN/`, written aside then renamed, `COMPLETE` marker, `latest`.

    checkpoints/.tmp-step-00000100/   DeepSpeed writes here (every rank), plus rank-NNNNN.pt (cursor, RNG)
    checkpoints/step-00000100/        after rank 0 wrote config.yaml and COMPLETE, then renamed the folder
    checkpoints/latest                text: the newest complete folder's name (atomically replaced)
    checkpoints/branch-00000300/      a cooldown branch's final weights (scaling.train.branches): complete and
                                      loadable (`load_frozen_model(folder)`), never resumed from

A folder without COMPLETE, or any `.tmp-*`, is a partial save (a kill mid-write) and is never resumed from.
`load_frozen_model` rebuilds the plain model from any complete folder in one process, no distributed start-up.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Any

import torch
import yaml

from scaling.atomic import read_json, write_json_atomic, write_text_atomic
from scaling.config import dump_yaml, from_dict

log = logging.getLogger(__name__)
MARKER = "COMPLETE"
LATEST = "latest"
TMP_PREFIX = ".tmp-"
_NAME = re.compile(r"^step-(\d{8})$")


def step_name(step: int) -> str:
    return f"step-{step:08d}"


def complete_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every complete checkpoint under `root`, oldest first."""
    if not root.is_dir():
        return []
    out = []
    for path in root.iterdir():
        match = _NAME.match(path.name)
        if match and path.is_dir() and (path / MARKER).is_file():
            out.append((int(match.group(1)), path))
    return sorted(out)


def find_resume(root: Path) -> Path | None:
    """The newest complete checkpoint (the `latest` pointer is only a hint a reader may not trust)."""
    found = complete_checkpoints(root)
    return found[-1][1] if found else None


def remove_partial(root: Path) -> None:
    """Delete folders a killed save left behind (rank 0, before anyone saves)."""
    if root.is_dir():
        for path in root.iterdir():
            if path.name.startswith(TMP_PREFIX) and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)


def prune(root: Path, *, keep_last: int, keep_steps: set[int]) -> list[Path]:
    """Remove periodic checkpoints beyond the newest `keep_last`; budget steps are kept forever."""
    periodic = [(s, p) for s, p in complete_checkpoints(root) if s not in keep_steps]
    doomed = [p for _, p in periodic[:-keep_last]] if len(periodic) > keep_last else []
    for path in doomed:
        (path / MARKER).unlink(missing_ok=True)  # no longer complete, even if the removal is cut short
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def write_rank_state(folder: Path, rank: int, state: dict[str, Any]) -> None:
    torch.save(state, folder / f"rank-{rank:05d}.pt")


def read_rank_state(folder: Path, rank: int) -> dict[str, Any]:
    path = folder / f"rank-{rank:05d}.pt"
    if not path.is_file():
        raise ValueError(f"{folder}: no state for rank {rank}; resume with the world size it was saved with")
    return torch.load(path, weights_only=False)


def finish(tmp: Path, final: Path, *, meta: dict[str, Any], cfg: Any, latest: bool = True) -> None:
    """Rank 0, after every rank wrote into `tmp`: config and marker (last), rename, `latest` pointer (unless
    `latest` is false: a cooldown branch's weights are no state of the run to resume)."""
    write_text_atomic(tmp / "config.yaml", dump_yaml(cfg))
    write_json_atomic(tmp / MARKER, meta)
    if final.exists():  # the same step saved again (e.g. after a resume): replace it whole
        shutil.rmtree(final)
    tmp.rename(final)
    if latest:
        write_text_atomic(final.parent / LATEST, final.name + "\n")


def read_meta(folder: Path) -> dict[str, Any]:
    return read_json(folder / MARKER)


def resolve_checkpoint(path: str | Path, step: int | None = None) -> Path:
    """A complete step folder from a run dir, a checkpoints dir or a step folder (newest, or `step`)."""
    path = Path(path)
    if (path / MARKER).is_file() and step is None:
        return path
    root = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    found = dict(complete_checkpoints(root))
    if not found:
        raise FileNotFoundError(f"{path}: no complete checkpoint (folders step-NNNNNNNN with {MARKER})")
    if step is None:
        return found[max(found)]
    if step not in found:
        raise FileNotFoundError(f"{path}: no complete checkpoint at step {step} (have {sorted(found)})")
    return found[step]


def load_frozen_model(run_dir_or_ckpt: str | Path, step: int | None = None) -> tuple[Any, Any]:
    """(PointModel in eval mode with fp32 weights, TrainConfig) from any ZeRO stage, in this process only."""
    from scaling.model import build_model
    from scaling.objectives import build_objective
    from scaling.train.config import TrainConfig

    folder = resolve_checkpoint(run_dir_or_ckpt, step)
    source = str(folder / "config.yaml")
    cfg = from_dict(TrainConfig, yaml.safe_load((folder / "config.yaml").read_text()), source=source)
    objective = build_objective(cfg.objective)
    model = build_model(cfg.model, out_dim=objective.out_dim, **objective.model_options())
    if int(read_meta(folder).get("zero_stage", 0)) == 0:
        state = torch.load(folder / "mp_rank_00_model_states.pt", weights_only=False)["module"]
    else:
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        state = get_fp32_state_dict_from_zero_checkpoint(str(folder.parent), tag=folder.name)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval(), cfg
