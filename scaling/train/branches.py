"""Cooldown branches of a WSD run: one run gives a compute curve per model without retraining (Hägele et al.
2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed Training Durations").

A `wsd` run holds the peak LR through its stable phase, so its state at a stable step s can be cooled down to
a shorter budget. At each `schedule.cooldown_branches` fraction f the trainer, at s = round(f x budget.steps):
  1. makes sure a complete checkpoint at s exists (the ordinary `checkpoints/step-NNNNNNNN/`);
  2. trains d = ceil(decay_fraction x s) more steps with the 1-sqrt cooldown from the peak to
     `min_lr_ratio` (the main run's shape), on the events that follow in the stream;
  3. validates exactly as the trainer does and appends a row to `branches.jsonl`: branch_from s, steps s + d,
     events, tokens and FLOPs consumed up to s + d, the validation figures, wall_s up to s + d;
  4. keeps the branch's weights in `checkpoints/branch-NNNNNNNN/` (s in the name; complete and loadable with
     `load_frozen_model(folder)`, but not a `step-*` folder, so never resumed from or pruned);
  5. restores the run's state from the checkpoint at s (weights, optimizer, data cursor, RNG, totals) and goes
     on: the run is bit for bit the run without branches.
A kill or preemption inside a branch leaves no row: the resumed run (from the checkpoint at s, the newest)
trains that branch again first; a branch with a row is never redone.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from scaling.atomic import finite_json, write_text_atomic
from scaling.train import checkpoint as ckpt
from scaling.train import ledger
from scaling.train.config import cooldown_branch_steps, cooldown_length
from scaling.train.progress import progress_line
from scaling.train.schedule import lr_factor

log = logging.getLogger(__name__)
BRANCHES = "branches.jsonl"
SOURCE = "cooldown_branch"  # the `source` of a branch's point in the analysis (analysis.runs)


def branch_name(step: int) -> str:
    """Folder of the weights of the branch from `step` (not `step-*`: no resumable checkpoint)."""
    return f"branch-{step:08d}"


def cooldown_factor(j: int, length: int, min_ratio: float) -> float:
    """LR multiplier of a branch's j-th step (0-based): a wsd schedule of `length` steps that are all
    cooldown, i.e. the main run's 1-sqrt shape from the peak down towards `min_ratio`."""
    return lr_factor(
        j, warmup_steps=0, total_steps=length, min_ratio=min_ratio, name="wsd", decay_fraction=1.0
    )


