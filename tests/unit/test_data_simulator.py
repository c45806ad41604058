"""The detector simulator against its physics: helix curvature, curling, Bethe-Bloch, labels, seeds."""

from __future__ import annotations

import numpy as np
import pytest

from scaling.config import field_docs, from_dict, to_dict
from scaling.data import physics
from scaling.data.schema import NOISE_MOMENTUM_GEV, PID_NAMES
from scaling.data.simulator import (
    SPECIES_MASS_GEV,
    SimulatorConfig,
    layer_radii,
    medium,
    simulate_event,
    simulate_events,
    small_config,
    species_fractions,
)

PRIMARIES_ONLY = {"secondaries_mean": 0.0}
IDEAL = {"sigma_rphi_cm": 0.0, "sigma_z_cm": 0.0, "hit_efficiency": 1.0, **PRIMARIES_ONLY}


def fit_circle(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Algebraic (Kasa) least-squares circle: x^2 + y^2 + D x + E y + F = 0 -> (cx, cy, R)."""
    a = np.stack([x, y, np.ones_like(x)], axis=1)
    d, e, f = np.linalg.lstsq(a, -(x * x + y * y), rcond=None)[0]
    cx, cy = -d / 2, -e / 2
    return cx, cy, float(np.sqrt(cx * cx + cy * cy - f))


def tracks_with_hits(events: list, min_hits: int) -> list[tuple]:
    """(event, track index, hit mask) for every track with at least `min_hits` points."""
    out = []
    for ev in events:
        counts = np.bincount(ev.track_id, minlength=len(ev.tracks))
        out += [(ev, t, ev.track_id == t) for t in np.flatnonzero(counts >= min_hits)]
    return out


@pytest.mark.parametrize(("overrides", "tolerance"), [(IDEAL, 2e-3), (PRIMARIES_ONLY, 0.03)])
def test_fitted_radius_and_bending_sense_follow_pt_over_0_3_b(overrides: dict, tolerance: float) -> None:
    cfg = SimulatorConfig(tsallis_t_gev=0.08, **overrides)  # softer pT: measurable sagitta over 48 cm
    events = list(simulate_events(20, seed=1, cfg=cfg))
    rel, sense_ok = [], []
    for ev, t, mask in tracks_with_hits(events, min_hits=30):
        px, py, _ = ev.tracks.momentum[t].astype(np.float64)
        pt = np.hypot(px, py)
        if pt > 0.6:
            continue
        x, y = ev.points[mask, 1].astype(np.float64), ev.points[mask, 2].astype(np.float64)
        cx, cy, radius = fit_circle(x, y)
        expected = 100.0 * pt / (0.3 * cfg.b_field_t)  # R[m] = pT / (0.3 B)
        rel.append(radius / expected - 1.0)
        q = ev.tracks.charge[t]
        # The Lorentz force bends a positive track clockwise: centre = vertex + q R (sin phi, -cos phi).
        sense_ok.append(np.sign(cx * py - cy * px) == np.sign(q))
    rel = np.abs(np.asarray(rel))
    assert len(rel) > 50
    assert np.median(rel) < tolerance / 2 and np.quantile(rel, 0.9) < 2 * tolerance
    assert all(sense_ok)


def test_primaries_below_60_mev_never_reach_the_first_layer() -> None:
    cfg = SimulatorConfig(tsallis_t_gev=0.02, tsallis_n=20.0, multiplicity_mean=60.0, **PRIMARIES_ONLY)
    r_first = layer_radii(cfg)[0]
    pt_needed = 0.3 * cfg.b_field_t * r_first / 2 / 100.0  # 2R >= r_first
    n_slow = 0
    for ev in simulate_events(10, seed=2, cfg=cfg):
        pt = np.hypot(ev.tracks.momentum[:, 0], ev.tracks.momentum[:, 1])
        p = np.linalg.norm(ev.tracks.momentum, axis=1)
        hits = np.bincount(ev.track_id, minlength=len(ev.tracks))
        slow = p < NOISE_MOMENTUM_GEV
        n_slow += int(slow.sum())
        assert not hits[slow].any() and not hits[pt < pt_needed * 0.999].any()
        assert hits[pt > pt_needed * 1.1].all()  # and those that can reach it do (no z exit at |eta| < 1.3)
        assert not ev.noise.any()
    assert n_slow > 20


def test_curling_track_stops_at_twice_its_radius() -> None:
    cfg = SimulatorConfig(tsallis_t_gev=0.06, **IDEAL)
    for ev in simulate_events(10, seed=3, cfg=cfg):
        pt = np.hypot(ev.tracks.momentum[:, 0], ev.tracks.momentum[:, 1])
        r = np.hypot(ev.points[:, 1], ev.points[:, 2])
        two_r = 2 * 100.0 * pt[ev.track_id] / (0.3 * cfg.b_field_t)
        assert np.all(r <= two_r + 0.05)  # vertex offsets are ~100 um


def test_bethe_bloch_orders_species_at_fixed_momentum() -> None:
    m = medium(SimulatorConfig())
    p = 0.5
    rel = physics.relative_dedx(p / SPECIES_MASS_GEV, SPECIES_MASS_GEV, m)
    by_name = dict(zip(PID_NAMES, rel, strict=True))
    assert by_name["proton"] > by_name["kaon"] > by_name["electron"] > by_name["pion"]
    assert 0.98 < by_name["pion"] < 1.05  # a 0.5 GeV pion is near minimum ionising
    assert 1.3 < by_name["electron"] < 1.7  # the restricted Fermi plateau of a gas
    bg = np.logspace(-0.5, 4, 400)
    curve = physics.relative_dedx(bg, np.full_like(bg, 0.1396), m)
    assert np.all(np.diff(curve[bg < 2.5]) < 0) and np.all(np.diff(curve[bg > 10]) > -1e-9)  # 1/beta^2, rise


def test_simulated_deposits_separate_species_at_fixed_momentum() -> None:
    fractions = {"fraction_other": 0.0, "fraction_pion": 0.25, "fraction_kaon": 0.25, "fraction_proton": 0.25}
    cfg = SimulatorConfig(multiplicity_mean=80.0, multiplicity_max=200, fraction_electron=0.25, **fractions,
                          **PRIMARIES_ONLY)  # fmt: skip
    medians: dict[int, list[float]] = {c: [] for c in range(5)}
    for ev in simulate_events(30, seed=4, cfg=cfg):
        p = np.linalg.norm(ev.tracks.momentum, axis=1)
        sel = (p[ev.track_id] > 0.45) & (p[ev.track_id] < 0.55)
        for c in range(1, 5):
            medians[c] += list(ev.points[sel & (ev.pid == c), 0])
    med = {PID_NAMES[c]: float(np.median(v)) for c, v in medians.items() if v}
    assert med["proton"] > med["kaon"] > med["electron"] > med["pion"]


def test_class_fractions_follow_the_configuration() -> None:
    cfg = SimulatorConfig(multiplicity_mean=40.0)
    counts, n_tracks, noise_pts, pts = np.zeros(5), 0, 0, 0
    for ev in simulate_events(40, seed=5, cfg=cfg):
        primary = np.linalg.norm(ev.tracks.vertex[:, :2], axis=1) < 1.0
        pid = np.abs(ev.tracks.pdg[primary])
        counts += [np.sum(pid == code) for code in (13, 211, 321, 2212, 11)]
        n_tracks += int(primary.sum())
        noise_pts += int(ev.noise.sum())
        pts += ev.n_points
        assert np.all(ev.pid[ev.noise == 1] == PID_NAMES.index("electron"))
    expected = species_fractions(cfg)
    sigma = np.sqrt(expected * (1 - expected) / n_tracks)
    assert np.all(np.abs(counts / n_tracks - expected) < 5 * sigma + 1e-9)
    assert 0.02 < noise_pts / pts < 0.8
    quiet = [ev.noise.sum() for ev in simulate_events(10, seed=5, cfg=SimulatorConfig(**PRIMARIES_ONLY))]
    assert sum(quiet) == 0


def test_points_inside_the_tpc_on_48_layers_with_wider_outer_spacing() -> None:
    cfg = SimulatorConfig(sigma_z_cm=0.0)
    radii = layer_radii(cfg)
    assert radii.size == 48 and np.all(np.diff(radii) > 0)
    spacing = np.diff(radii)
    assert spacing[:15].mean() < spacing[16:31].mean() < spacing[32:].mean()
    for ev in simulate_events(20, seed=6, cfg=cfg):
        ev.validate("simulated event")
        r = np.hypot(ev.points[:, 1], ev.points[:, 2])
        assert r.min() >= 30.0 and r.max() <= 78.0 and np.abs(ev.points[:, 3]).max() < 105.0
        # r*phi smearing rotates a point on its pad row: every radius is a layer radius
        assert np.abs(r[:, None] - radii[None, :]).min(axis=1).max() < 2e-3
        assert ev.points[:, 0].min() > 0


def test_noise_flag_and_truth_follow_the_track_table() -> None:
    for ev in simulate_events(20, seed=7, cfg=SimulatorConfig(secondaries_mean=6.0)):
        p = np.linalg.norm(ev.tracks.momentum.astype(np.float64), axis=1)
        assert ev.track_id.min() >= 0 and ev.track_id.max() < len(ev.tracks)
        np.testing.assert_array_equal(ev.noise, (p[ev.track_id] < NOISE_MOMENTUM_GEV).astype(np.uint8))
        code = {13: 0, 211: 1, 321: 2, 2212: 3, 11: 4}
        np.testing.assert_array_equal(ev.pid, [code[c] for c in np.abs(ev.tracks.pdg[ev.track_id])])
        assert set(np.unique(ev.tracks.charge)) <= {-1, 1}


def test_low_momentum_secondaries_loop_over_a_narrow_radial_range() -> None:
    cfg = SimulatorConfig(
        **(IDEAL | {"multiplicity_mean": 5.0, "secondaries_mean": 8.0, "secondaries_k": 5.0})
    )
    looped = 0
    for ev in simulate_events(10, seed=8, cfg=cfg):
        for t in np.flatnonzero(np.linalg.norm(ev.tracks.momentum, axis=1) < NOISE_MOMENTUM_GEV):
            mask = ev.track_id == t
            if mask.sum() < 2:
                continue
            r = np.hypot(ev.points[mask, 1], ev.points[mask, 2])
            pt = np.hypot(*ev.tracks.momentum[t, :2])
            assert r.max() - r.min() <= 2 * 100.0 * pt / (0.3 * cfg.b_field_t) + 1e-3
            n_layers = np.unique(np.round(r, 2)).size
            looped += int(mask.sum() > 2 * n_layers)  # more than one turn: layers crossed again
    assert looped > 5


def test_event_sizes_small_profile_and_paper_profile() -> None:
    small = np.array([ev.n_points for ev in simulate_events(60, seed=9, cfg=small_config())])
    assert 100 < np.median(small) < 1000 and small.max() < 4000
    paper = list(simulate_events(60, seed=9))
    sizes = np.array([ev.n_points for ev in paper])
    mult = np.array([np.sum(np.linalg.norm(ev.tracks.vertex[:, :2], axis=1) < 1.0) for ev in paper])
    assert mult.min() < 10 and mult.max() > 60
    assert np.median(sizes) > 500 and sizes.max() > 3 * np.median(sizes)


def test_seeds_and_slices_reproduce_events() -> None:
    cfg = small_config()
    full = list(simulate_events(8, seed=11, cfg=cfg))
    part = list(simulate_events(3, seed=11, cfg=cfg, start=5))
    for a, b in zip(full[5:], part, strict=True):
        np.testing.assert_array_equal(a.points, b.points)
        np.testing.assert_array_equal(a.track_id, b.track_id)
        np.testing.assert_array_equal(a.tracks.momentum, b.tracks.momentum)
    again = simulate_event(cfg, np.random.default_rng([11, 2]))
    np.testing.assert_array_equal(again.points, full[2].points)
    other = next(simulate_events(1, seed=12, cfg=cfg, start=2))
    assert other.points.shape != full[2].points.shape or not np.array_equal(other.points, full[2].points)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("fraction_pion", 0.9),
        ("hit_efficiency", 1.5),
        ("module_edges_cm", (40.0, 30.0)),
        ("tsallis_n", 2.0),
        ("secondary_cos_theta_max", 1.2),
        ("landau_width", -0.1),
        ("b_field_t", 0.0),
        ("multiplicity_min", 200),
        ("energy_floor_adc", 5000.0),
        ("layers_per_module", 0),
    ],  # fmt: skip
)
def test_bad_configuration_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        SimulatorConfig(**{field: value})
    with pytest.raises(ValueError, match="start"):
        next(simulate_events(1, seed=0, start=-1))


def test_deposits_are_landau_like_with_the_bethe_bloch_mean() -> None:
    x = physics.sample_moyal(np.random.default_rng(0), 200_000)
    assert abs(x.mean() - physics.MOYAL_MEAN) < 0.03 and abs(x.std() - np.pi / np.sqrt(2)) < 0.05
    assert np.mean(x > x.mean() + 3 * x.std()) > 0.005  # a long upper tail, unlike a Gaussian
    cfg = SimulatorConfig(**PRIMARIES_ONLY)
    energy = np.concatenate([ev.points[:, 0] for ev in simulate_events(30, seed=10, cfg=cfg)])
    assert energy.min() >= cfg.energy_floor_adc and energy.max() <= cfg.energy_max_adc
    assert 0.8 * cfg.adc_per_mip < np.median(energy) < 3 * cfg.adc_per_mip  # mostly near-MIP pions
    assert 150 < energy.mean() < 500 and np.mean(energy > 3 * np.median(energy)) > 0.01


def test_ideal_hits_lie_on_the_helix_of_their_track() -> None:
    cfg = SimulatorConfig(**(IDEAL | {"secondaries_mean": 4.0}))
    for ev in simulate_events(10, seed=13, cfg=cfg):
        mom = ev.tracks.momentum.astype(np.float64)[ev.track_id]
        vtx = ev.tracks.vertex.astype(np.float64)[ev.track_id]
        q = ev.tracks.charge[ev.track_id].astype(np.float64)
        pt = np.hypot(mom[:, 0], mom[:, 1])
        radius = 100.0 * pt / (physics.CURVATURE_CONSTANT * cfg.b_field_t)
        cx, cy = vtx[:, 0] + q * radius * mom[:, 1] / pt, vtx[:, 1] - q * radius * mom[:, 0] / pt
        x, y, z = (ev.points[:, i].astype(np.float64) for i in (1, 2, 3))
        np.testing.assert_allclose(np.hypot(x - cx, y - cy), radius, rtol=1e-4, atol=2e-3)
        # z advances R pz/pT per radian turned (clockwise for q > 0): residual turns are whole numbers.
        turned = -q * (np.arctan2(y - cy, x - cx) - np.arctan2(vtx[:, 1] - cy, vtx[:, 0] - cx))
        turns = ((z - vtx[:, 2]) / (radius * mom[:, 2] / pt) - turned) / (2 * np.pi)
        assert np.abs(turns - np.round(turns)).max() < 1e-3
        assert np.round(turns).min() >= -1 and np.round(turns).max() <= cfg.secondary_max_turns + 1


def test_every_constant_is_a_documented_field_that_round_trips() -> None:
    docs = field_docs(SimulatorConfig)
    assert len(docs) > 40 and all(isinstance(text, str) and len(text) > 10 for text in docs.values())
    cfg = small_config(b_field_t=1.5)
    assert from_dict(SimulatorConfig, to_dict(cfg)) == cfg
