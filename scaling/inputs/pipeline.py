"""Per-event input pipeline and packing of events into one sequence without padding.

    >>> sample = prepare_event(event, normalizer=norm, serialization="raster", objective=obj, rng=rng)
    >>> for group in pack_by_token_budget(samples, max_tokens=65536):
    ...     batch = pack_samples(group)             # features [1, T, 4], seq_idx [1, T]
    ...     loss = obj.loss(model(batch.features, batch.seq_idx), batch)

A packed batch is the events' tokens concatenated along one sequence; `seq_idx[0, t]` is the index (within the
batch) of the event token t belongs to, so the sequence model resets its state at event boundaries (Mamba-2's
`seq_idx`), and `cu_seqlens` are the event boundaries. No token is padding. `pad_samples` builds the usual
padded [B, L_max, 4] batch, kept for comparison (benchmarks/bench_inputs_packing.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

import numpy as np
import torch

from scaling.data.schema import Event
from scaling.inputs.batch import PackedBatch, PaddedBatch, Sample
from scaling.inputs.coordinates import Normalizer
from scaling.inputs.serialization import serialize
from scaling.objectives.base import Objective


def prepare_event(
    event: Event,
    *,
    normalizer: Normalizer,
    serialization: str,
    objective: Objective,
    rng: np.random.Generator | None = None,
) -> Sample:
    """Coordinates -> normalised features -> serialisation -> targets, for one event.

    Non-finite coordinates are a ValueError naming the event. Events with 0 or 1 spacepoint, or with every
    point at one radius, are valid: their targets are all masked and they add nothing to the loss. The
    objective may first augment the raw event (`Objective.augment`: contrastive views) and, when it uses
    labels, gets the truth in serialised order; `rng` also draws its random targets (masks)."""
    event = objective.augment(event, rng)
    points = np.asarray(event.points)
    if points.ndim != 2 or points.shape[1] != 4:
        raise ValueError(f"event {event.event_id}: points must have shape (n, 4), got {points.shape}")
    finite = np.isfinite(points).all(axis=1)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise ValueError(
            f"event {event.event_id}: non-finite coordinate at spacepoint {bad}; "
            "drop the event (EventStream skip_bad_events=True) or fix the dataset"
        )
    feats = normalizer.features(points)
    perm = serialize(feats, serialization, normalizer.stats, rng=rng)
    feats = feats[perm]
    labels = {"pid": event.pid[perm], "noise": event.noise[perm]} if objective.uses_labels else None
    targets = objective.build_targets(feats, rng=rng, labels=labels)
    return Sample(
        features=feats,
        targets=targets,
        perm=perm,
        event_id=int(event.event_id),
        weight=objective.event_weight(targets),
    )


def pack_samples(samples: list[Sample], *, max_tokens: int | None = None) -> PackedBatch:
    """Concatenate samples into one sequence; more than `max_tokens` tokens (unless one event) is an error."""
    if not samples:
        raise ValueError("pack_samples: no samples to pack")
    lengths = np.array([s.n_points for s in samples], dtype=np.int64)
    n_tokens = int(lengths.sum())
    if max_tokens is not None and n_tokens > max_tokens and len(samples) > 1:
        raise ValueError(
            f"pack_samples: {n_tokens} tokens exceed max_tokens={max_tokens}; group with pack_by_token_budget"
        )
    cu = np.concatenate([[0], np.cumsum(lengths)])
    seq = np.repeat(np.arange(len(samples), dtype=np.int32), lengths)
    keys = samples[0].targets.keys()
    targets: dict[str, torch.Tensor] = {}
    for key in keys:
        parts = [s.targets[key] for s in samples]
        merged = np.stack(parts) if parts[0].ndim == 0 else np.concatenate(parts, axis=0)
        targets[key] = torch.from_numpy(np.ascontiguousarray(merged))
    feats = np.concatenate([s.features for s in samples], axis=0).astype(np.float32, copy=False)
    return PackedBatch(
        features=torch.from_numpy(feats).reshape(1, n_tokens, 4),  # [1, T, 4]
        seq_idx=torch.from_numpy(seq).reshape(1, n_tokens),  # [1, T]
        cu_seqlens=torch.from_numpy(cu.astype(np.int32)),
        targets=targets,
        weights=torch.tensor([s.weight for s in samples], dtype=torch.float32),
        event_ids=[s.event_id for s in samples],
        n_events=len(samples),
        n_tokens=n_tokens,
    )


def pack_by_token_budget(
    samples: Iterable[Sample], max_tokens: int, *, lookahead: int = 0
) -> Iterator[list[Sample]]:
    """Group samples into batches of at most `max_tokens` tokens; events are never split, and an event longer
    than the budget is a batch of its own. With `lookahead` > 0 up to that many later events wait in a buffer
    and fill the gap an event too long for the batch would leave (best for budgets of few events)."""
    if max_tokens < 1:
        raise ValueError(f"pack_by_token_budget: max_tokens must be >= 1, got {max_tokens}")
    if lookahead < 0:
        raise ValueError(f"pack_by_token_budget: lookahead must be >= 0, got {lookahead}")
    stream = iter(samples)
    buf: list[Sample] = []
    while True:
        group: list[Sample] = []
        used = 0
        while True:
            buf.extend(itertools.islice(stream, lookahead + 1 - len(buf)))
            pick = next((i for i, s in enumerate(buf) if not group or used + s.n_points <= max_tokens), None)
            if pick is None:
                break
            group.append(buf.pop(pick))
            used += group[-1].n_points
        if not group:
            return
        yield group


def pad_samples(samples: list[Sample]) -> PaddedBatch:
    """The padded [B, L_max, 4] layout of the same samples (for comparison with packing)."""
    if not samples:
        raise ValueError("pad_samples: no samples to pad")
    lengths = [s.n_points for s in samples]
    out = np.zeros((len(samples), max(lengths), 4), dtype=np.float32)
    for i, s in enumerate(samples):
        out[i, : s.n_points] = s.features
    return PaddedBatch(
        features=torch.from_numpy(out),
        lengths=torch.tensor(lengths, dtype=torch.int64),
        event_ids=[s.event_id for s in samples],
    )
