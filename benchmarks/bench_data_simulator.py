"""Simulator throughput (events/s, one core) at paper-like event sizes, against two references in one run.

    .venv/bin/python benchmarks/bench_data_simulator.py          # quick (< 60 s)
    .venv/bin/python benchmarks/bench_data_simulator.py --full   # 10x the events

Goal from the issue: >= 500 events/s per core with the paper profile (`SimulatorConfig()` defaults).
The `sphenix` profile (loopers, V0 decays, multiple scattering) is timed in the same run, as events/s and
points/s and their ratios to the paper profile's.
References, measured on the same events:
  * loop: the same helix-layer intersections computed per track, per layer and per turn in plain Python
    (the unvectorised form of `trace_hits`); it also checks that both give the same crossings.
  * draw: a bare numpy draw of as many random numbers as the simulator outputs (4 per point), the floor
    for any generator that writes that many values.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable
from typing import TypeVar

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from scaling.data import simulator as sim  # noqa: E402

T = TypeVar("T")


def loop_crossings(cfg: sim.SimulatorConfig, parts: sim.Particles, radii: np.ndarray) -> list[tuple]:
    """Ideal crossings (track, x, y, z) one track, layer and turn at a time (scalar math only)."""
    out = []
    z_max = cfg.z_half_length_cm
    for t in range(parts.pid.size):
        px, py, pz = (float(v) for v in parts.momentum[t])
        x0, y0, z0 = (float(v) for v in parts.vertex[t])
        pt = math.hypot(px, py)
        q = float(parts.charge[t])
        radius = 100.0 * pt / (0.299792458 * cfg.b_field_t)
        cx, cy = x0 + q * radius * py / pt, y0 - q * radius * px / pt
        alpha0, sense, d = math.atan2(y0 - cy, x0 - cx), -q, math.hypot(cx, cy)
        for r in radii:
            a = (r * r - radius * radius + d * d) / (2 * d)
            if r * r - a * a < 0:
                continue
            h = math.sqrt(r * r - a * a)
            cands = []
            for s in (1.0, -1.0):
                x, y = a * cx / d - s * h * cy / d, a * cy / d + s * h * cx / d
                psi = (sense * (math.atan2(y - cy, x - cx) - alpha0)) % (2 * math.pi)
                cands.append((psi, x, y))
            if parts.first_only[t]:
                cands = [min(cands)]
            for psi0, x, y in cands:
                psi = psi0
                while psi < parts.max_psi[t]:
                    z = z0 + radius * pz / pt * psi
                    if abs(z) >= z_max:
                        break
                    out.append((t, x, y, z))
                    if parts.first_only[t]:
                        break
                    psi += 2 * math.pi
    return out


def events_particles(cfg: sim.SimulatorConfig, n: int, seed: int) -> list[sim.Particles]:
    """The particles of events 0..n-1 (as `simulate_event` draws them first)."""
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        out.append(sim.concat_particles(sim.sample_primaries(cfg, rng), sim.sample_secondaries(cfg, rng)))
    return out


def timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    """(result, CPU seconds, wall seconds): CPU time is the per-core figure on a shared host."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.process_time() - c0, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n_events, n_loop = (5000, 200) if args.full else (500, 30)
    cfg = sim.SimulatorConfig()
    radii = sim.layer_radii(cfg)
    sizes, sim_s, sim_wall = timed(
        lambda: np.array([ev.n_points for ev in sim.simulate_events(n_events, args.seed, cfg)])
    )
    rng = np.random.default_rng(args.seed)
    _, draw_s, _ = timed(lambda: [rng.standard_normal((int(n), 4), dtype=np.float32) for n in sizes])
    parts = events_particles(cfg, n_loop, args.seed)
    vec, vec_s, _ = timed(lambda: [sim.trace_hits(cfg, p, radii) for p in parts])
    loop, loop_s, _ = timed(lambda: [loop_crossings(cfg, p, radii) for p in parts])
    agree = all(
        len(lp) == v[0].size
        and np.allclose(
            np.array(sorted(lp))[:, 1:], np.array(sorted(zip(*v[:4], strict=True)))[:, 1:], atol=1e-6
        )
        for lp, v in zip(loop, vec, strict=True)
    )
    ev_s = n_events / sim_s
    verdict = "met" if ev_s >= 500 else "NOT met"
    wall = n_events / sim_wall
    print(f"simulator (paper profile), 1 core: {n_events} events, points/event mean {sizes.mean():.0f} "
          f"median {np.median(sizes):.0f} max {sizes.max()}; CPU-time rates (wall {wall:.0f}/s)")  # fmt: skip
    mpts = sizes.sum() / sim_s / 1e6
    print(f"  simulate_events          {ev_s:9.1f} events/s per core, {mpts:.2f} M points/s"
          f"  (goal >= 500: {verdict})")  # fmt: skip
    print(f"  reference numpy draw     {n_events / draw_s:9.1f} events/s (4 float32 normals per point)")
    print(f"  ratio simulator / draw   {draw_s / sim_s:9.3f}")
    sph = sim.sphenix_config()
    sph_sizes, sph_s, _ = timed(
        lambda: np.array([ev.n_points for ev in sim.simulate_events(n_events, args.seed, sph)])
    )
    sph_ev_s, sph_mpts = n_events / sph_s, sph_sizes.sum() / sph_s / 1e6
    print(f"sphenix profile, same events count: points/event mean {sph_sizes.mean():.0f} "
          f"median {np.median(sph_sizes):.0f} max {sph_sizes.max()}")  # fmt: skip
    print(f"  simulate_events          {sph_ev_s:9.1f} events/s per core, {sph_mpts:.2f} M points/s")
    print(f"  ratio sphenix / paper    {sph_ev_s / ev_s:9.3f} in events/s, {sph_mpts / mpts:.3f} in points/s")
    print(f"helix-layer crossings of {n_loop} events, vectorised vs per-track Python loop "
          f"(same crossings: {agree})")  # fmt: skip
    print(f"  vectorised trace_hits    {n_loop / vec_s:9.1f} events/s")
    print(f"  reference Python loop    {n_loop / loop_s:9.1f} events/s")
    print(f"  ratio vectorised / loop  {loop_s / vec_s:9.1f}")
    if not agree:
        raise SystemExit("vectorised and loop crossings disagree")


if __name__ == "__main__":
    main()
