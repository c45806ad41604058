"""The regimes on a backbone pretrained by the real trainer: finetune trains the checkpoint's weights in their
muP groups at a lower learning rate, scratch starts the same network afresh, frozen reads the same features
through the cache; bad input exits 2 with one line; and what the adapter reads from which layer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from analysis.downstream.regimes import FullNetwork, RankedRawSource, build_regime_model
from analysis.downstream.run import iter_split, load_splits
from analysis.downstream.sources import BackboneSource
from analysis.downstream.train import (
    AdapterBudgetConfig,
    AdapterOptimizerConfig,
    AdapterScheduleConfig,
    DownstreamConfig,
    param_groups,
    train_adapter,
)
from scaling.data.shards import read_manifest
from scaling.train.checkpoint import load_frozen_model
from scaling.train.dist import free_port

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
torch.set_num_threads(1)
# These runs say they are rank 0 of 1 on a port free now, whatever else trains on this machine.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(REPO),
       "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
       "MASTER_PORT": str(free_port())}  # fmt: skip
PRETRAIN_STEPS = 60


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=600)  # fmt: skip


@pytest.fixture(scope="module")
def backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer width-32 backbone pretrained with k-NNN for a few dozen steps on simulated small events."""
    root = tmp_path_factory.mktemp("regimes")
    sim = "{enabled: true, train_events: 96, val_events: 16, profile: small, shard_events: 48}"
    res = _run("scaling.train", "scaling/train/configs/tiny_cpu.yaml", f"data.dataset_dir={root / 'data'}",
               f"data.simulate_if_missing={sim}", f"budget.steps={PRETRAIN_STEPS}",
               "budget.micro_batch_events=4", f"checkpoint.interval={PRETRAIN_STEPS}",
               f"budget.val_interval={PRETRAIN_STEPS}", "logging.interval=20",
               "--run-dir", str(root / "bb"))  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    return root / "bb"


def _cfg(backbone: Path, **kw: object) -> DownstreamConfig:
    from analysis.downstream.adapters import AdapterConfig

    base = {
        "backbone": str(backbone), "dataset": str(backbone.parent / "data"), "task": "noise",
        "eval_split": "val", "n_train_events": 8, "n_eval_events": 4, "cache_dir": "",
        "adapter": AdapterConfig(d_proj=16, n_heads=2, depth=0, mlp_hidden=16),
        "optimizer": AdapterOptimizerConfig(lr=1e-2), "schedule": AdapterScheduleConfig(warmup_steps=1),
        "budget": AdapterBudgetConfig(steps=3, batch_events=4),
    }  # fmt: skip
    return DownstreamConfig(**{**base, **kw})


def _backbone_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if not k.startswith("head.")}


def test_finetune_trains_the_checkpoint_in_its_mup_groups_at_a_lower_lr(backbone: Path) -> None:
    cfg = _cfg(backbone, regime="finetune", backbone_lr_ratio=0.1)
    train, _, source = load_splits(cfg)
    assert isinstance(source, RankedRawSource) and source.width == 5
    model, stats = build_regime_model(cfg, source.width, train, source)
    assert isinstance(model, FullNetwork) and stats["regime"] == "finetune"
    ckpt, _ = load_frozen_model(backbone)
    start = _backbone_state(model.backbone)
    for k, v in _backbone_state(ckpt).items():
        torch.testing.assert_close(start[k], v)  # starts from the pretrained weights
    groups = param_groups(model, cfg)
    names = {g["name"]: g for g in groups}
    assert names["adapter"]["lr"] == pytest.approx(1e-2)
    bb_groups = [g for n, g in names.items() if n.startswith("backbone.")]
    assert bb_groups and all(g["lr"] == pytest.approx(1e-3 * g["lr_mult"]) for g in bb_groups)
    n_opt = sum(p.numel() for g in groups for p in g["params"])
    assert n_opt == sum(p.numel() for p in model.parameters() if p.requires_grad)  # pretraining head out
    train_adapter(model, train, cfg)
    after = _backbone_state(model.backbone)
    assert any(not torch.equal(after[k], start[k]) for k in start)  # the backbone moved


def test_scratch_is_the_same_network_freshly_initialised(backbone: Path) -> None:
    cfg = _cfg(backbone, regime="scratch")
    train, _, source = load_splits(cfg)
    model, _ = build_regime_model(cfg, source.width, train, source)
    ckpt, _ = load_frozen_model(backbone)
    fresh, pre = _backbone_state(model.backbone), _backbone_state(ckpt)
    assert fresh.keys() == pre.keys() and all(fresh[k].shape == pre[k].shape for k in pre)
    assert not torch.equal(fresh["layers.0.mixer.out_proj.weight"], pre["layers.0.mixer.out_proj.weight"])


