"""The `Trainer`: DeepSpeed engine, data, resume, and the step loop (step -> log -> validate -> save).

`Trainer(cfg, run_dir, dist).train()` returns the exit code (0 done, 3 preempted) or raises; `run` in
scaling/train/entry.py turns what it raises into an exit code and status.json. Also here: the counters a
checkpoint carries (`Totals`), the RNG states it saves, and which checkpoint a start resumes from and how.
"""

from __future__ import annotations

import errno
import gc
import logging
import math
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scaling.atomic import write_json_atomic, write_json_if_changed, write_text_atomic
from scaling.config import ConfigError, dump_yaml
from scaling.data.loader import EventStream
from scaling.inputs.batch import PackedBatch
from scaling.model import build_model, count_parameters
from scaling.model.flops import flops_per_token
from scaling.model.mamba2 import resolve_impl
from scaling.objectives import build_objective
from scaling.train import board, ledger
from scaling.train import checkpoint as ckpt
from scaling.train.batches import BatchSource, build_normalizer, fit_statistics, validation_batches
from scaling.train.branches import CooldownBranches
from scaling.train.config import TrainConfig, accumulation_steps, budget_checkpoint_steps
from scaling.train.data_setup import ensure_dataset
from scaling.train.deepspeed_config import build_deepspeed_config, use_bf16
from scaling.train.dist import DistEnv
from scaling.train.exits import EXIT_OK, EXIT_PREEMPTED, RunFailed
from scaling.train.param_groups import build_param_groups
from scaling.train.progress import progress_line
from scaling.train.schedule import apply_lr, group_lrs, lr_factor
from scaling.train.signals import StopFlag
from scaling.train.universal import UNIVERSAL, has_universal, resize_rank_state
from scaling.train.validation import (
    metric_sums,
    ratio_summary,
    validation_means,
    validation_row,
    validation_sums,
)

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class Totals:
    """Cumulative counters saved in every checkpoint (so a resumed run continues them)."""

    events: int = 0
    tokens: int = 0
    flops: float = 0.0
    wall_s: float = 0.0
    bad_steps: int = 0
    budget_checkpoints: list[dict[str, Any]] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    val_ratios: list[float] = field(default_factory=list)  # val_loss / the layer lookup's, per validation


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def write_run_info(cfg: TrainConfig, run_dir: Path, dist: DistEnv, device_name: str) -> None:
    """Resolved config, code version and environment, before step 0 (rank 0)."""
    write_text_atomic(run_dir / "config.yaml", dump_yaml(cfg))
    write_json_atomic(run_dir / "environment.json", ledger.environment_info(dist.world_size, device_name))


def plan_resume(root: Path, dist: DistEnv, zero_stage: int, run_dir: Path) -> tuple[Path | None, bool]:
    """(newest complete checkpoint or None, whether it loads through its universal copy).

    ZeRO partitions are per rank: another world size (or stage) needs the universal copy, except between
    stage-0 checkpoints, which hold the whole optimizer state in one file."""
    folder = ckpt.find_resume(root)
    if folder is None:
        return None, False
    meta = ckpt.read_meta(folder)
    saved, saved_stage = int(meta.get("world_size", dist.world_size)), int(meta.get("zero_stage", zero_stage))
    if saved_stage == zero_stage and (saved == dist.world_size or zero_stage == 0):
        return folder, False
    if zero_stage > 0 and saved_stage > 0 and has_universal(folder):
        return folder, True
    raise RunFailed(
        f"{folder}: saved with world size {saved} (ZeRO stage {saved_stage}), resumed with "
        f"{dist.world_size} (ZeRO stage {zero_stage}); convert it once with `python -m "
        f"scaling.train.universal {run_dir}` and resume, or resume with {saved} processes and that stage"
    )


def setup_logging(rank: int) -> None:
    level = logging.INFO if rank == 0 else logging.WARNING
    logging.basicConfig(level=level, stream=sys.stderr, format=f"[rank {rank}] %(levelname)s %(message)s")
    os.environ.setdefault("DS_ACCELERATOR", "cpu" if not torch.cuda.is_available() else "cuda")


