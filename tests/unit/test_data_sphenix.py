"""The `sphenix` simulator profile against the paper's dataset and its physics: event sizes, multiple
scattering, V0 decays, loopers, the noise rule, seeds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from scaling.data import physics
from scaling.data.schema import NOISE_MOMENTUM_GEV
from scaling.data.simulator import (
    PROFILES,
    SPECIES_MASS_GEV,
    SimulatorConfig,
    layer_radii,
    profile_config,
    simulate_event,
    simulate_events,
    small_config,
    sphenix_config,
    trace_hits,
)
from scaling.data.transport import (
    K0S_CTAU_CM,
    K0S_MASS_GEV,
    LAMBDA_MASS_GEV,
    PION_MASS_GEV,
    PROTON_MASS_GEV,
    Particles,
    scatter_crossings,
)

IDEAL = {"sigma_rphi_cm": 0.0, "sigma_z_cm": 0.0, "hit_efficiency": 1.0}


@pytest.fixture(scope="module")
def sphenix_events() -> list:
    return list(simulate_events(400, seed=1, cfg=sphenix_config()))


def sizes(events: list) -> tuple[np.ndarray, np.ndarray]:
    """(spacepoints, truth tracks with at least one point) per event."""
    return np.array([e.n_points for e in events]), np.array([np.unique(e.track_id).size for e in events])


def test_event_sizes_span_the_papers_ranges(sphenix_events: list) -> None:
    # Paper, appendix A.3: "from a few hundred to tens of thousands" points, tracks "from under 10 up to
    # nearly 100". The profile puts ~1.5 % of events above 10 000 points, so 400 events hold several.
    points, tracks = sizes(sphenix_events)
    assert points.min() < 1000 and np.quantile(points, 0.01) > 100 and points.max() >= 10_000
    assert 500 < np.median(points) < 3000
    assert tracks.min() < 10 and np.quantile(tracks, 0.99) >= 60 and 70 <= tracks.max() <= 150
    small_points, small_tracks = sizes(list(simulate_events(100, seed=1, cfg=small_config())))
    assert small_points.max() < 10_000 and small_tracks.max() < 70  # the quick profile does not


def ideal_circle_residual(cfg: SimulatorConfig, ev) -> tuple[np.ndarray, np.ndarray]:
    """Per point: distance from its track's ideal circle (from the TrackTable) [cm], and beta * p [GeV]."""
    mom = ev.tracks.momentum.astype(np.float64)[ev.track_id]
    vtx = ev.tracks.vertex.astype(np.float64)[ev.track_id]
    hel = physics.build_helices(
        vtx[:, 0], vtx[:, 1], mom[:, 0], mom[:, 1], ev.tracks.charge[ev.track_id], cfg.b_field_t
    )
    x, y = ev.points[:, 1].astype(np.float64), ev.points[:, 2].astype(np.float64)
    p = np.linalg.norm(mom, axis=1)
    beta = p / np.hypot(p, SPECIES_MASS_GEV[ev.pid])
    return np.hypot(x - hel.cx, y - hel.cy) - hel.radius, beta * p


def radial_pions(cfg: SimulatorConfig, p_gev: float, n: int, seed: int) -> tuple[Particles, tuple]:
    """n pions of momentum p at eta = 0 from the origin, and their ideal crossings."""
    phi = np.random.default_rng(seed).uniform(-np.pi, np.pi, n)
    parts = Particles(
        momentum=p_gev * np.stack([np.cos(phi), np.sin(phi), np.zeros(n)], axis=1), vertex=np.zeros((n, 3)),
        pid=np.ones(n, dtype=np.int64), charge=np.where(np.arange(n) % 2 == 0, 1, -1),
        max_psi=np.full(n, np.pi), first_only=np.ones(n, dtype=bool),
    )  # fmt: skip
    return parts, trace_hits(cfg, parts, layer_radii(cfg))


