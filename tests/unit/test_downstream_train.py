"""Adapter training loop, prediction and scoring on small in-memory labelled splits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from analysis.downstream.adapters import AdapterConfig
from analysis.downstream.features import LabelledSplit
from analysis.downstream.run import check_budget, check_labels, split_size
from analysis.downstream.train import (
    AdapterBudgetConfig,
    AdapterOptimizerConfig,
    AdapterScheduleConfig,
    DownstreamConfig,
    build_run_model,
    lr_at,
    make_batch,
    predict,
    score,
    train_adapter,
)
from scaling.config import ConfigError, load_config

torch.set_num_threads(1)


def _split(n_events: int, seed: int, width: int = 6, empty_event: bool = False) -> LabelledSplit:
    """Points whose features reveal their class (pid, noise) and their track (a per-track offset)."""
    rng = np.random.default_rng(seed)
    feats, tids, pids, noises, pts = [], [], [], [], []
    for e in range(n_events):
        n_tracks = int(rng.integers(2, 4))
        tid = np.repeat(np.arange(n_tracks), rng.integers(4, 8, n_tracks))
        if empty_event and e == 0:
            tid = np.full_like(tid, -1)
        n = tid.shape[0]
        pid = rng.integers(0, 5, n)
        f = rng.normal(scale=0.1, size=(n, width)).astype(np.float32)
        f[:, 0] += pid  # class signal
        centres = rng.normal(scale=3.0, size=(max(n_tracks, 1), width - 1))
        f[:, 1:] += centres[np.clip(tid, 0, None)]  # track signal
        feats.append(f)
        tids.append(tid)
        pids.append(pid.astype(np.int8))
        noises.append((pid == 4).astype(np.uint8))
        pts.append(rng.normal(size=(n, 4)).astype(np.float32))
    return LabelledSplit(feats, tids, pids, noises, pts, None, None, np.arange(n_events) + 100)


def _cfg(task: str, steps: int = 40, **adapter: object) -> DownstreamConfig:
    return DownstreamConfig(
        task=task,
        adapter=AdapterConfig(d_proj=16, mlp_hidden=32, n_queries=6, n_decoder_layers=2, **adapter),
        optimizer=AdapterOptimizerConfig(lr=3e-3),
        schedule=AdapterScheduleConfig(warmup_steps=5),
        budget=AdapterBudgetConfig(steps=steps, batch_events=4),
    )


def test_make_batch_pads_and_keeps_original_order() -> None:
    data = _split(3, 0)
    b = make_batch(data, [2, 0], "pid")
    n2 = data.features[2].shape[0]
    assert b.valid[0].sum() == n2
    assert torch.equal(b.labels[0, :n2], torch.from_numpy(data.pid[2].astype(np.int64)))
    assert (b.labels[~b.valid] == -100).all()


@pytest.mark.parametrize("loss", ["ce", "focal"])
def test_classifier_learns_and_scores(loss: str) -> None:
    cfg = _cfg("pid", steps=150, loss=loss, depth=0)
    train, test = _split(12, 1), _split(4, 2)
    model = build_run_model(cfg, 6)
    fit = train_adapter(model, train, cfg)
    assert fit["loss_last"] < fit["loss_first"] and fit["events_per_s"] > 0
    m = score(predict(model, test, cfg), test, cfg)
    assert m["accuracy"] > 0.6 and set(m["per_class"]) == {"other", "pion", "kaon", "proton", "electron"}


def test_tracking_trains_with_an_event_without_tracks() -> None:
    cfg = _cfg("tracking", steps=15, depth=0)
    train, test = _split(6, 3, empty_event=True), _split(3, 4, empty_event=True)
    model = build_run_model(cfg, 6)
    fit = train_adapter(model, train, cfg)
    assert np.isfinite(fit["loss_last"]) and fit["loss_last"] < fit["loss_first"]
    preds = predict(model, test, cfg)
    assert [p.shape for p in preds] == [t.shape for t in test.track_id]
    m = score(preds, test, cfg)
    assert m["n_events"] == 3 and m["n_events_without_tracks"] == 1
    assert 0.0 <= m["efficiency"] <= 1.0 and m["metric_s_per_1000_events"] > 0


def test_adapter_only_model_has_stem_and_same_head() -> None:
    cfg = _cfg("noise")
    frozen = build_run_model(DownstreamConfig(backbone="runs/x", task="noise", adapter=cfg.adapter), 64)
    only = build_run_model(DownstreamConfig(task="noise", stem_width=64, adapter=cfg.adapter), 4)
    head_params = sum(p.numel() for p in frozen.parameters())
    assert sum(p.numel() for p in only.head.head.parameters()) == head_params  # equal adapter size
    assert only.head.stem.in_features == 4


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="n_train_events=500 exceeds the 100 events of split 'train'"):
        check_budget(500, 100, "n_train_events", "train", "data/sim")
    unlabelled = _split(2, 5)
    unlabelled.track_id = [np.full_like(t, -1) for t in unlabelled.track_id]
    with pytest.raises(ValueError, match="carries no labels for task 'pid'"):
        check_labels(unlabelled, "pid", "pretrain", "data/sim")
    with pytest.raises(ValueError, match="no split 'test'"):
        split_size({"splits": {"train": {"n_events": 3}}}, "test", "data/sim")
    with pytest.raises(ValueError, match="task must be"):
        DownstreamConfig(task="vertexing")
    if not torch.cuda.is_available():
        from analysis.downstream.train import resolve_device

        with pytest.raises(ValueError, match="no CUDA device is visible"):
            resolve_device("cuda")
        assert resolve_device("auto").type == "cpu"
    with pytest.raises(ValueError, match="set_loss: unknown weight"):
        DownstreamConfig(set_loss={"mask": 1.0})


@pytest.mark.gpu
def test_tracking_trains_on_cuda() -> None:
    cfg = _cfg("tracking", steps=3, depth=0)
    cfg.device = "cuda"
    model = build_run_model(cfg, 6)
    fit = train_adapter(model, _split(4, 6), cfg)
    assert np.isfinite(fit["loss_last"])
    assert len(predict(model, _split(2, 7), cfg)) == 2


def test_downstream_status_merges_what_the_launcher_recorded(tmp_path) -> None:
    """A downstream run under the launcher keeps its job ids and attempts in status.json."""
    import json

    from analysis.downstream.run import _status

    (tmp_path / "status.json").write_text(
        json.dumps({"state": "submitted", "attempts": 2, "job_ids": ["41", "42"]})
    )
    _status(tmp_path, "running")
    _status(tmp_path, "failed", reason="bad split", exit_code=2)
    got = json.loads((tmp_path / "status.json").read_text())
    assert got["job_ids"] == ["41", "42"] and got["attempts"] == 2
    assert (got["state"], got["reason"], got["exit_code"]) == ("failed", "bad split", 2)
    (tmp_path / "status.json").write_text("{cut off")
    _status(tmp_path, "running")
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "running"


def test_adapter_training_logs_a_progress_line_every_interval(caplog: pytest.LogCaptureFixture) -> None:
    cfg = _cfg("noise", steps=25, depth=0)
    cfg.logging.progress_interval = 10
    with caplog.at_level("INFO", logger="analysis.downstream.train"):
        train_adapter(build_run_model(cfg, 6), _split(8, 3), cfg)
    lines = [r.getMessage() for r in caplog.records if "adapter step" in r.getMessage()]
    assert [line.split()[3] for line in lines] == ["10/25", "20/25", "25/25"], lines
    assert all(" events/s  eta " in line and line.startswith("noise adapter step") for line in lines)
    assert lines[-1].endswith("eta 0m00s")


def test_optimisation_keys_are_the_pretraining_spellings_and_old_ones_are_refused(tmp_path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(
        "optimizer: {lr: 2.0e-3}\nschedule: {warmup_steps: 10}\nbudget: {steps: 60, batch_events: 8}\n"
    )
    cfg = load_config(DownstreamConfig, path, ["logging.progress_interval=5", "optimizer.grad_clip=0"])
    assert (cfg.optimizer.lr, cfg.schedule.warmup_steps, cfg.budget.steps, cfg.budget.batch_events) == (
        2e-3, 10, 60, 8,
    )  # fmt: skip
    assert cfg.logging.progress_interval == 5 and cfg.optimizer.grad_clip == 0
    path.write_text("optim: {lr: 2.0e-3, steps: 60}\n")
    with pytest.raises(ConfigError) as err:
        load_config(DownstreamConfig, path)
    assert str(err.value) == f"{path}: 'optim.lr' is now spelled 'optimizer.lr'"
    for old, new in [("optim.steps", "budget.steps"), ("optim.batch_events", "budget.batch_events"),
                     ("optim.warmup_steps", "schedule.warmup_steps"),
                     ("optim.progress_interval", "logging.progress_interval")]:  # fmt: skip
        with pytest.raises(ConfigError, match=f"'{old}' is now spelled '{new}'$"):
            load_config(DownstreamConfig, None, [f"{old}=3"])
    with pytest.raises(ConfigError, match="unknown key 'optim'"):  # not a renamed key: the usual error
        load_config(DownstreamConfig, None, ["optim.momentum=0.9"])
    with pytest.raises(ConfigError, match="budget: steps: must be >= 1, got 0"):
        load_config(DownstreamConfig, None, ["budget.steps=0"])


def test_adapter_lr_follows_the_pretraining_schedules(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _cfg("pid", steps=100)  # warm-up 5
    # the default: linear warm-up, then cosine from the peak down to 10 % of it at the end of budget.steps
    for step in (0, 4, 5, 30, 99, 100, 150):
        frac = min(max(step - 5, 0) / 95, 1.0)
        want = (step + 1) / 5 if step < 5 else 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))
        assert lr_at(step, cfg) == pytest.approx(want)
    assert lr_at(99, cfg) > lr_at(100, cfg) == pytest.approx(0.1)
    cfg = load_config(
        DownstreamConfig, None, ["schedule.name=wsd", "schedule.min_lr_ratio=0", "budget.steps=100"]
    )
    assert lr_at(50, cfg) == 1.0 and lr_at(100, cfg) == 0.0  # stable, then cooled down to min_lr_ratio
    with pytest.raises(ConfigError, match="schedule.name='step'"):
        load_config(DownstreamConfig, None, ["schedule.name=step"])
    # the optimizer really runs it: the LR of every step of a tiny adapter
    cfg = _cfg("noise", steps=30, depth=0)
    seen: list[float] = []
    step = torch.optim.AdamW.step

    def spy(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    train_adapter(build_run_model(cfg, 6), _split(8, 3), cfg)
    assert seen == pytest.approx([cfg.optimizer.lr * lr_at(s, cfg) for s in range(30)])


@pytest.mark.parametrize("task", ["pid", "tracking"])
def test_one_event_at_a_time_matches_the_padded_batch(task: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On CPU the adapter runs event by event (attention then costs each event's own n^2, not the batch's
    longest): the loss, its gradients and the predictions equal the padded batch's."""
    import analysis.downstream.train as train

    data = _split(5, seed=3)
    assert len({f.shape[0] for f in data.features}) > 1  # the events differ in size, so padding occurs
    cfg = _cfg(task, depth=1)
    torch.manual_seed(0)
    model = build_run_model(cfg, 6)
    batch = make_batch(data, list(range(5)), task)
    results = []
    for one_at_a_time in (True, False):
        monkeypatch.setattr(train, "per_event", lambda b, on=one_at_a_time: on)
        model.zero_grad()
        loss = train.batch_loss(model, batch, cfg, None)
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        results.append((loss.detach(), grads, predict(model, data, cfg)))
        model.train()
    (l1, g1, p1), (l2, g2, p2) = results
    assert torch.allclose(l1, l2, rtol=1e-5, atol=1e-6)
    assert len(g1) == len(g2) and all(
        torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(g1, g2, strict=True)
    )
    assert all(np.array_equal(a, b) for a, b in zip(p1, p2, strict=True))


def test_per_event_only_on_cpu_batches_without_empty_events() -> None:
    from analysis.downstream.train import Batch, per_event

    valid = torch.tensor([[True, True, True], [True, False, False]])
    batch = Batch(torch.zeros(2, 3, 6), valid, torch.zeros(2, 3, dtype=torch.int64))
    assert per_event(batch)
    batch.valid = torch.tensor([[True, True, True], [False, False, False]])  # an event without points
    assert not per_event(batch)
    assert not per_event(Batch(torch.zeros(1, 3, 6), valid[:1], torch.zeros(1, 3, dtype=torch.int64)))
