"""From an `EventStream` to packed micro-batches (events concatenated, never split, no padding).

Each rank draws `micro_batch_events` events per forward pass from its own stream; serialisation randomness
(the `random` order) comes from `default_rng([seed, event_id, epoch])`, so a resumed run needs only the stream
cursor to reproduce the batches exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np

from scaling.data.loader import EventStream
from scaling.data.schema import Event
from scaling.inputs.batch import PackedBatch, Sample
from scaling.inputs.coordinates import Normalizer
from scaling.inputs.pipeline import pack_samples, prepare_event
from scaling.objectives import Objective


def build_normalizer(data: Any, stats: dict[str, Any]) -> Normalizer:
    """The model-input normaliser of a run: its dataset's manifest statistics and its input options
    (`data.energy_feature`). The trainer and every reader of a frozen backbone (downstream, probes) use it."""
    return Normalizer.from_stats(stats, energy=data.energy_feature)


class BatchSource:
    """Packed micro-batches of a fixed number of events, resumable through `state_dict()`."""

    def __init__(
        self,
        stream: EventStream,
        *,
        normalizer: Normalizer,
        objective: Objective,
        serialization: str,
        seed: int,
        micro_batch_events: int,
        max_tokens: int = 0,
    ) -> None:
        self.stream, self.normalizer, self.objective = stream, normalizer, objective
        self.serialization, self.seed = serialization, seed
        self.micro_batch_events, self.max_tokens = micro_batch_events, max_tokens
        self._events: Iterator[Event] | None = None

    def sample(self, event: Event, view: int = 0) -> Sample:
        """One sample of `event`; view v > 0 (contrastive) draws from its own generator."""
        epoch = int(event.meta.get("epoch", 0))
        key = [self.seed, int(event.event_id), epoch] + ([view] if view else [])
        rng = np.random.default_rng(key)
        return prepare_event(event, normalizer=self.normalizer, serialization=self.serialization,
                             objective=self.objective, rng=rng)  # fmt: skip

    def samples(self, event: Event) -> list[Sample]:
        """The objective's `n_views` samples of one event, next to each other (pairs stay in one batch)."""
        return [self.sample(event, view) for view in range(self.objective.n_views)]

    def next_batch(self) -> PackedBatch:
        """The next `micro_batch_events` events of this rank's stream (each in `n_views` samples), packed
        into one sequence."""
        if self._events is None:
            self._events = iter(self.stream)
        samples = [s for _ in range(self.micro_batch_events) for s in self.samples(next(self._events))]
        batch = pack_samples(samples)
        if self.max_tokens and batch.n_tokens > self.max_tokens:
            raise ValueError(
                f"a micro-batch of {batch.n_events} events has {batch.n_tokens} tokens > data.max_tokens="
                f"{self.max_tokens}; lower budget.micro_batch_events or raise data.max_tokens"
            )
        return batch

    def state_dict(self) -> dict[str, Any]:
        return self.stream.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stream.load_state_dict(state)
        self._events = None


def validation_batches(dataset_dir: str, split: str, *, n_events: int, rank: int, world_size: int,
                       source: BatchSource) -> list[PackedBatch]:  # fmt: skip
    """This rank's share of the fixed held-out set (the first `n_events` of the split's fixed permutation)."""
    if n_events == 0:
        return []
    total = EventStream(dataset_dir, split, shuffle=False).n_events
    if total == 0:
        raise ValueError(f"{dataset_dir}: split {split!r} has no events for validation")
    fraction = min(1.0, n_events / total)
    stream = EventStream(dataset_dir, split, seed=0, rank=rank, world_size=world_size, fraction=fraction,
                         shuffle=False, epochs=1)  # fmt: skip
    samples = [s for event in stream for s in source.samples(event)]
    size = source.micro_batch_events * source.objective.n_views
    return [pack_samples(samples[i : i + size]) for i in range(0, len(samples), size)]


def first_samples(dataset_dir: str, split: str, *, n_events: int, source: BatchSource) -> list[Sample]:
    """The first `n_events` of a split in storage order, as samples (the same events on every rank)."""
    stream = EventStream(dataset_dir, split, shuffle=False, epochs=1)
    samples: list[Sample] = []
    for i, event in enumerate(stream):
        samples.extend(source.samples(event))
        if i + 1 >= n_events:
            break
    if not samples:
        raise ValueError(f"{dataset_dir}: split {split!r} has no events to fit the run's statistics on")
    return samples


def fit_statistics(dataset_dir: str, split: str, *, n_events: int, source: BatchSource) -> dict[str, Any]:
    """Everything a run fits on its first `n_events` training events, in order: the target scaling (if on),
    the difficulty table (paper B.7, if on) and the lookup baselines in the scaled target units.

    Every rank fits the same values from the same events, without communication. Returns the JSON-able
    {"target_stats", "difficulty", "baseline"} (None where off); the objective keeps what it needs."""
    obj = source.objective
    with obj.unscaled():
        samples = first_samples(dataset_dir, split, n_events=n_events, source=source)
    stats = obj.fit_target_stats(samples) if obj.cfg.target_scaling != "none" else None
    table = obj.fit_difficulty(samples) if obj.cfg.difficulty_rescaling and obj.uses_difficulty else None
    scaled = [dataclasses.replace(s, targets=obj.scale(s.targets)) for s in samples]
    baseline = obj.fit_baselines(scaled)
    return {"target_stats": stats, "difficulty": table, "baseline": baseline}


def fit_difficulty(dataset_dir: str, split: str, *, n_events: int, source: BatchSource) -> dict[str, Any]:
    """Fit the objective's difficulty table (paper B.7) alone on the first `n_events` of the train split."""
    return source.objective.fit_difficulty(
        first_samples(dataset_dir, split, n_events=n_events, source=source)
    )