def outer_residuals(cfg: SimulatorConfig, p_gev: float, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Scattered minus ideal at the outermost layer: (off-circle distance, z shift), and the lever arm."""
    parts, (track, x, y, z, _, psi) = radial_pions(cfg, p_gev, 4000, seed)
    mass = SPECIES_MASS_GEV[parts.pid]
    xs, ys, zs = scatter_crossings(cfg, parts, mass, track, x, y, z, psi, np.random.default_rng(seed))
    outer = np.hypot(x, y) > layer_radii(cfg)[-1] - 1e-6
    hel = physics.build_helices(
        parts.vertex[:, 0], parts.vertex[:, 1], parts.momentum[:, 0], parts.momentum[:, 1], parts.charge,
        cfg.b_field_t,
    )  # fmt: skip
    t = track[outer]
    off = np.hypot(xs[outer] - hel.cx[t], ys[outer] - hel.cy[t]) - hel.radius[t]
    radius = float(hel.radius[0])
    lever = radius * np.sin(psi[outer][0] - 2 * np.arcsin(cfg.inner_material_radius_cm / (2 * radius)))
    return off, zs[outer] - z[outer], lever


def test_multiple_scattering_residual_scales_as_one_over_beta_p() -> None:
    gas_only = SimulatorConfig(multiple_scattering=True, gas_radiation_length_cm=1000.0)
    off_1, dz_1, _ = outer_residuals(gas_only, 1.0, seed=0)
    off_4, dz_4, _ = outer_residuals(gas_only, 4.0, seed=1)
    beta = [p / np.hypot(p, PION_MASS_GEV) for p in (1.0, 4.0)]
    expected = 4.0 * beta[1] / beta[0]  # Highland: theta0 ~ 1 / (beta p); its log term moves < 0.1 % here
    rms = lambda a: float(np.sqrt(np.mean(a * a)))
    assert rms(off_1) / rms(off_4) == pytest.approx(expected, rel=0.06)
    assert rms(dz_1) / rms(dz_4) == pytest.approx(expected, rel=0.06)
    # One thin scatterer (2 % X0 at r = 10 cm): the off-circle rms is theta0 times the lever arm.
    inner_only = SimulatorConfig(
        multiple_scattering=True, gas_radiation_length_cm=1e12, inner_material_x0=0.02
    )
    off, dz, lever = outer_residuals(inner_only, 1.0, seed=2)
    x = 0.02
    theta0 = 0.0136 / (beta[0] * 1.0) * np.sqrt(x) * (1 + 0.038 * np.log(x / beta[0] ** 2))  # PDG eq. 34.15
    assert rms(off) == pytest.approx(theta0 * lever, rel=0.05)
    assert np.mean(np.abs(off) < 1e-9) < 0.01 and np.all(np.isfinite(dz))


def test_sphenix_points_leave_the_ideal_helix_by_the_scattering_width() -> None:
    cfg = sphenix_config(**IDEAL)
    res, bp = [], []
    for ev in simulate_events(40, seed=3, cfg=cfg):
        primary = np.hypot(*ev.tracks.vertex[ev.track_id, :2].T) < 1.0
        r = np.hypot(ev.points[:, 1], ev.points[:, 2])
        off, beta_p = ideal_circle_residual(cfg, ev)
        keep = primary & (r > 70)
        res.append(off[keep])
        bp.append(beta_p[keep])
    res, bp = np.concatenate(res), np.concatenate(bp)
    soft, hard = (bp > 0.3) & (bp < 0.6), (bp > 1.2) & (bp < 2.4)
    rms_soft, rms_hard = np.sqrt(np.mean(res[soft] ** 2)), np.sqrt(np.mean(res[hard] ** 2))
    assert 0.03 < rms_hard < 0.3 and 2.0 < rms_soft / rms_hard < 6.0  # cm; 1 / (beta p) within a spread
    ideal = sphenix_config(**IDEAL, multiple_scattering=False)
    for ev in simulate_events(5, seed=3, cfg=ideal):
        assert np.abs(ideal_circle_residual(ideal, ev)[0]).max() < 2e-3


def v0_pairs(ev) -> list[tuple[np.ndarray, np.ndarray]]:
    """Index pairs of charged hadrons that share a production point away from the beam line."""
    vtx = ev.tracks.vertex.astype(np.float64)
    hadron = np.isin(np.abs(ev.tracks.pdg), (211, 2212))
    displaced = np.flatnonzero(hadron & (np.hypot(vtx[:, 0], vtx[:, 1]) > 0.2))
    _, inverse, counts = np.unique(vtx[displaced], axis=0, return_inverse=True, return_counts=True)
    return [displaced[inverse.ravel() == g] for g in np.flatnonzero(counts == 2)]


def test_decays_give_displaced_opposite_charge_pairs_with_the_parent_mass(sphenix_events: list) -> None:
    n_k0s, n_lambda, flights, hit_tracks, daughters = 0, 0, [], 0, 0
    for ev in sphenix_events:
        hits = np.bincount(ev.track_id, minlength=len(ev.tracks))
        for pair in v0_pairs(ev):
            mom = ev.tracks.momentum[pair].astype(np.float64)
            assert ev.tracks.charge[pair].sum() == 0
            proton = np.abs(ev.tracks.pdg[pair]) == 2212
            masses = np.where(proton, PROTON_MASS_GEV, PION_MASS_GEV)
            energy = np.sqrt((mom**2).sum(axis=1) + masses**2).sum()
            mass = np.sqrt(energy**2 - (mom.sum(axis=0) ** 2).sum())
            parent = LAMBDA_MASS_GEV if proton.any() else K0S_MASS_GEV
            assert mass == pytest.approx(parent, abs=2e-3)
            if not proton.any():
                n_k0s += 1
                flight = np.linalg.norm(ev.tracks.vertex[pair[0]].astype(np.float64) - ev.tracks.vertex[0])
                flights.append(flight * K0S_MASS_GEV / np.linalg.norm(mom.sum(axis=0)))
            n_lambda += int(proton.any())
            hit_tracks += int((hits[pair] >= 5).sum())
            daughters += 2
    assert n_k0s > 100 and n_lambda > 30
    assert np.mean(flights) == pytest.approx(K0S_CTAU_CM, rel=0.2)  # proper decay length c tau
    assert hit_tracks > 0.5 * daughters  # daughters are tracks in the TPC, not table rows only
    assert not any(v0_pairs(ev) for ev in simulate_events(50, seed=1))  # none in the paper profile


def test_decay_daughters_follow_helices_from_the_displaced_vertex() -> None:
    cfg = sphenix_config(**IDEAL, multiple_scattering=False, k0s_per_primary=0.3)
    checked = 0
    for ev in simulate_events(20, seed=4, cfg=cfg):
        off, _ = ideal_circle_residual(cfg, ev)
        for pair in v0_pairs(ev):
            on = np.isin(ev.track_id, pair)
            rv = np.hypot(*ev.tracks.vertex[pair[0], :2])
            if on.sum() < 10 or rv < 2.0:
                continue
            assert np.abs(off[on]).max() < 2e-3
            # Drawn from the collision vertex instead, the same circle misses the points.
            moved = ev.tracks.vertex.copy()
            moved[pair] = ev.tracks.vertex[0]
            from_origin = dataclasses.replace(ev, tracks=dataclasses.replace(ev.tracks, vertex=moved))
            assert np.abs(ideal_circle_residual(cfg, from_origin)[0][on]).max() > 0.05
            checked += 1
    assert checked > 10


def test_low_pt_primaries_loop_and_are_not_noise() -> None:
    cfg = sphenix_config(**IDEAL, multiple_scattering=False)
    loopers = 0
    for ev in simulate_events(30, seed=5, cfg=cfg):
        p = np.linalg.norm(ev.tracks.momentum.astype(np.float64), axis=1)
        primary = np.hypot(ev.tracks.vertex[:, 0], ev.tracks.vertex[:, 1]) < 1.0
        hits = np.bincount(ev.track_id, minlength=len(ev.tracks))
        for t in np.flatnonzero(primary & (p > NOISE_MOMENTUM_GEV) & (hits > 0)):
            r = np.round(np.hypot(*ev.points[ev.track_id == t, 1:3].T), 2)
            layers = np.unique(r).size
            if hits[t] > 2 * layers:  # a layer crossed more than twice: more than one turn
                loopers += 1
                assert not ev.noise[ev.track_id == t].any()
    assert loopers > 20
    for ev in simulate_events(30, seed=5, cfg=SimulatorConfig(**IDEAL, secondaries_mean=0.0)):
        assert np.bincount(ev.track_id).max() <= 48  # the paper profile: one crossing per layer


def test_noise_labels_are_the_points_of_particles_below_60_mev(sphenix_events: list) -> None:
    noise, total, slow_primary_pts = 0, 0, 0
    for ev in sphenix_events[:100]:
        p = np.linalg.norm(ev.tracks.momentum.astype(np.float64), axis=1)
        np.testing.assert_array_equal(ev.noise, (p[ev.track_id] < NOISE_MOMENTUM_GEV).astype(np.uint8))
        noise, total = noise + int(ev.noise.sum()), total + ev.n_points
        slow_primary_pts += int(((p[ev.track_id] >= NOISE_MOMENTUM_GEV) & (p[ev.track_id] < 0.2)).sum())
    assert 0.05 < noise / total < 0.8 and slow_primary_pts > 0  # both kinds present, split at 60 MeV/c


def test_event_i_is_drawn_from_its_own_seed() -> None:
    cfg = sphenix_config()
    full = list(simulate_events(6, seed=11, cfg=cfg))
    again = simulate_event(cfg, np.random.default_rng([11, 4]))
    np.testing.assert_array_equal(again.points, full[4].points)
    np.testing.assert_array_equal(again.tracks.vertex, full[4].tracks.vertex)
    part = list(simulate_events(2, seed=11, cfg=cfg, start=4))
    np.testing.assert_array_equal(part[1].points, full[5].points)
    other = simulate_event(cfg, np.random.default_rng([12, 4]))
    assert other.points.shape != full[4].points.shape or not np.array_equal(other.points, full[4].points)


def test_profiles_by_name_and_bad_values() -> None:
    assert PROFILES[0] == "sphenix" and profile_config("paper") == SimulatorConfig()
    assert profile_config("small") == small_config() and profile_config("sphenix") == sphenix_config()
    assert profile_config("sphenix").multiple_scattering and not SimulatorConfig().multiple_scattering
    with pytest.raises(ValueError, match="profile 'cms': use one of sphenix, paper, small"):
        profile_config("cms")
    for field, value in (
        ("antilambda_fraction", 1.5),
        ("looper_turns", -1.0),
        ("gas_radiation_length_cm", 0),
    ):
        with pytest.raises(ValueError, match=field):
            sphenix_config(**{field: value})
