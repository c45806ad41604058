"""Physics helpers of the detector simulator: Bethe-Bloch energy loss, helices in a solenoid, Landau samples.

Pure functions over numpy arrays, vectorised over tracks (and layers); units: GeV, cm, tesla.

    >>> radius_cm = helix_radius_cm(pt_gev=np.array([1.0]), b_tesla=1.4)   # 238.1 cm
    >>> rel = relative_dedx(np.array([0.5 / 0.938]), medium)               # a slow proton: ~ 5x a MIP
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Physical constants (PDG Review, "Passage of particles through matter").
K_MEV_CM2_PER_MOL = 0.307075  # 4 pi N_A r_e^2 m_e c^2
ELECTRON_MASS_MEV = 0.51099895
CURVATURE_CONSTANT = 0.299792458  # R[m] = pT[GeV] / (0.3 B[T]): c in units of GeV / (T m)
EULER_GAMMA = 0.5772156649
MOYAL_MEAN = EULER_GAMMA + np.log(2.0)  # mean of the standard Moyal distribution


@dataclass(frozen=True)
class Medium:
    """What Bethe-Bloch needs of the gas: Z/A, mean excitation energy, Sternheimer density-effect terms."""

    z_over_a: float
    excitation_ev: float
    x0: float
    x1: float
    a: float
    k: float
    cbar: float
    tcut_mev: float  # restricted energy loss: delta rays above this leave the pad row (PDG eq. 34.12)
    min_beta_gamma: float  # below this Bethe-Bloch fails (shell corrections, charge pick-up); clamp there


def density_effect(beta_gamma: np.ndarray, m: Medium) -> np.ndarray:
    """Sternheimer's delta(beta*gamma) (PDG eq. 34.7) for a non-conductor (delta_0 = 0)."""
    x = np.log10(beta_gamma)
    full = 2.0 * np.log(10.0) * x - m.cbar
    mid = full + m.a * np.clip(m.x1 - x, 0.0, None) ** m.k
    return np.where(x >= m.x1, full, np.where(x >= m.x0, mid, 0.0))


def restricted_dedx(beta_gamma: np.ndarray, mass_gev: np.ndarray, m: Medium) -> np.ndarray:
    """Mean restricted energy loss [MeV cm^2/g] of a unit-charge particle (PDG eq. 34.12).

    A TPC pad row measures the restricted loss (energetic delta rays escape it), so the Fermi plateau of
    electrons sits ~1.5x above the minimum instead of rising without bound.
    """
    bg = np.maximum(beta_gamma, m.min_beta_gamma)
    b2 = bg**2 / (1.0 + bg**2)
    gamma = np.sqrt(1.0 + bg**2)
    ratio = ELECTRON_MASS_MEV / (mass_gev * 1e3)
    tmax = 2.0 * ELECTRON_MASS_MEV * bg**2 / (1.0 + 2.0 * gamma * ratio + ratio**2)
    tup = np.minimum(m.tcut_mev, tmax)
    i_mev = m.excitation_ev * 1e-6
    log_term = 0.5 * np.log(2.0 * ELECTRON_MASS_MEV * bg**2 * tup / i_mev**2)
    bracket = log_term - 0.5 * b2 * (1.0 + tup / tmax) - 0.5 * density_effect(bg, m)
    return K_MEV_CM2_PER_MOL * m.z_over_a / b2 * bracket


@lru_cache(maxsize=16)
def _mip_dedx(m: Medium) -> float:
    """The minimum of the restricted loss of a pion over beta*gamma (the MIP reference)."""
    grid = np.logspace(-1, 3, 2000)
    return float(restricted_dedx(grid, np.full_like(grid, 0.13957), m).min())


def relative_dedx(beta_gamma: np.ndarray, mass_gev: np.ndarray, m: Medium) -> np.ndarray:
    """Mean restricted dE/dx in units of a minimum-ionising particle's."""
    return restricted_dedx(beta_gamma, mass_gev, m) / _mip_dedx(m)


def sample_moyal(rng: np.random.Generator, size: int) -> np.ndarray:
    """Standard Moyal samples (Landau approximation): X = -ln(Z^2), Z ~ N(0, 1), since exp(-X) ~ chi^2_1."""
    z = rng.standard_normal(size)
    return -np.log(np.maximum(z * z, 1e-300))


def helix_radius_cm(pt_gev: np.ndarray, b_tesla: float) -> np.ndarray:
    """Transverse radius of curvature: R[m] = pT[GeV] / (0.3 B[T]); returned in cm."""
    return 100.0 * pt_gev / (CURVATURE_CONSTANT * b_tesla)


@dataclass(frozen=True)
class Helices:
    """Transverse circles of helices: centre (cx, cy), radius, start angle about the centre, turning sense."""

    cx: np.ndarray  # (t,) cm
    cy: np.ndarray  # (t,) cm
    radius: np.ndarray  # (t,) cm
    alpha0: np.ndarray  # (t,) angle of (start - centre)
    sense: np.ndarray  # (t,) +1 anticlockwise, -1 clockwise (seen from +z)