def test_trainable_path_reads_what_the_frozen_cache_reads(backbone: Path) -> None:
    """FullNetwork's sort-run-scatter on padded batches gives the frozen source's packed features."""
    cfg = _cfg(backbone, regime="finetune", layers="prenorm")
    train, _, source = load_splits(cfg)
    model, _ = build_regime_model(cfg, source.width, train, source)
    frozen = load_splits(_cfg(backbone, layers="prenorm"))[0]
    from analysis.downstream.regimes import initial_features

    for got, want in zip(initial_features(model, train, 4), frozen.features, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-3)


def _cli(run_dir: Path, backbone: Path, *keys: str) -> subprocess.CompletedProcess[str]:
    base = (f"backbone={backbone}", f"dataset={backbone.parent / 'data'}", "eval_split=val",
            "task=noise", "n_train_events=4", "n_eval_events=2", "budget.steps=1", "adapter.depth=0",
            "cache_dir=")  # fmt: skip
    return _run("analysis.downstream", "--run-dir", str(run_dir), *base, *keys)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (("regime=finetune", "expect_width=64"), "backbone width is 32, the downstream config expects 64"),
        (("regime=finetune", "expect_objective=next_token"), "pretrained with objective 'knnn'"),
        (("layers=0,3",), "layers='0,3': the backbone has 2 layers, so index 3 does not exist"),
        (("regime=scratch", "layers=5"), "index 5 does not exist; use indices 0..2"),
        (("n_train_events=500",), "n_train_events=500 exceeds the 96 events of split 'train'"),
    ],
)
def test_bad_input_exits_2_with_one_line_naming_key_and_fix(
    backbone: Path, tmp_path: Path, keys: tuple[str, ...], message: str
) -> None:
    res = _cli(tmp_path / "r", backbone, *keys)
    last = res.stderr.strip().splitlines()[-1]
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert last.startswith("error: ") and message in last


def test_a_regime_that_needs_a_backbone_given_none_exits_2(backbone: Path, tmp_path: Path) -> None:
    res = _cli(tmp_path / "r", backbone, "backbone=adapter_only", "regime=finetune")
    last = res.stderr.strip().splitlines()[-1]
    assert res.returncode == 2 and "regime=finetune needs a backbone but backbone=adapter_only" in last
    assert "set backbone=<pretraining run dir> or regime=adapter_only" in last


def _eta_probe_rms(source: object, events: list, stats: dict) -> float:
    """Held-out RMS of a ridge probe from features to each point's normalised eta (inputs' column 3)."""
    from analysis.downstream.sources import RawSource

    raw = RawSource(stats)
    feats = [f for i in range(0, len(events), 16) for f in source.extract(events[i : i + 16])]
    target = [raw.extract([ev])[0][:, 3] for ev in events]
    cut = len(events) * 3 // 4
    x, y = np.concatenate(feats[:cut]).astype(np.float64), np.concatenate(target[:cut])
    xt, yt = np.concatenate(feats[cut:]).astype(np.float64), np.concatenate(target[cut:])
    mu, sd = x.mean(0), x.std(0) + 1e-12
    a, at = np.c_[(x - mu) / sd, np.ones(len(x))], np.c_[(xt - mu) / sd, np.ones(len(xt))]
    w = np.linalg.solve(a.T @ a + 1e-3 * np.eye(a.shape[1]), a.T @ y)
    return float(np.sqrt(np.mean((at @ w - yt) ** 2)))


def test_prenorm_features_recover_eta_better_than_last(backbone: Path) -> None:
    """A linear probe reads eta from the residual stream before the final RMSNorm better than after it.

    Measured on this fixture (2 layers, width 32, 60 steps): held-out RMS 0.0126 before the norm, 0.0153 after
    it, ~3e-8 from the raw inputs. The gap is 1.2x here, not the 10x of the width-64 quickstart backbone
    (0.0066 vs 0.062): on this backbone the per-point RMS the norm divides by varies only +-6 % (5th-95th
    percentile) and follows the energy weakly (Spearman 0.36), so the norm has little to distort. What is
    asserted is the direction, which the cause predicts; the size is the backbone's."""
    data = str(backbone.parent / "data")
    stats = read_manifest(data)["stats"]
    events = [ev for _, ev in zip(range(64), iter_split(data, "train"), strict=False)]
    last = _eta_probe_rms(BackboneSource.load(backbone, None, stats), events, stats)
    pre = _eta_probe_rms(BackboneSource.load(backbone, None, stats, layers="prenorm"), events, stats)
    assert pre < last, (pre, last)
