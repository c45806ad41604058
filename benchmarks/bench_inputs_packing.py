"""Packed vs padded batches: the fraction of tokens that are padding, on the same events in one run.

    .venv/bin/python benchmarks/bench_inputs_packing.py          # quick (< 60 s)
    .venv/bin/python benchmarks/bench_inputs_packing.py --full   # more events

Padded: batches of B events in stream order, each padded to its longest event ([B, L_max, 4]).
Packed: the same stream grouped by `pack_by_token_budget` into sequences of at most M tokens ([1, T, 4]).
As built, a packed sequence has no padding at all; the figure reported is the stricter one where each packed
sequence is padded up to the fixed budget M (a static shape for compiled kernels). M is B times the mean
event length, so both layouts hold about the same number of events per step. Goal: < 2 % padding packed.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from bench_inputs_knnn import bench_events  # noqa: E402

from scaling.data.stats import StatsAccumulator  # noqa: E402
from scaling.inputs import Normalizer, pack_by_token_budget, pack_samples, pad_samples, prepare_event  # noqa: E402
from scaling.objectives import ObjectiveConfig, build_objective  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="more events")
    parser.add_argument("--batch-events", type=int, default=32, help="events per padded batch (B)")
    args = parser.parse_args()
    events, source = bench_events(2000 if args.full else 400)
    acc = StatsAccumulator()
    for ev in events:
        acc.add(ev.points)
    norm = Normalizer.from_stats(acc.finish())
    obj = build_objective(
        ObjectiveConfig(name="next_token")
    )  # cheap targets: packing does not depend on them
    samples = [prepare_event(ev, normalizer=norm, serialization="raster", objective=obj) for ev in events]
    lengths = np.array([s.n_points for s in samples])
    b = args.batch_events
    budget = int(b * lengths.mean())
    print(
        f"events: {len(samples)} from {source}; points/event median {np.median(lengths):.0f}, "
        f"max {lengths.max()}; B = {b} events, M = {budget} tokens"
    )

    # The last batch of a finite stream is partial in both layouts; a training stream has no end, so it is
    # left out of both figures.
    real = lambda batches: sum(int(x.lengths.sum()) if hasattr(x, "lengths") else x.n_tokens for x in batches)  # noqa: E731
    t0 = time.perf_counter()
    padded = [pad_samples(samples[i : i + b]) for i in range(0, len(samples), b)][:-1]
    pad_s = time.perf_counter() - t0
    pad_slots = sum(p.features.shape[0] * p.features.shape[1] for p in padded)
    pad_frac = 1 - real(padded) / pad_slots
    print(f"padded: {len(padded)} batches, padding {100 * pad_frac:.2f} % of tokens ({1e3 * pad_s:.0f} ms)")
    for lookahead in (0, 16):
        t0 = time.perf_counter()
        groups = pack_by_token_budget(iter(samples), budget, lookahead=lookahead)
        packed = [pack_samples(g, max_tokens=budget) for g in groups][:-1]
        pack_s = time.perf_counter() - t0
        pack_slots = sum(max(p.n_tokens, budget) for p in packed)
        pack_frac = 1 - real(packed) / pack_slots
        print(
            f"packed (lookahead {lookahead}): {len(packed)} sequences, padding 0.00 % as built, "
            f"{100 * pack_frac:.2f} % if padded to M ({1e3 * pack_s:.0f} ms); goal < 2 %; "
            f"padding fraction padded / packed-to-M = {pad_frac / max(pack_frac, 1e-9):.1f}x"
        )


if __name__ == "__main__":
    main()
