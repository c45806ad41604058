"""Convert a checkpoint to DeepSpeed's universal format, so the run resumes with another number of processes.

    python -m scaling.train.universal RUN_DIR [--step N]      # newest complete checkpoint by default

ZeRO partitions the fp32 weights and the Adam moments by rank, so a ZeRO 1-3 checkpoint only loads into the
world size it was saved with. The universal form (`deepspeed.checkpoint.ds_to_universal`) stores them per
parameter (`universal/zero/<name>/{fp32,exp_avg,exp_avg_sq,step}.pt`), which any world size re-partitions on
load (DeepSpeed `checkpoint.load_universal`). It is written into `step-N/.tmp-universal`, renamed to
`step-N/universal` and then noted in the COMPLETE marker, so a kill mid-conversion leaves nothing half-made.
Stage 0 checkpoints hold the whole optimizer state in one file and need no conversion.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
from pathlib import Path
from typing import Any

from scaling.atomic import write_json_atomic
from scaling.data.loader import rank_piece
from scaling.train import checkpoint as ckpt

UNIVERSAL = "universal"
TMP_UNIVERSAL = f"{ckpt.TMP_PREFIX}{UNIVERSAL}"


def has_universal(folder: Path) -> bool:
    """Whether complete checkpoint `folder` carries a finished universal copy."""
    return bool(ckpt.read_meta(folder).get(UNIVERSAL)) and (folder / UNIVERSAL / "zero").is_dir()


def convert_checkpoint(path: str | Path, step: int | None = None) -> Path:
    """Write `<step folder>/universal` for the newest (or `step`) complete checkpoint; returns the folder."""
    from deepspeed.checkpoint.ds_to_universal import main as ds_to_universal

    folder = ckpt.resolve_checkpoint(path, step)
    meta = ckpt.read_meta(folder)
    if int(meta.get("zero_stage", 0)) == 0:
        raise ValueError(f"{folder}: a ZeRO stage 0 checkpoint resumes with any world size as it is")
    if has_universal(folder):
        return folder
    tmp = folder / TMP_UNIVERSAL
    shutil.rmtree(tmp, ignore_errors=True)
    args = argparse.Namespace(input_folder=str(folder), output_folder=str(tmp), num_extract_workers=1,
                              num_merge_workers=1, keep_temp_folder=False, strict=True,
                              inject_missing_state=True)  # fmt: skip
    with contextlib.redirect_stdout(sys.stderr):  # the converter prints its progress
        ds_to_universal(args)
    (folder / "latest_universal").unlink(missing_ok=True)  # its pointer names the temporary folder
    shutil.rmtree(folder / UNIVERSAL, ignore_errors=True)
    tmp.rename(folder / UNIVERSAL)
    write_json_atomic(folder / ckpt.MARKER, {**meta, UNIVERSAL: True})
    return folder


def resize_rank_state(
    states: list[dict[str, Any]], *, n_events: int, rank: int, world_size: int
) -> dict[str, Any]:
    """Data cursor and RNG for `rank` of `world_size` from the per-rank states of another world size.

    Each rank streams a contiguous piece of the epoch's event order (scaling.data.loader.rank_piece), so
    the exact order cannot continue under another split; the epoch progress (mean over the saved ranks of
    epoch + consumed / piece size) carries over, and the RNG streams are reused round-robin."""
    saved = len(states)
    progress = 0.0
    for k, state in enumerate(states):
        lo, hi = rank_piece(n_events, k, saved)
        progress += state["data"]["epoch"] + state["data"]["consumed"] / max(hi - lo, 1)
    progress /= saved
    lo, hi = rank_piece(n_events, rank, world_size)
    epoch, consumed = int(progress), int((progress - int(progress)) * (hi - lo))
    if consumed >= hi - lo:
        epoch, consumed = epoch + 1, 0
    source = states[rank % saved]
    data = {k: v for k, v in source["data"].items() if k not in ("rank", "world_size")}
    return {"data": {**data, "epoch": epoch, "consumed": consumed}, "rng": source["rng"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scaling.train.universal", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("path", help="run directory, its checkpoints folder, or one step-NNNNNNNN folder")
    parser.add_argument("--step", type=int, default=None, help="the checkpoint step (default: newest)")
    args = parser.parse_args(argv)
    try:
        folder = convert_checkpoint(args.path, args.step)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{folder / UNIVERSAL}: universal checkpoint written; resume with any number of processes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
