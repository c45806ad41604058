"""k-NNN target builder (k = 30): events/s per core for the whole per-event pipeline, and the speed ratio of
the tree-based target builder against the O(n^2) brute-force reference, on the same events in one run.

    .venv/bin/python benchmarks/bench_inputs_knnn.py            # quick (< 60 s)
    .venv/bin/python benchmarks/bench_inputs_knnn.py --full     # more events

Events come from `scaling.data.simulator.simulate_events` when it is installed; otherwise from a stand-in
generator of the same shape (straight-ish tracks crossing 48 TPC layers between 30 and 78 cm plus curling
low-momentum noise), and the report says which.
"""

from __future__ import annotations

import argparse
import math
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from scaling.data.schema import Event  # noqa: E402
from scaling.data.stats import StatsAccumulator  # noqa: E402
from scaling.inputs import Normalizer, prepare_event, serialize  # noqa: E402
from scaling.objectives import (  # noqa: E402
    ObjectiveConfig,
    build_objective,
    knnn_brute_force,
    knnn_indices_torch,
    knnn_neighbours,
)

LAYERS_CM = np.concatenate(
    [np.linspace(30.3, 40.0, 16), np.linspace(41.0, 57.0, 16), np.linspace(58.5, 77.5, 16)]
)


def standin_event(rng: np.random.Generator, event_id: int) -> Event:
    """A TPC-shaped event: 5-60 tracks over 48 layers, 150 um / 1 mm smearing, ~10 % noise points."""
    n_tracks = int(rng.integers(5, 61))
    pts = []
    for _ in range(n_tracks):
        phi0, eta = rng.uniform(-math.pi, math.pi), rng.uniform(-1.1, 1.1)
        curv = rng.normal(0.0, 0.004)  # phi bend per cm
        n_layers = int(rng.integers(10, 49))
        r = LAYERS_CM[:n_layers]
        phi = phi0 + curv * (r - r[0]) + rng.normal(0, 0.015 / r)
        z = r * math.sinh(eta) + rng.normal(0, 0.1, n_layers)
        pts.append(np.stack([rng.gamma(2.0, 120.0, n_layers), r * np.cos(phi), r * np.sin(phi), z], 1))
    n_noise = int(0.1 * sum(len(p) for p in pts))
    r = rng.uniform(30.3, 77.5, n_noise)
    phi = rng.uniform(-math.pi, math.pi, n_noise)
    z = rng.uniform(-100, 100, n_noise)
    pts.append(np.stack([rng.gamma(2.0, 200.0, n_noise), r * np.cos(phi), r * np.sin(phi), z], 1))
    p = np.concatenate(pts).astype(np.float32)
    n = len(p)
    return Event(
        points=p,
        track_id=np.zeros(n, np.int64),
        pid=np.zeros(n, np.int8),
        noise=np.zeros(n, np.uint8),
        event_id=event_id,
    )


def bench_events(n: int, seed: int = 0) -> tuple[list[Event], str]:
    """n events and the name of their source."""
    try:
        from scaling.data.simulator import simulate_events
    except ImportError:
        return [standin_event(np.random.default_rng([seed, i]), i) for i in range(n)], "stand-in generator"
    events = []
    for i, ev in enumerate(simulate_events(n, seed)):
        ev.event_id = i
        events.append(ev)
    return events, "scaling.data.simulator"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="more events (slower)")
    args = parser.parse_args()
    n_events, n_brute = (200, 40) if args.full else (40, 8)
    events, source = bench_events(n_events)
    acc = StatsAccumulator()
    for ev in events:
        acc.add(ev.points)
    norm = Normalizer.from_stats(acc.finish())
    torch.set_num_threads(1)
    sizes = np.array([ev.n_points for ev in events])
    print(
        f"events: {n_events} from {source}; points/event median {np.median(sizes):.0f}, "
        f"mean {sizes.mean():.0f}, max {sizes.max()}; 1 thread"
    )

    t0 = time.perf_counter()
    for ev in events:
        feats = norm.features(ev.points)
        feats = feats[serialize(feats, "raster", norm.stats)]
    front_s = time.perf_counter() - t0
    print(
        f"coordinates + raster serialisation alone: {n_events / front_s:.0f} events/s per core "
        f"({1e3 * front_s / n_events:.2f} ms/event)"
    )
    for backend in ("tree", "torch"):
        obj = build_objective(ObjectiveConfig(k=30, target_backend=backend))
        t0 = time.perf_counter()
        samples = [prepare_event(ev, normalizer=norm, serialization="raster", objective=obj) for ev in events]
        pipe_s = time.perf_counter() - t0
        print(
            f"whole pipeline (coordinates + raster + k-NNN targets, {backend} backend on cpu): "
            f"{n_events / pipe_s:.1f} events/s per core ({1e3 * pipe_s / n_events:.2f} ms/event; goal >= 250)"
        )

    pos = [s.features[:, 1:].astype(np.float64) for s in samples[:n_brute]]
    timings = {}
    results = {}
    for name, fn in (
        ("tree", lambda p: knnn_neighbours(p, 30)[0]),
        ("torch", lambda p: knnn_indices_torch(torch.from_numpy(p), 30).numpy()),
        ("brute force", lambda p: knnn_brute_force(p, 30)[0]),
    ):
        t0 = time.perf_counter()
        results[name] = [fn(p) for p in pos]
        timings[name] = time.perf_counter() - t0
    same = all(
        np.array_equal(a, b)
        for name in ("tree", "torch")
        for a, b in zip(results[name], results["brute force"], strict=True)
    )
    ms = {name: 1e3 * t / n_brute for name, t in timings.items()}
    print(
        f"target builder on {n_brute} events (ms/event): tree {ms['tree']:.2f}, torch {ms['torch']:.2f}, "
        f"brute force {ms['brute force']:.2f}; ratio brute/tree = {ms['brute force'] / ms['tree']:.1f}x, "
        f"brute/torch = {ms['brute force'] / ms['torch']:.1f}x; identical to brute force: {same}"
    )


if __name__ == "__main__":
    main()
