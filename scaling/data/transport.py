"""Transport beyond ideal helices (the `sphenix` profile): V0 decays, loopers and multiple scattering.

Each piece is off in `SimulatorConfig()` (the `paper` profile) and draws no random numbers there, so datasets
made before it existed are reproduced bit for bit.

* V0 decays: K0S -> pi+ pi- and Lambda (anti-Lambda) -> p pi- (p-bar pi+), produced in proportion to the
  charged primaries, decaying after an exponential flight of mean beta*gamma*c*tau along their momentum; the
  daughters are charged tracks from a displaced vertex, with two-body kinematics boosted to the lab.
* Loopers: a primary or decay daughter whose transverse circle stays inside the TPC (d + R < outer edge,
  d the distance of its centre from the beam line) keeps both crossings of every layer on every turn, up
  to `looper_turns` turns or the end of the drift volume, instead of only the outgoing half-turn.
* Multiple scattering: a random walk of the track direction, one kink per layer crossing for the gas
  traversed since the previous one (plus one kink for the material inside the TPC), with the Highland
  width (PDG eq. 34.15); the walk moves each later crossing of the same track off the ideal helix.

    >>> parts = mark_loopers(cfg, parts, r_out=77.6)
    >>> x, y, z = scatter_crossings(cfg, parts, mass, track, x, y, z, psi, rng)

Not modelled: energy loss along the track (a looper keeps its momentum), the inner material crossed again
on every turn of a looper, charged-hadron decays in flight, hadronic interactions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from scaling.data import physics

TWO_PI = 2.0 * np.pi
PION_MASS_GEV, PROTON_MASS_GEV = 0.1395704, 0.9382721
# PDG 2024: mass [GeV], c*tau [cm], branching fraction into the charged two-body mode.
K0S_MASS_GEV, K0S_CTAU_CM, K0S_BR_PIPI = 0.497611, 2.6844, 0.6920
LAMBDA_MASS_GEV, LAMBDA_CTAU_CM, LAMBDA_BR_PPI = 1.115683, 7.89, 0.641
PION_PID, PROTON_PID = 1, 3


@dataclass(frozen=True)
class Particles:
    """Charged particles at production: the rows of the event's TrackTable."""

    momentum: np.ndarray  # (t, 3) GeV
    vertex: np.ndarray  # (t, 3) cm
    pid: np.ndarray  # (t,) int in 0..4
    charge: np.ndarray  # (t,) +-1
    max_psi: np.ndarray  # (t,) largest turning angle followed: half a turn for tracks that leave, else loops
    first_only: np.ndarray  # (t,) bool: record only the outgoing crossing of each layer (tracks that leave)


def concat_particles(a: Particles, b: Particles) -> Particles:
    """Rows of a, then rows of b."""
    return Particles(
        **{
            f.name: np.concatenate([getattr(a, f.name), getattr(b, f.name)])
            for f in dataclasses.fields(Particles)
        }
    )


