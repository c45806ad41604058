"""Adapters, Hungarian matching and set losses on plain feature tensors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from analysis.downstream.adapters import (
    AdapterConfig,
    assign_tracks,
    build_adapter,
    class_weights,
    classification_loss,
)
from analysis.downstream.matching import (
    SetLossWeights,
    event_set_loss,
    hungarian_match,
    pairwise_dice_cost,
    pairwise_focal_cost,
    track_targets,
)

torch.set_num_threads(1)


def _padded(lengths: list[int], d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), max(lengths), d, generator=g)
    valid = torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]
    return x, valid


@pytest.mark.parametrize("depth", [0, 1, 2])
def test_classifier_shapes_and_padding_invariance(depth: int) -> None:
    torch.manual_seed(0)
    head = build_adapter("pid", 8, AdapterConfig(d_proj=16, depth=depth, mlp_hidden=32)).eval()
    x, valid = _padded([7, 4], 8)
    out = head(x, valid)
    assert out.shape == (2, 7, 5)
    alone = head(x[1:, :4], valid[1:, :4])  # the short event without padding
    torch.testing.assert_close(out[1, :4], alone[0], atol=1e-5, rtol=1e-5)


def test_track_finder_outputs_every_layer_and_ignores_padding() -> None:
    torch.manual_seed(0)
    cfg = AdapterConfig(d_proj=16, n_queries=5, n_decoder_layers=3, mlp_hidden=32)
    finder = build_adapter("tracking", 8, cfg).eval()
    x, valid = _padded([9, 6], 8)
    outs = finder(x, valid)
    assert len(outs) == 4  # initial prediction + one per decoder layer (auxiliary losses)
    cls, mask = outs[-1]
    assert cls.shape == (2, 5) and mask.shape == (2, 5, 9)
    alone = finder(x[1:, :6], valid[1:, :6])[-1]
    torch.testing.assert_close(mask[1, :, :6], alone[1][0], atol=1e-4, rtol=1e-4)
    assert assign_tracks(cls, mask).shape == (2, 9)


def test_assign_tracks_uses_mask_times_score() -> None:
    cls = torch.tensor([[5.0, -5.0]])  # query 1 is "no object"
    mask = torch.tensor([[[0.0, 3.0], [4.0, 4.0]]])
    # point 0: 0.5*0.99 vs 0.98*0.007 -> query 0; point 1 -> query 0 too
    assert assign_tracks(cls, mask).tolist() == [[0, 0]]


def test_adapter_only_has_a_learnable_stem() -> None:
    ad = build_adapter("noise", 4, AdapterConfig(d_proj=16), raw_stem_width=32)
    x, valid = _padded([5], 4)
    assert ad(x, valid).shape == (1, 5, 2)
    assert ad.stem.weight.shape == (32, 4) and ad.stem.weight.requires_grad


def test_bad_adapter_config_and_task() -> None:
    with pytest.raises(ValueError, match="d_proj"):
        AdapterConfig(d_proj=10, n_heads=4)
    with pytest.raises(ValueError, match="loss"):
        AdapterConfig(loss="hinge")
    with pytest.raises(ValueError, match="task must be one of"):
        build_adapter("vertexing", 4, AdapterConfig())


def test_class_weights_and_losses() -> None:
    labels = torch.tensor([0, 0, 0, 1])
    w = class_weights(labels, 3)
    assert (
        w[1] / w[0] == pytest.approx(3.0)
        and w[2] == pytest.approx(1.0)
        and w[:2].mean() == pytest.approx(1.0)
    )
    logits = torch.tensor([[2.0, 0.0], [2.0, 0.0], [2.0, 0.0], [2.0, 0.0]])
    ce = classification_loss(logits, labels, AdapterConfig(loss="ce"))
    focal = classification_loss(logits, labels, AdapterConfig(loss="focal", focal_gamma=2.0))
    assert focal < ce  # easy examples are down-weighted
    g0 = classification_loss(logits, labels, AdapterConfig(loss="focal", focal_gamma=0.0))
    torch.testing.assert_close(g0, ce)
    wce = classification_loss(logits, labels, AdapterConfig(loss="weighted_ce"), w[:2])
    assert wce > ce  # the misclassified minority point counts more


def test_hungarian_matches_brute_force() -> None:
    g = torch.Generator().manual_seed(3)
    cls, masks = torch.randn(4, generator=g), torch.randn(4, 12, generator=g)
    targets = torch.rand(3, 12, generator=g) > 0.5
    w = SetLossWeights()
    rows, cols = hungarian_match(cls, masks, targets, w)
    cost = (
        -w.cls * cls.sigmoid()[:, None]
        + w.focal * pairwise_focal_cost(masks, targets)
        + w.dice * pairwise_dice_cost(masks, targets)
    )
    best = min(sum(cost[q, t] for t, q in enumerate(perm)) for perm in itertools.permutations(range(4), 3))
    assert float(cost[rows, cols].sum()) == pytest.approx(float(best), rel=1e-6)
    assert sorted(cols.tolist()) == [0, 1, 2]


def test_track_targets_and_empty_event() -> None:
    t = track_targets(np.array([3, 3, -1, 7, 3, 9]), min_points=2)
    assert t.shape == (1, 6) and t[0].tolist() == [True, True, False, False, True, False]
    empty = track_targets(np.array([-1, -1]))
    loss, matched = event_set_loss(torch.zeros(3), torch.zeros(3, 2), empty, SetLossWeights())
    assert matched == 0 and torch.isfinite(loss)


def test_set_loss_gradient_reaches_only_matched_masks() -> None:
    cls = torch.zeros(3, requires_grad=True)
    masks = torch.randn(3, 5, requires_grad=True)
    targets = torch.tensor([[1, 1, 0, 0, 0]], dtype=torch.bool)
    loss, matched = event_set_loss(cls, masks, targets, SetLossWeights())
    loss.backward()
    assert matched == 1
    assert (masks.grad.abs().sum(-1) > 0).sum() == 1  # unmatched queries: only the no-object loss
    assert (cls.grad != 0).all()


def test_track_finder_learns_a_toy_event() -> None:
    torch.manual_seed(0)
    # Two well-separated "tracks" in feature space plus their one-hot id: the finder must separate them.
    labels = np.array([0] * 6 + [1] * 6 + [2] * 6)
    x = torch.randn(1, 18, 6) * 0.1
    x[0, np.arange(18), labels] += 3.0
    valid = torch.ones(1, 18, dtype=torch.bool)
    cfg = AdapterConfig(d_proj=16, n_queries=4, n_decoder_layers=2, mlp_hidden=32, depth=0)
    finder = build_adapter("tracking", 6, cfg)
    opt = torch.optim.Adam(finder.parameters(), lr=1e-2)
    targets = track_targets(labels)
    for _ in range(40):
        outs = finder(x, valid)
        loss = sum(event_set_loss(c[0], m[0], targets, SetLossWeights())[0] for c, m in outs)
        opt.zero_grad()
        loss.backward()
        opt.step()
    pred = assign_tracks(*finder(x, valid)[-1])[0].numpy()
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(labels, pred) == pytest.approx(1.0)