def build_helices(
    x0: np.ndarray, y0: np.ndarray, px: np.ndarray, py: np.ndarray, charge: np.ndarray, b_tesla: float
) -> Helices:
    """Helices of charged particles starting at (x0, y0) with transverse momentum (px, py) in B = B z-hat.

    The Lorentz force q v x B bends a positive charge clockwise for B along +z, so the centre lies at
    start + q R (sin phi, -cos phi) and the particle turns with angular sense -q.
    """
    pt = np.hypot(px, py)
    radius = helix_radius_cm(pt, b_tesla)
    sin_phi, cos_phi = py / pt, px / pt
    q = np.sign(charge).astype(np.float64)
    cx = x0 + q * radius * sin_phi
    cy = y0 - q * radius * cos_phi
    alpha0 = np.arctan2(y0 - cy, x0 - cx)
    return Helices(cx=cx, cy=cy, radius=radius, alpha0=alpha0, sense=-q)


def reachable_layers(h: Helices, radii: np.ndarray) -> np.ndarray:
    """(t, L) whether each helix's circle meets each layer cylinder: |d - R| <= r <= d + R."""
    d = np.hypot(h.cx, h.cy)[:, None]  # (t, 1) distance of the centre from the beam line
    big_r = h.radius[:, None]
    return (radii[None, :] >= np.abs(d - big_r)) & (radii[None, :] <= d + big_r)


def layer_crossings(
    h: Helices, track: np.ndarray, r: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both intersections of helix `track[i]`'s circle with the cylinder of radius `r[i]`, analytically.

    Pairs must be reachable (`reachable_layers`). Returns (psi, x, y), each (m, 2): the turning angle in
    [0, 2 pi) from the start to each crossing, and the crossing points.
    """
    cx, cy, big_r = h.cx[track], h.cy[track], h.radius[track]
    d = np.hypot(cx, cy)  # (m,)
    a = (r * r - big_r * big_r + d * d) / (2.0 * d)  # projection of the crossings on the centre axis
    hh = np.sqrt(np.maximum(r * r - a * a, 0.0))  # half the chord between them
    ux, uy = cx / d, cy / d  # unit vector towards the centre
    sign = np.array([1.0, -1.0])  # (2,) the two crossings
    x = (a * ux)[:, None] - (hh * uy)[:, None] * sign  # (m, 2)
    y = (a * uy)[:, None] + (hh * ux)[:, None] * sign
    beta = np.arctan2(y - cy[:, None], x - cx[:, None])
    psi = np.mod(h.sense[track, None] * (beta - h.alpha0[track, None]), 2.0 * np.pi)
    return psi, x, y


def crossing_cos_alpha(
    x: np.ndarray, y: np.ndarray, cx: np.ndarray, cy: np.ndarray, radius: np.ndarray
) -> np.ndarray:
    """|cos| of the angle between the track's transverse direction at (x, y) and the radial direction.

    The tangent is perpendicular to (P - c), so cos(alpha) = |c_y P_x - c_x P_y| / (R r).
    """
    r = np.hypot(x, y)
    return np.abs(cy * x - cx * y) / (radius * r)


def highland_theta0(p_gev: np.ndarray, beta: np.ndarray, x_over_x0: np.ndarray) -> np.ndarray:
    """RMS plane-projected multiple-scattering angle [rad] of a unit charge (Highland; PDG eq. 34.15).

        theta0 = 13.6 MeV / (beta c p) * sqrt(x/X0) * [1 + 0.038 ln(x / (X0 beta^2))]

    Accurate to 11 % for 1e-3 < x/X0 < 100. The formula is for the total thickness: a random walk over
    steps draws each step's variance as theta0(x_after)^2 - theta0(x_before)^2, so the accumulated
    variance equals Highland's at every depth (summing per-step theta0^2 would underestimate the log term).
    """
    x = np.maximum(x_over_x0, 1e-12)
    log_term = np.maximum(1.0 + 0.038 * np.log(x / beta**2), 0.0)
    return 0.0136 / (beta * p_gev) * np.sqrt(x) * log_term


def two_body_momentum(mass: float, m1: float, m2: float) -> float:
    """Daughter momentum p* [GeV] in the rest frame of a two-body decay M -> m1 m2 (PDG kinematics 49.17)."""
    return float(np.sqrt((mass**2 - (m1 + m2) ** 2) * (mass**2 - (m1 - m2) ** 2)) / (2.0 * mass))


def boost_from_rest(
    p_star: np.ndarray, e_star: np.ndarray, parent_p: np.ndarray, parent_m: np.ndarray
) -> np.ndarray:
    """(n, 3) lab momenta of daughters with rest-frame momenta `p_star` (n, 3), energies `e_star` (n,).

    Lorentz boost along the parent's momentum (n, 3): p = p* + [(gamma - 1) (p*.n) + gamma beta E*] n.
    """
    p = np.linalg.norm(parent_p, axis=1)
    e = np.sqrt(p**2 + parent_m**2)
    gamma, beta = e / parent_m, p / e
    n = parent_p / np.maximum(p, 1e-12)[:, None]
    along = np.einsum("ij,ij->i", p_star, n)
    return p_star + ((gamma - 1.0) * along + gamma * beta * e_star)[:, None] * n


def sample_tsallis_pt(
    rng: np.random.Generator, n: int, t_gev: float, power: float, pt_max_gev: float
) -> np.ndarray:
    """(n,) pT [GeV] from dN/dpT ~ pT (1 + pT/(nT))^-n, clipped at pt_max.

    pT/(nT) is beta-prime(2, n-2) distributed, i.e. a ratio of Gamma variates.
    """
    nt = power * t_gev
    return np.minimum(nt * rng.gamma(2.0, size=n) / rng.gamma(power - 2.0, size=n), pt_max_gev)