def sample_v0_daughters(
    cfg: Any, n_primaries: int, vertex: np.ndarray, rng: np.random.Generator
) -> Particles:
    """Charged daughters of K0S and Lambda decays: rows (positive-or-baryon daughter, pion) per decay.

    Counts are Poisson with means `k0s_per_primary` and `lambda_per_primary` times the charged primaries;
    pT follows the primaries' Tsallis spectrum, eta and phi are uniform. The decay point lies at
    L = (p / M) c tau * Exp(1) from the collision vertex. In the rest frame the daughters are back to back,
    isotropic, with p* of `physics.two_body_momentum` (206 MeV for K0S, 101 MeV for Lambda); only decays into
    the charged mode (branching fractions above) leave tracks.
    """
    n_k, n_l = rng.poisson(n_primaries * np.array([cfg.k0s_per_primary, cfg.lambda_per_primary]))
    n = int(n_k + n_l)
    is_l = np.arange(n) >= n_k
    pt = physics.sample_tsallis_pt(rng, n, cfg.tsallis_t_gev, cfg.tsallis_n, cfg.pt_max_gev)
    eta = rng.uniform(-cfg.eta_max, cfg.eta_max, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    u_mode, u_anti, cos_t, phi_t = rng.random((4, n))
    flight = rng.exponential(size=n)
    charged = u_mode < np.where(is_l, LAMBDA_BR_PPI, K0S_BR_PIPI)
    anti = is_l & (u_anti < cfg.antilambda_fraction)
    mass = np.where(is_l, LAMBDA_MASS_GEV, K0S_MASS_GEV)
    parent = np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)], axis=1)[charged]
    p = pt[charged] * np.cosh(eta[charged])
    decay_cm = p / mass[charged] * np.where(is_l, LAMBDA_CTAU_CM, K0S_CTAU_CM)[charged] * flight[charged]
    decay_vertex = vertex[None, :] + decay_cm[:, None] * parent / p[:, None]
    # Daughter 1: pi+ (K0S), proton (Lambda) or anti-proton (anti-Lambda); daughter 2: the opposite pion.
    m1 = np.where(is_l, PROTON_MASS_GEV, PION_MASS_GEV)[charged]
    big_m = mass[charged]
    p_star = np.where(
        is_l[charged],
        physics.two_body_momentum(LAMBDA_MASS_GEV, PROTON_MASS_GEV, PION_MASS_GEV),
        physics.two_body_momentum(K0S_MASS_GEV, PION_MASS_GEV, PION_MASS_GEV),
    )
    e1_star = (big_m**2 + m1**2 - PION_MASS_GEV**2) / (2.0 * big_m)
    c = 2.0 * cos_t[charged] - 1.0
    s = np.sqrt(1.0 - c * c)
    ph = TWO_PI * phi_t[charged]
    rest = p_star[:, None] * np.stack([s * np.cos(ph), s * np.sin(ph), c], axis=1)
    p1 = physics.boost_from_rest(rest, e1_star, parent, big_m)
    q1 = np.where(anti[charged], -1, 1)
    m = int(charged.sum())
    pid1 = np.where(is_l[charged], PROTON_PID, PION_PID)
    return Particles(
        momentum=np.concatenate([p1, parent - p1]), vertex=np.concatenate([decay_vertex, decay_vertex]),
        pid=np.concatenate([pid1, np.full(m, PION_PID)]), charge=np.concatenate([q1, -q1]).astype(np.int64),
        max_psi=np.full(2 * m, np.pi), first_only=np.ones(2 * m, dtype=bool),
    )  # fmt: skip


def mark_loopers(cfg: Any, parts: Particles, r_out: float) -> Particles:
    """Let tracks that would leave after half a turn loop when their circle stays inside r < r_out.

    A helix whose centre lies at distance d from the beam line spans radii |d - R| .. d + R; if d + R < r_out
    it never reaches the outer field cage and turns inside the TPC until it leaves through an end cap or
    makes `looper_turns` turns. Secondaries (already looping) are left as they are.
    """
    if cfg.looper_turns <= 0:
        return parts
    pt = np.maximum(np.hypot(parts.momentum[:, 0], parts.momentum[:, 1]), 1e-12)
    hel = physics.build_helices(
        parts.vertex[:, 0], parts.vertex[:, 1], parts.momentum[:, 0], parts.momentum[:, 1], parts.charge,
        cfg.b_field_t,
    )  # fmt: skip
    loops = parts.first_only & (np.hypot(hel.cx, hel.cy) + hel.radius < r_out) & (pt > 1e-9)
    return dataclasses.replace(
        parts, first_only=parts.first_only & ~loops,
        max_psi=np.where(loops, TWO_PI * cfg.looper_turns, parts.max_psi),
    )  # fmt: skip


