"""Next-token objective: targets, masking of each event's last point, loss over packed events."""

from __future__ import annotations

import numpy as np
import torch

from scaling.inputs.pipeline import Sample, pack_samples
from scaling.objectives import ObjectiveConfig, build_objective


def _sample(obj, pos: np.ndarray, event_id: int) -> Sample:
    f = np.concatenate([np.zeros((len(pos), 1)), pos], axis=1).astype(np.float32)
    return Sample(features=f, targets=obj.build_targets(f), perm=np.arange(len(f)), event_id=event_id)


def test_targets_are_next_point_offsets_with_last_masked() -> None:
    obj = build_objective(ObjectiveConfig(name="next_token"))
    pos = np.array([[0.1, 0.95, 0.2], [0.2, 0.05, 0.3], [0.3, 0.5, 0.4]])
    t = obj.build_targets(np.concatenate([np.zeros((3, 1)), pos], axis=1))
    assert obj.out_dim == 3 and t["mask"].tolist() == [True, True, False]
    np.testing.assert_allclose(t["target"][0], [0.1, 0.1, 0.1], atol=1e-6)  # phi wrapped
    np.testing.assert_allclose(t["target"][2], 0.0)
    for n in (0, 1):
        empty = obj.build_targets(np.zeros((n, 4)))
        assert empty["target"].shape == (n, 3) and not empty["mask"].any()


def test_loss_does_not_cross_event_boundaries() -> None:
    obj = build_objective(ObjectiveConfig(name="next_token"))
    rng = np.random.default_rng(0)
    batch = pack_samples([_sample(obj, rng.random((n, 3)), i) for i, n in enumerate([5, 1, 8])])
    # the last token of each event is masked, so its prediction is free
    assert batch.targets["mask"].sum().item() == 4 + 0 + 7
    pred = batch.targets["target"].clone().requires_grad_()
    last = batch.cu_seqlens[1:].long() - 1
    with torch.no_grad():
        pred[last] += 5.0
    loss = obj.loss(pred, batch)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(pred.grad).all()