def read_branches(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of `branches.jsonl` (a torn line, from a kill mid-write elsewhere, is skipped)."""
    path = Path(run_dir) / BRANCHES
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "branch_from" in row:
            rows.append(row)
    return rows


def record_branch(run_dir: Path, row: dict[str, Any]) -> None:
    """Add `row` to branches.jsonl, replacing one from the same step; the file is rewritten atomically."""
    rows = [r for r in read_branches(run_dir) if r["branch_from"] != row["branch_from"]] + [row]
    rows.sort(key=lambda r: r["branch_from"])
    text = "".join(json.dumps(finite_json(r), allow_nan=False) + "\n" for r in rows)
    write_text_atomic(Path(run_dir) / BRANCHES, text)


class CooldownBranches:
    """The trainer's branch hook: `run_due()` after each step (and once before the loop, for a branch that a
    kill cut short). Every rank calls it; rank 0 reads and writes the files."""

    def __init__(self, trainer: Any) -> None:  # the Trainer (scaling/train/trainer.py), which owns this
        self.t = trainer
        self.points = cooldown_branch_steps(trainer.cfg)
        self.seconds = 0.0  # wall time spent in branches: not the main run's

    def run_due(self, clocks: tuple[dict[str, Any], ...] = ()) -> bool:
        """Train the branch from the current step if one is due and not yet recorded. False when a stop
        signal cut it short (the caller preempts: the checkpoint at this step holds the run's state).
        `clocks` (dicts with "t", "t0") are moved on by the branch's duration, so rates exclude it."""
        step = self.t.step
        if step not in self.points or self._recorded(step):
            return True
        start = time.time()
        try:
            return self._branch(step)
        finally:
            spent = time.time() - start
            self.seconds += spent
            for clock in clocks:
                for key in ("t", "t0"):
                    if key in clock:
                        clock[key] += spent

    def _recorded(self, step: int) -> bool:
        t = self.t
        done = t.dist.is_main and any(int(r["branch_from"]) == step for r in read_branches(t.run_dir))
        return bool(t._sum([float(done)], torch.distributed.ReduceOp.MAX)[0])

    def _branch(self, s: int) -> bool:
        t, cfg = self.t, self.t.cfg
        folder = t.ckpt_root / ckpt.step_name(s)
        if not any(step == s for step, _ in ckpt.complete_checkpoints(t.ckpt_root)):
            if not t._save(s):
                log.error("cooldown branch from step %d skipped: its checkpoint could not be written", s)
                return True
            if t.dist.is_main:
                ledger.update_status(t.run_dir, last_step=s)
        d = cooldown_length(s, cfg.schedule.decay_fraction)
        tag = f"cooldown branch from step {s}"
        log.info("%s: %d steps of 1-sqrt decay to %g x the peak LR", tag, d, cfg.schedule.min_lr_ratio)
        base = t.totals
        tokens, events, flops, bad_steps, bad_run = base.tokens, base.events, base.flops, 0, 0
        start = clock = time.time()
        window = 0
        aborted = None
        for j in range(d):
            out = t._train_step(cooldown_factor(j, d, cfg.schedule.min_lr_ratio))
            tokens, events, window = tokens + out["tokens"], events + out["events"], window + out["tokens"]
            if out["bad"]:
                bad_steps, bad_run = bad_steps + 1, bad_run + 1
            else:
                bad_run, flops = 0, flops + t._step_flops(out)
            if t._sum([float(t.stop.requested)], torch.distributed.ReduceOp.MAX)[0]:
                log.warning("%s stopped by signal %s at step %d/%d: redone on resume", tag, t.stop.signum,
                            s + j + 1, s + d)  # fmt: skip
                return False
            if (j + 1) % cfg.logging.progress_interval == 0 or j + 1 == d:
                now = time.time()
                tps = window / max(now - clock, 1e-9)
                eta = (now - start) / (j + 1) * (d - j - 1)
                log.info("%s: %s", tag, progress_line(s + j + 1, s + d, out["loss"], tps, eta))
                clock, window = now, 0
            if bad_run >= cfg.budget.max_bad_steps:
                aborted = f"{bad_run} non-finite steps in a row (last at branch step {s + j + 1})"
                log.error("%s abandoned: %s", tag, aborted)
                break
        row = {"branch_from": s, "steps": s + d, "cooldown_steps": d, "events": events, "tokens": tokens,
               "flops": flops, "params_total": t.params["total"],
               "params_non_embedding": t.params["non_embedding"]}  # fmt: skip
        if aborted is None:
            row.update(t._validate())
        else:
            row.update(val_loss=None, aborted=aborted)
        row.update(bad_steps=bad_steps, wall_s=base.wall_s + time.time() - start, source=SOURCE)
        row["checkpoint"] = self._save_weights(s, row)
        if t.dist.is_main:
            record_branch(t.run_dir, row)
            log.info("%s: val_loss %s, val_loss_ratio %s at step %d", tag, row.get("val_loss"),
                     row.get("val_loss_ratio"), s + d)  # fmt: skip
        restored = t._resume(folder)
        if restored != s:
            raise RuntimeError(f"{folder}: restored step {restored}, expected {s}")
        log.info("main run restored from %s after the %s", folder, tag)
        return True

    def _save_weights(self, s: int, row: dict[str, Any]) -> str | None:
        """The branch's final state into checkpoints/branch-<s>/ (written aside, then renamed; no `latest`).
        Returns the folder relative to the run dir, or None when it could not be written (logged)."""
        t = self.t
        name = branch_name(s)
        tmp, final = t.ckpt_root / f"{ckpt.TMP_PREFIX}{name}", t.ckpt_root / name
        ok = 1.0
        try:
            t.save_engine_to(tmp)
        except (OSError, RuntimeError) as err:
            ok = 0.0
            log.error("cooldown branch from step %d: weights not saved (%s)", s, err)
        ok = t._sum([ok], torch.distributed.ReduceOp.MIN)[0]
        if t.dist.is_main:
            try:
                if ok:
                    meta = {"step": row["steps"], "branch_from": s, "world_size": t.dist.world_size,
                            "zero_stage": t.cfg.deepspeed.zero_stage}  # fmt: skip
                    ckpt.finish(tmp, final, meta=meta, cfg=t.cfg, latest=False)
            except OSError as err:
                ok = 0.0
                log.error("cooldown branch from step %d: weights not saved (%s)", s, err)
            if not ok:
                shutil.rmtree(tmp, ignore_errors=True)
        t._barrier()
        return str(final.relative_to(t.run_dir)) if ok else None