def _exclusive_cumsum(values: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Per-group sums of the earlier elements; groups are runs that begin where `start` is True."""
    total = np.cumsum(values, axis=-1)
    before = total - values
    first = np.maximum.accumulate(np.where(start, np.arange(start.size), 0))
    return before - before[..., first]


def scatter_crossings(
    cfg: Any, parts: Particles, mass_gev: np.ndarray, track: np.ndarray, x: np.ndarray, y: np.ndarray,
    z: np.ndarray, psi: np.ndarray, rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Crossings (x, y, z) moved by a multiple-scattering random walk of each track's direction.

    Crossing j of a track (turning angle psi_j, path s_j = R psi_j / cos(lambda) from the vertex, lambda the
    dip angle) carries a kink for the gas since the previous crossing, in each of two planes, of variance
    theta0(x_j)^2 - theta0(x_{j-1})^2 with theta0 from Highland (PDG eq. 34.15) and x_j = x_inner + s_j / X0
    the material traversed; x_inner (`inner_material_x0`, lumped at `inner_material_radius_cm`) counts for
    tracks produced inside that radius. A kink dphi = theta_T / cos(lambda) in the transverse plane rotates
    the rest of the circle about the kink point, which moves a later point at psi_k off the ideal circle by
    R dphi sin(psi_k - psi_j); a dip kink dlambda = theta_L shifts its z by R (psi_k - psi_j) dlambda /
    cos^2(lambda). A point off the circle by d meets its pad row shifted along the row by
    d / (phi-hat . n-hat), n-hat the outward normal of the circle, the factor capped at `path_factor_max`
    (near-tangent crossings).
    The displacement, like the kink width, scales as 1 / (beta p).
    """
    n = track.size
    if n == 0:
        return x, y, z
    order = np.lexsort((psi, track))
    t, ps = track[order], psi[order]
    start = np.r_[True, t[1:] != t[:-1]]
    p = np.sqrt(np.einsum("ij,ij->i", parts.momentum, parts.momentum))
    pt = np.hypot(parts.momentum[:, 0], parts.momentum[:, 1])
    beta = p / np.sqrt(p * p + mass_gev**2)
    hel = physics.build_helices(
        parts.vertex[:, 0], parts.vertex[:, 1], parts.momentum[:, 0], parts.momentum[:, 1], parts.charge,
        cfg.b_field_t,
    )  # fmt: skip
    cos_l = pt / np.maximum(p, 1e-12)  # (tracks,)
    inner = np.hypot(parts.vertex[:, 0], parts.vertex[:, 1]) < cfg.inner_material_radius_cm
    x_in = np.where(inner, cfg.inner_material_x0, 0.0)  # (tracks,)
    radius, cl = hel.radius[t], cos_l[t]
    depth = x_in[t] + radius * ps / cl / cfg.gas_radiation_length_cm
    theta = physics.highland_theta0(p[t], beta[t], depth)
    theta_in = physics.highland_theta0(p, beta, x_in)  # (tracks,): zero where x_in = 0
    before = np.where(start, theta_in[t], np.r_[0.0, theta[:-1]])
    sigma = np.sqrt(np.maximum(theta**2 - before**2, 0.0))
    g = rng.standard_normal((2, n)) * sigma  # kink angles: transverse-plane, dip
    g_in = rng.standard_normal((2, p.size)) * theta_in
    k_t = g[0] / cl  # azimuthal kinks
    sums = _exclusive_cumsum(np.stack([k_t * np.cos(ps), k_t * np.sin(ps), g[1], g[1] * ps]), start)
    # The inner material's kink, at the turning angle where a track from the beam line reaches its radius.
    psi_in = 2.0 * np.arcsin(np.minimum(cfg.inner_material_radius_cm / (2.0 * hel.radius), 1.0))[t]
    d_rho = radius * (np.sin(ps) * sums[0] - np.cos(ps) * sums[1] + g_in[0, t] / cl * np.sin(ps - psi_in))
    d_z = radius / cl**2 * (ps * sums[2] - sums[3] + g_in[1, t] * (ps - psi_in))
    xs, ys = x[order], y[order]
    r = np.hypot(xs, ys)
    normal_phi = (hel.cx[t] * ys - hel.cy[t] * xs) / (r * radius)  # phi-hat . n-hat
    factor = np.sign(normal_phi) / np.maximum(np.abs(normal_phi), 1.0 / cfg.path_factor_max)
    dphi = d_rho * factor / r
    out_x, out_y, out_z = np.empty_like(x), np.empty_like(y), np.empty_like(z)
    out_x[order] = xs * np.cos(dphi) - ys * np.sin(dphi)
    out_y[order] = xs * np.sin(dphi) + ys * np.cos(dphi)
    out_z[order] = z[order] + d_z
    return out_x, out_y, out_z