class Trainer:
    """One rank of one run. `train()` returns the exit code (0 done, 3 preempted) or raises."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, dist: DistEnv) -> None:
        self.cfg, self.run_dir, self.dist = cfg, run_dir, dist
        self.gas = accumulation_steps(cfg, dist.world_size)  # ConfigError (exit 2) before any start-up
        try:  # model.impl=mamba_ssm where no CUDA / mamba_ssm: known only on this machine, still exit 2
            resolve_impl(cfg.model)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        board.check_available(cfg.logging.tensorboard)
        self.budget_steps = budget_checkpoint_steps(cfg)
        self.ckpt_root = run_dir / "checkpoints"
        self.totals, self.step = Totals(), 0
        self.stop = StopFlag()
        self.save_error = "see the log of the rank that failed"
        self.last_val: dict[str, Any] = {}
        self.branches = CooldownBranches(self)  # wsd cooldown branches (schedule.cooldown_branches)

    # ------------------------------------------------------------------ set-up
    def _start(self) -> None:
        import deepspeed

        setup_logging(self.dist.rank)
        self.dist.export(os.environ)
        on_gpu = torch.cuda.is_available()
        if on_gpu:
            torch.cuda.set_device(self.dist.local_rank)
        self.device = torch.device("cuda", self.dist.local_rank) if on_gpu else torch.device("cpu")
        self.device_name = torch.cuda.get_device_name(self.device) if on_gpu else "cpu"
        self.bf16 = use_bf16(self.cfg, on_gpu)
        # Imported before the group exists: its functions take `group=group.WORLD` as a default argument,
        # which would otherwise hold the default group (and its threads) past destroy_process_group.
        import torch.distributed.nn as _dist_nn  # noqa: F401

        deepspeed.init_distributed(dist_backend="nccl" if on_gpu else "gloo", auto_mpi_discovery=False)
        if self.dist.is_main:
            ensure_dataset(self.cfg.data)
            write_run_info(self.cfg, self.run_dir, self.dist, self.device_name)
            ckpt.remove_partial(self.ckpt_root)
        self._barrier()
        seed_everything(self.cfg.seed)
        self.objective = build_objective(self.cfg.objective)
        model = build_model(self.cfg.model, out_dim=self.objective.out_dim, **self.objective.model_options())
        self.params = count_parameters(model)
        groups = build_param_groups(
            model, self.cfg.model, self.cfg.optimizer.lr, self.cfg.optimizer.weight_decay
        )
        self.group_names = [g["name"] for g in groups]
        self.multipliers = [g["lr_mult"] for g in groups]
        self.resume_from, self.universal = plan_resume(
            self.ckpt_root, self.dist, self.cfg.deepspeed.zero_stage, self.run_dir
        )
        ds_cfg = build_deepspeed_config(self.cfg, world_size=self.dist.world_size, on_gpu=on_gpu)
        if self.universal:  # another world size: re-partition the per-parameter states on load
            ds_cfg["checkpoint"] = {"load_universal": True}
        self.engine, *_ = deepspeed.initialize(model=model, model_parameters=groups, config=ds_cfg)
        names = [g.get("name") for g in self.engine.optimizer.param_groups]
        if names != self.group_names:  # apply_lr writes the μP LRs by position
            raise RuntimeError(f"DeepSpeed reordered the parameter groups: {names} != {self.group_names}")
        try:
            self._build_data()
        except ValueError as err:  # a dataset that cannot serve this config (ShardError too): exit 2
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(f"data.dataset_dir={self.cfg.data.dataset_dir}: {err}") from None

    def _build_data(self) -> None:
        from scaling.data.shards import read_manifest

        data, dist = self.cfg.data, self.dist
        manifest = read_manifest(data.dataset_dir)
        for key, split in (("data.train_split", data.train_split), ("data.val_split", data.val_split)):
            if split not in manifest["splits"]:
                have = ", ".join(sorted(manifest["splits"]))
                raise ConfigError(
                    f"{key}={split}: {data.dataset_dir}/manifest.json has no such split (has {have}); "
                    f"set {key} to one of those"
                )
        stream = EventStream(data.dataset_dir, data.train_split, seed=self.cfg.seed, rank=dist.rank,
                             world_size=dist.world_size, fraction=data.fraction, shuffle=data.shuffle,
                             shuffle_buffer=data.shuffle_buffer, epochs=None,
                             skip_bad_events=data.skip_bad_events)  # fmt: skip
        normalizer = build_normalizer(data, manifest["stats"])
        self.objective.bind_stats(manifest["stats"])
        self.source = BatchSource(stream, normalizer=normalizer, objective=self.objective,
                                  serialization=self.cfg.serialization, seed=self.cfg.seed,
                                  micro_batch_events=self.cfg.budget.micro_batch_events,
                                  max_tokens=data.max_tokens)  # fmt: skip
        # Before any sample is made: targets use the scaling, weights the difficulty table.
        try:
            fitted = fit_statistics(data.dataset_dir, data.train_split, n_events=data.difficulty_events,
                                    source=self.source)  # fmt: skip
        except ValueError as err:
            raise ConfigError(f"data.difficulty_events={data.difficulty_events}: {err}") from None
        self.baselines = {n: self.objective.baseline_predictor(t) for n, t in fitted["baseline"].items()}
        if dist.is_main:
            for name in ("target_stats", "difficulty", "baseline"):
                if fitted[name] is not None:
                    write_json_if_changed(self.run_dir / f"{name}.json", fitted[name])
        self.val = validation_batches(
            data.dataset_dir,
            data.val_split,
            n_events=data.val_events,
            rank=dist.rank,
            world_size=dist.world_size,
            source=self.source,
        )
        self.val_baseline = {name: self._evaluate(p) for name, p in self.baselines.items()}

    def _resume(self, folder: Path | None = None) -> int | None:
        """Load the newest complete checkpoint at start-up, or `folder` (a cooldown branch returning)."""
        folder = folder or self.resume_from
        if folder is None:
            return None
        universal = self.universal and folder == self.resume_from
        meta = ckpt.read_meta(folder)
        # ZeRO-3 module states hold empty placeholders; the weights come from the optimizer partitions.
        skip = (lambda src, dst: None) if self.cfg.deepspeed.zero_stage == 3 else None
        load_dir, tag = (folder, UNIVERSAL) if universal else (self.ckpt_root, folder.name)
        self.engine.load_checkpoint(
            str(load_dir), tag=tag, load_lr_scheduler_states=False, custom_load_fn=skip
        )
        saved = int(meta.get("world_size", self.dist.world_size))
        if saved == self.dist.world_size:
            state = ckpt.read_rank_state(folder, self.dist.rank)
        else:
            states = [ckpt.read_rank_state(folder, k) for k in range(saved)]
            state = resize_rank_state(states, n_events=self.source.stream.selected.size,
                                      rank=self.dist.rank, world_size=self.dist.world_size)  # fmt: skip
            log.warning("world size %d -> %d: data position carried over by epoch progress", saved,
                        self.dist.world_size)  # fmt: skip
        self.source.load_state_dict(state["data"])
        set_rng_state(state["rng"])
        self.totals = Totals(**meta["totals"])
        log.info("resumed from %s%s", folder, " (universal)" if universal else "")
        return int(meta["step"])

    # ------------------------------------------------------------------ collectives
    def _barrier(self) -> None:
        torch.distributed.barrier()

    def _sum(self, values: list[float], op: Any = None) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t, op=op or torch.distributed.ReduceOp.SUM)
        return t.tolist()

    # ------------------------------------------------------------------ steps
    def _forward_loss(self, batch: PackedBatch) -> torch.Tensor:
        batch = batch.to(self.device)
        feats = batch.features.to(torch.bfloat16) if self.bf16 else batch.features  # [1, T, 4]
        extra = self.objective.model_inputs(batch)  # e.g. the MPM mask
        return self.objective.loss(self.engine(feats, batch.seq_idx, **extra), batch)

    def _train_step(self, factor: float | None = None) -> dict[str, Any]:
        """`gas` micro-batches then one optimizer step; a non-finite loss anywhere makes it a skipped step.
        The LR is the schedule's at this step, or `factor` x the peak (a cooldown branch)."""
        if factor is None:
            factor = lr_factor(
                self.step,
                warmup_steps=self.cfg.schedule.warmup_steps,
                total_steps=self.cfg.budget.steps,
                min_ratio=self.cfg.schedule.min_lr_ratio,
                name=self.cfg.schedule.name,
                decay_fraction=self.cfg.schedule.decay_fraction,
            )
        lrs = group_lrs(self.cfg.optimizer.lr, factor, self.multipliers)
        loss_sum, tokens, events, bad = 0.0, 0, 0, False
        for micro in range(self.gas):
            batch = self.source.next_batch()
            loss = self._forward_loss(batch)
            finite = self._sum([float(torch.isfinite(loss).item())], torch.distributed.ReduceOp.MIN)[0]
            if not finite:
                bad = True  # zero gradients instead; LR 0 below leaves the weights untouched
                loss = sum(p.sum() for p in self.engine.module.parameters()) * 0.0
            else:
                loss_sum += float(loss.detach())
            tokens, events = tokens + batch.n_tokens, events + batch.n_events
            if micro == self.gas - 1:
                apply_lr(self.engine.optimizer.param_groups, [0.0] * len(lrs) if bad else lrs)
            self.engine.backward(loss)
            own_norm = self._local_grad_norm() if micro == self.gas - 1 else None
            self.engine.step()
        grad_norm = self.engine.get_global_grad_norm()  # None without ZeRO: use our own
        grad_norm = float(grad_norm if grad_norm is not None else own_norm)
        bad = bad or not math.isfinite(grad_norm)
        total = self._sum([loss_sum, tokens, events, float(bad)])
        return {"loss": total[0] / (self.gas * self.dist.world_size), "tokens": int(total[1]),
                "events": int(total[2]), "bad": total[3] > 0, "grad_norm": grad_norm,
                "lr": dict(zip(self.group_names, lrs, strict=True))}  # fmt: skip

    def _local_grad_norm(self) -> float:
        """Global L2 norm of the unclipped gradients (ZeRO stage 0, where every rank holds all of them)."""
        if self.cfg.deepspeed.zero_stage != 0:
            return float("nan")
        grads = [
            p.grad.detach().float().norm() for p in self.engine.module.parameters() if p.grad is not None
        ]
        return float(torch.stack(grads).norm()) if grads else 0.0

    def _evaluate(self, predict: Any) -> dict[str, Any]:
        """Event-weighted mean loss and per-coordinate MSE of a table predictor (features -> [T, out_dim]) on
        the fixed held-out set, summed over ranks. Collective-free inside: only for table predictors."""
        sums = validation_sums(lambda b: predict(b.features), self.val, self.objective)
        return validation_means(self._sum(sums))

    def _validate(self) -> dict[str, Any]:
        """Event-weighted mean loss on the fixed held-out set and its ratios to the lookup baselines' losses
        on the same events (val_loss_ratio: the layer table; val_loss_ratio_layer_eta: the finer one; per
        coordinate: MSE ratios); every rank runs the same number of passes."""
        self.engine.eval()
        n_max = int(self._sum([len(self.val)], torch.distributed.ReduceOp.MAX)[0])
        n_c = len(self.objective.coordinates)
        total, n, cnt, sq = 0.0, 0, 0.0, torch.zeros(n_c, dtype=torch.float64)
        names = tuple(self.objective.metric_names)
        msum = [0.0] * len(names)
        with torch.no_grad():
            for i in range(n_max):
                if i < len(self.val):
                    batch = self.val[i].to(self.device)
                    pred = self._predict(batch)
                    total += float(self.objective.loss(pred, batch)) * batch.n_events
                    n += batch.n_events
                    s, c = self.objective.coordinate_errors(pred, batch.targets)
                    sq, cnt = sq + s.double().cpu(), cnt + float(c)
                    msum = metric_sums(self.objective, names, pred.float(), batch, msum)
                else:  # ZeRO-3 gathers weights collectively: keep the forward passes in step
                    self.engine(torch.zeros(1, 1, 4, device=self.device, dtype=torch.bfloat16 if self.bf16
                                            else torch.float32), None)  # fmt: skip
        self.engine.train()
        means = validation_means(self._sum([total, n, cnt, *sq.tolist(), *msum]), names)
        return validation_row(
            means["loss"], means["coord_mse"], self.val_baseline, self.objective.coordinates, means["metrics"]
        )

    def _predict(self, batch: PackedBatch) -> torch.Tensor:
        batch = batch.to(self.device)
        feats = batch.features.to(torch.bfloat16) if self.bf16 else batch.features  # [1, T, 4]
        extra = self.objective.model_inputs(batch)
        return self.engine(feats, batch.seq_idx, **extra).reshape(batch.n_tokens, -1).float()

    # ------------------------------------------------------------------ checkpoints
    def _weights_finite(self) -> bool:
        local = all(
            bool(torch.isfinite(getattr(p, "ds_tensor", p)).all()) for p in self.engine.module.parameters()
        )
        return bool(self._sum([float(local)], torch.distributed.ReduceOp.MIN)[0])

    def save_engine_to(self, tmp: Path) -> None:
        """DeepSpeed's state (weights, optimizer) into the fresh folder `tmp` below the checkpoint root, every
        rank; raises OSError / RuntimeError (torch.save's failed write) for the caller to report."""
        if self.dist.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        self._barrier()
        self.engine.save_checkpoint(str(self.ckpt_root), tag=tmp.name, save_latest=False)

    def _save(self, step: int) -> bool:
        """Every rank writes into .tmp-step-N; rank 0 adds config + COMPLETE, renames, sets `latest`.

        An OSError (disk full, permissions) on any rank removes the partial folder; older ones stay."""
        if not self._weights_finite():
            raise RunFailed(f"non-finite weights at step {step}: refusing to checkpoint them")
        name = ckpt.step_name(step)
        tmp = self.ckpt_root / f"{ckpt.TMP_PREFIX}{name}"
        ok, reason = 1.0, ""
        try:
            self.save_engine_to(tmp)
            ckpt.write_rank_state(tmp, self.dist.rank, {"data": self.source.state_dict(), "rng": rng_state()})
        except (OSError, RuntimeError) as err:  # torch.save reports a failed write as RuntimeError
            ok, reason = 0.0, f"checkpoint at step {step} not written ({err}); previous checkpoints kept"
            self.save_errno = getattr(err, "errno", None) or _full_disk_errno(self.ckpt_root)
        ok = self._sum([ok], torch.distributed.ReduceOp.MIN)[0]
        if self.dist.is_main:
            try:
                if ok:
                    meta = {
                        "step": step,
                        "world_size": self.dist.world_size,
                        "zero_stage": self.cfg.deepspeed.zero_stage,
                        "totals": vars(self.totals),
                    }
                    ckpt.finish(tmp, self.ckpt_root / name, meta=meta, cfg=self.cfg)
                    ckpt.prune(self.ckpt_root, keep_last=self.cfg.checkpoint.keep_last,
                               keep_steps=set(self.budget_steps))  # fmt: skip
            except OSError as err:
                ok, reason = 0.0, f"checkpoint at step {step} not finished ({err}); previous checkpoints kept"
            if not ok:
                shutil.rmtree(tmp, ignore_errors=True)
                self.save_error = reason or "a rank could not write its checkpoint files"
                log.error("%s", self.save_error)
                try:  # on a full disk this may fail too; the other ranks wait at the barrier below
                    ledger.update_status(self.run_dir, reason=reason or "checkpoint write failed on a rank")
                except OSError as err:
                    log.error("status.json not updated: %s", err)
        self._barrier()
        return bool(ok)

    # ------------------------------------------------------------------ the loop
    def train(self) -> int:
        self.stop.install()  # before start-up: a SIGUSR2 then must not kill the process (default action)
        metrics = None
        try:
            self._start()
            self.step = self._resume() or 0
            if self.dist.is_main:
                mirror = board.open_board(self.cfg.logging.tensorboard, self.run_dir, self.step)
                metrics = ledger.MetricsWriter(
                    self.run_dir / "metrics.jsonl", resume_step=self.step, mirror=mirror
                )
                ledger.update_status(
                    self.run_dir,
                    state="running",
                    last_step=self.step,
                    budget_steps=self.cfg.budget.steps,
                    reason=None,
                    exit_code=None,
                )
            return self._loop(metrics)
        finally:
            # Once preempted, a second SIGTERM arriving after the checkpoint (even during interpreter
            # shutdown, which resets handlers to the default) must not turn exit 3 into a kill.
            if self.stop.requested:
                self.stop.ignore_further()
            else:
                self.stop.restore()
            if metrics is not None:
                metrics.close()

    def close(self) -> None:
        """Release what `_start` set up, after `train` returned on every rank (done, preempted or stopped).

        A gloo group left to interpreter shutdown can abort the process (SIGABRT, "terminate called without
        an active exception"), turning a completed run's exit 0 into -6; its threads (gloo's loop and
        workers, rank 0's TCP store) end only when its last reference goes. The engine holds the groups and
        its gradient hooks sit on autograd's C++ nodes, which the garbage collector cannot see through, so
        `destroy` removes them first; DeepSpeed's destroy_process_group also drops its own references (its
        world group). Not after a crash: destroying the groups while other ranks still wait in a collective
        can hang."""
        from deepspeed import comm as ds_comm

        if getattr(self, "engine", None) is not None:
            self.engine.destroy()
            self.engine = None  # the last reference: the collection below frees it with the groups it held
        if torch.distributed.is_initialized():
            ds_comm.destroy_process_group()
        gc.collect()

    def _loop(self, metrics: ledger.MetricsWriter | None) -> int:
        cfg, start = self.cfg, time.time()
        wall0, window = self.totals.wall_s, {"t": time.time(), "tokens": 0}
        peak = ledger.peak_flops(self.device_name)
        progress = {"t": start, "t0": start, "tokens": 0, "step0": self.step, "peak": peak}
        bad_run = 0
        if not self.branches.run_due(clocks=(window, progress)):  # a branch a kill cut short: redo it first
            return self._preempt()
        while self.step < cfg.budget.steps:
            out = self._train_step()
            self.step += 1
            self.totals.wall_s = wall0 + time.time() - start - self.branches.seconds
            if out["bad"]:
                self.totals.bad_steps += 1
                bad_run += 1
            else:
                bad_run = 0
                self.totals.flops += self._step_flops(out)
            self.totals.events += out["events"]
            self.totals.tokens += out["tokens"]
            window["tokens"] += out["tokens"]
            progress["tokens"] += out["tokens"]
            abort = bad_run >= cfg.budget.max_bad_steps
            if metrics is not None and (
                self.step % cfg.logging.interval == 0 or self.step == cfg.budget.steps or abort
            ):
                self._log_train(metrics, out, window, peak)
            if metrics is not None and (
                self.step % cfg.logging.progress_interval == 0 or self.step == cfg.budget.steps
            ):
                self._log_progress(metrics, out["loss"], progress)
            if abort:
                raise RunFailed(f"{bad_run} non-finite steps in a row (last at step {self.step}); "
                                "lower optimizer.lr or check the data")  # fmt: skip
            self._after_step(metrics)
            if not self.branches.run_due(clocks=(window, progress)):  # stopped by a signal in a branch
                return self._preempt()
            stop = self._sum([float(self.stop.requested)], torch.distributed.ReduceOp.MAX)[0]
            if stop and self.step < cfg.budget.steps:
                return self._preempt()
        self._finish()
        return EXIT_OK

    def _step_flops(self, out: dict[str, Any]) -> float:
        """Training FLOPs of one optimizer step's tokens (at its mean sequence length)."""
        seq_len = max(1, out["tokens"] // max(out["events"], 1))
        head = self.objective.model_options()["head"]
        return flops_per_token(self.cfg.model, self.objective.out_dim, seq_len, head) * out["tokens"]

    def _log_train(self, metrics: ledger.MetricsWriter, out: dict, window: dict, peak: float | None) -> None:
        elapsed = max(time.time() - window["t"], 1e-9)
        tps = window["tokens"] / elapsed
        fpt = self.totals.flops / max(self.totals.tokens, 1)
        metrics.write({"kind": "train", "step": self.step, "events": self.totals.events,
                       "tokens": self.totals.tokens, "flops": self.totals.flops, "loss": out["loss"],
                       "lr": out["lr"], "grad_norm": out["grad_norm"], "tokens_per_s": tps,
                       "mfu": ledger.mfu(tps * fpt, peak, self.dist.world_size), "wall_s": self.totals.wall_s,
                       "bad_steps": self.totals.bad_steps, "skipped": out["bad"]})  # fmt: skip
        window.update(t=time.time(), tokens=0)

    def _log_progress(self, metrics: ledger.MetricsWriter, loss: float, progress: dict) -> None:
        """Every `logging.progress_interval` steps one line in the rank-0 log (stderr: the Slurm log),
        terminal or not; tokens/s and MFU since the previous line, ETA at this attempt's rate."""
        now = time.time()
        tps = progress["tokens"] / max(now - progress["t"], 1e-9)
        fpt = self.totals.flops / max(self.totals.tokens, 1)
        done = self.step - progress["step0"]
        eta = (now - progress["t0"]) / done * (self.cfg.budget.steps - self.step) if done > 0 else None
        val = metrics.last.get("val") or {}
        log.info(
            "%s",
            progress_line(
                self.step,
                self.cfg.budget.steps,
                loss,
                tps,
                eta,
                mfu=ledger.mfu(tps * fpt, progress["peak"], self.dist.world_size),
                val_loss_ratio=val.get("val_loss_ratio"),
            ),  # fmt: skip
        )
        progress.update(t=now, tokens=0)

    def _after_step(self, metrics: ledger.MetricsWriter | None) -> None:
        cfg, step = self.cfg, self.step
        is_budget = step in self.budget_steps
        if is_budget or (cfg.budget.val_interval and step % cfg.budget.val_interval == 0):
            row = self._validate()
            val, ratio = row["val_loss"], row.get("val_loss_ratio", float("nan"))
            self.totals.val_losses.append(val)
            self.totals.val_ratios.append(ratio)
            self.last_val = row
            if metrics is not None:
                metrics.write({"kind": "val", "step": step, "events": self.totals.events,
                               "tokens": self.totals.tokens, "flops": self.totals.flops, **row,
                               "wall_s": self.totals.wall_s})  # fmt: skip
            if is_budget:
                self.totals.budget_checkpoints.append({"fraction": self.budget_steps[step], "step": step,
                    "val_loss": val, "val_loss_ratio": ratio, "flops": self.totals.flops,
                    "tokens": self.totals.tokens})  # fmt: skip
        if is_budget or (cfg.checkpoint.interval and step % cfg.checkpoint.interval == 0):
            if self._save(step) and self.dist.is_main:
                ledger.update_status(self.run_dir, last_step=step)

    def _preempt(self) -> int:
        saved = any(s == self.step for s, _ in ckpt.complete_checkpoints(self.ckpt_root)) or self._save(
            self.step
        )
        if self.dist.is_main:
            ledger.update_status(
                self.run_dir,
                state="preempted",
                last_step=self.step,
                exit_code=EXIT_PREEMPTED,
                reason=f"signal {self.stop.signum}" + ("" if saved else "; checkpoint failed"),
            )
        return EXIT_PREEMPTED

    def _finish(self) -> None:
        steps = dict(ckpt.complete_checkpoints(self.ckpt_root))
        if self.step not in steps and not self._save(self.step):
            raise OSError(
                getattr(self, "save_errno", None) or errno.EIO,
                f"the final checkpoint (step {self.step}) could not be written: {self.save_error}",
            )
        if not self.dist.is_main:
            return
        vals = [v for v in self.totals.val_losses if math.isfinite(v)]
        t = self.totals
        summary = {
            "model": self.cfg.model.name,
            "objective": self.objective.name,
            "uses_labels": self.objective.uses_labels,  # supervised reference: not a pretraining result
            "width": self.cfg.model.width,
            "params_total": self.params["total"],
            "params_non_embedding": self.params["non_embedding"],
            "tokens": t.tokens,
            "events": t.events,
            "flops": t.flops,
            "steps": self.step,
            "final_val_loss": t.val_losses[-1] if t.val_losses else None,
            "best_val_loss": min(vals) if vals else None,
            **ratio_summary(t.val_ratios, self.last_val, self.val_baseline),
            "gpu_hours": t.wall_s / 3600 * self.dist.world_size if self.device.type == "cuda" else 0.0,
            "device": self.device_name,
            "world_size": self.dist.world_size,
            "wall_s": t.wall_s,
            "bad_steps": t.bad_steps,
            "budget_checkpoints": t.budget_checkpoints,
        }
        ledger.write_summary(self.run_dir, summary)
        ledger.update_status(
            self.run_dir, state="completed", last_step=self.step, exit_code=EXIT_OK, reason=None
        )


def _full_disk_errno(folder: Path, margin_bytes: int = 16 * 2**20) -> int | None:
    """ENOSPC when `folder`'s file system has (almost) no room left: torch.save reports a failed write as a
    RuntimeError without errno, and the caller says "disk full" only when it is."""
    try:
        return errno.ENOSPC if shutil.disk_usage(folder).free < margin_bytes else None
    except OSError:
        return None
