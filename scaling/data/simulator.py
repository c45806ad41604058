"""The built-in detector simulator: p+p-like events in an sPHENIX-like TPC, the default embedded dataset.

Charged primaries from a common vertex follow helices in a 1.4 T solenoid and leave one spacepoint per crossed
readout layer (48 layers, three modules of 16, r ~ 30-78 cm, |z| < 105 cm) until they curl (2R < r) or leave
the drift volume; low-momentum secondaries (delta electrons, photon conversions) born inside the gas loop and
leave many points over a narrow radial range. Each point's energy is the Bethe-Bloch mean restricted dE/dx
(species-dependent through beta*gamma = p/m) times the path length through the pad row, with Moyal (Landau)
fluctuations, in ADC-like units. Points of particles below 60 MeV/c are labelled noise (schema rule).

Profiles (`profile_config`): `sphenix` adds what the paper's TPCpp-10M events hold beyond ideal helices
(transport.py: K0S and Lambda decays with displaced vertices, low-pT primaries looping inside the TPC,
Highland multiple scattering) and is tuned to its event sizes: the default of the scaling studies. `paper`
is `SimulatorConfig()` (ideal helices, unchanged since the first datasets); `small` is for quick tests.

    >>> from scaling.data.simulator import SimulatorConfig, simulate_events, small_config
    >>> for event in simulate_events(4, seed=0, cfg=small_config()):
    ...     print(event.n_points, len(event.tracks))

Event i of `simulate_events(n, seed, start=s)` is drawn from `default_rng([seed, s + i])` alone, so any
slice of a dataset is reproducible without generating what comes before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from scaling.config import check_order, check_positive, check_range, doc
from scaling.data import physics
from scaling.data.schema import NOISE_MOMENTUM_GEV, Event, TrackTable
from scaling.data.transport import (
    Particles,
    concat_particles,
    mark_loopers,
    sample_v0_daughters,
    scatter_crossings,
)

# Species in PID-class order (schema.PID_NAMES: other, pion, kaon, proton, electron); "other" are muons.
SPECIES_MASS_GEV = np.array([0.1056584, 0.1395704, 0.493677, 0.9382721, 0.000511])
SPECIES_PDG = np.array([13, 211, 321, 2212, 11])  # PDG magnitude; sign from the charge (pdg_codes)
ELECTRON_PID = 4
TWO_PI = 2.0 * np.pi


@dataclass(kw_only=True)
class SimulatorConfig:
    """Every physics constant of the simulator (sPHENIX TPC, p+p at 200 GeV, approximately)."""

    # Detector
    b_field_t: float = doc("solenoid field along z [T]", default=1.4)
    module_edges_cm: tuple[float, ...] = doc(
        "radial edges of the TPC readout modules [cm]; layers are the centres of equal slices of each",
        default=(30.3, 40.5, 57.7, 77.6),
    )
    layers_per_module: int = doc("readout layers (pad rows) per module", default=16)
    z_half_length_cm: float = doc(
        "half-length of the drift volume [cm]; points need |z| < this", default=105.0
    )
    hit_efficiency: float = doc("probability that a crossed layer records a spacepoint", default=0.95)
    sigma_rphi_cm: float = doc("Gaussian position smearing along r*phi [cm]", default=0.015)
    sigma_z_cm: float = doc("Gaussian position smearing along z [cm]", default=0.1)
    # Collision
    vertex_sigma_z_cm: float = doc("Gaussian spread of the collision vertex along z [cm]", default=10.0)
    vertex_sigma_xy_cm: float = doc("Gaussian spread of the collision vertex in x and y [cm]", default=0.01)
    multiplicity_mean: float = doc("mean number of charged primaries (negative binomial)", default=30.0)
    multiplicity_k: float = doc("negative-binomial shape k (smaller = broader)", default=2.0)
    multiplicity_min: int = doc("fewest charged primaries per event", default=2)
    multiplicity_max: int = doc("most charged primaries per event", default=120)
    fraction_other: float = doc("fraction of primaries that are muons (PID class 0, other)", default=0.03)
    fraction_pion: float = doc("fraction of primaries that are charged pions", default=0.72)
    fraction_kaon: float = doc("fraction of primaries that are charged kaons", default=0.12)
    fraction_proton: float = doc("fraction of primaries that are (anti)protons", default=0.08)
    fraction_electron: float = doc("fraction of primaries that are electrons/positrons", default=0.05)
    tsallis_t_gev: float = doc("Tsallis temperature T of dN/dpT ~ pT (1 + pT/(nT))^-n [GeV]", default=0.15)
    tsallis_n: float = doc("Tsallis power n (mean pT = 2 n T / (n - 3))", default=7.0)
    pt_max_gev: float = doc("largest primary pT [GeV]; the spectrum is clipped there", default=20.0)
    eta_max: float = doc("primaries are uniform in pseudorapidity |eta| < eta_max", default=1.3)
    # Secondaries (the noise class)
    secondaries_mean: float = doc(
        "mean number of low-momentum secondaries per event (looping-hit rate)", default=3.0
    )
    secondaries_per_primary: float = doc(
        "extra mean secondaries per charged primary (material interactions scale with the tracks)",
        default=0.0,
    )
    secondaries_k: float = doc(
        "negative-binomial shape k of the secondary count (small = rare busy events)", default=0.3
    )
    conversion_fraction: float = doc(
        "fraction of secondaries that are photon conversions (e+e- pairs)", default=0.3
    )
    secondary_p_min_gev: float = doc(
        "lowest momentum of a delta electron or conversion leg [GeV]", default=0.005
    )
    delta_p_max_gev: float = doc("highest delta-electron momentum [GeV] (log-uniform)", default=0.058)
    conversion_e_max_gev: float = doc("highest converting-photon energy [GeV] (log-uniform)", default=0.1)
    secondary_max_turns: float = doc(
        "turns a looping secondary makes before it stops in the gas", default=12.0
    )
    # Transport beyond ideal helices (transport.py); the defaults switch each off (the paper profile)
    looper_turns: float = doc(
        "turns followed by a primary or decay daughter whose circle stays inside the TPC; 0 = half a turn",
        default=0.0,
    )
    k0s_per_primary: float = doc("mean K0S per charged primary (Poisson); 0 = no V0 decays", default=0.0)
    lambda_per_primary: float = doc(
        "mean Lambda + anti-Lambda per charged primary (Poisson); 0 = none", default=0.0
    )
    antilambda_fraction: float = doc(
        "share of anti-Lambda among the Lambdas (STAR p+p 200 GeV: 0.040 / (0.044 + 0.040))", default=0.477
    )
    multiple_scattering: bool = doc(
        "random-walk the crossings of every track by Highland multiple scattering", default=False
    )
    gas_radiation_length_cm: float = doc(
        "radiation length X0 of the TPC gas [cm] (Ne/CF4 50:50 at NTP: ~150 m)", default=15000.0
    )
    inner_material_x0: float = doc(
        "material inside the TPC (beam pipe, silicon, field cage) in units of X0, one kink", default=0.0
    )
    inner_material_radius_cm: float = doc(
        "radius at which the inner material's kink is applied [cm]", default=10.0
    )
    secondary_cos_theta_max: float = doc(
        "|cos theta| limit of secondary directions (uniform below)", default=0.5
    )
    # Energy deposit (Bethe-Bloch in the gas; PDG neon values, the main component of Ne/CF4)
    gas_z_over_a: float = doc("Z/A of the TPC gas", default=0.49555)
    gas_excitation_ev: float = doc("mean excitation energy I of the gas [eV]", default=137.0)
    sternheimer_x0: float = doc("Sternheimer density-effect x0", default=2.0735)
    sternheimer_x1: float = doc("Sternheimer density-effect x1", default=4.6421)
    sternheimer_a: float = doc("Sternheimer density-effect a", default=0.08064)
    sternheimer_k: float = doc("Sternheimer density-effect k", default=3.5771)
    sternheimer_cbar: float = doc("Sternheimer density-effect C-bar", default=11.9041)
    dedx_tcut_kev: float = doc(
        "restricted-loss cut: delta rays above it escape the pad row [keV]", default=10.0
    )
    dedx_min_beta_gamma: float = doc(
        "beta*gamma below which dE/dx is clamped (Bethe-Bloch invalid)", default=0.05
    )
    adc_per_mip: float = doc(
        "mean ADC-like energy of a MIP crossing a layer radially at eta = 0", default=125.0
    )
    landau_width: float = doc("Moyal scale / most probable value of the per-point fluctuation", default=0.3)
    path_factor_max: float = doc(
        "cap on the path-length factor 1/(cos alpha sin theta) of a crossing", default=4.0
    )
    energy_floor_adc: float = doc("smallest recorded energy (threshold) [ADC-like]", default=1.0)
    energy_max_adc: float = doc(
        "largest recorded energy: the readout saturates (slow protons) [ADC-like]", default=3000.0
    )

    def __post_init__(self) -> None:
        edges = np.asarray(self.module_edges_cm, dtype=float)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0) or edges[0] <= 0:
            raise ValueError(
                f"module_edges_cm: need >= 2 increasing positive radii, got {self.module_edges_cm}"
            )
        check_positive(self, *_POSITIVE)
        check_positive(self, *_NON_NEGATIVE, allow_zero=True)
        check_range(self, *_UNIT, low=0, high=1)
        check_range(self, "tsallis_n", low=3, low_open=True, why="finite mean pT")
        check_range(self, "layers_per_module", low=1)
        check_order(self, "multiplicity_min", "multiplicity_max")
        check_order(self, "energy_floor_adc", "energy_max_adc", strict=True)
        fractions = species_fractions(self)
        if np.any(fractions < 0) or abs(fractions.sum() - 1.0) > 1e-6:
            raise ValueError(
                "fraction_other + fraction_pion + fraction_kaon + fraction_proton + fraction_electron: "
                f"each must be >= 0 and the sum 1, got sum {fractions.sum():.6f}"
            )
        if not self.secondary_p_min_gev < min(self.delta_p_max_gev, self.conversion_e_max_gev / 2):
            raise ValueError(
                "secondary_p_min_gev: must be below delta_p_max_gev and conversion_e_max_gev / 2"
            )


_POSITIVE = (
    "b_field_t", "z_half_length_cm", "tsallis_t_gev", "pt_max_gev", "eta_max", "adc_per_mip",
    "multiplicity_k", "secondaries_k", "secondary_max_turns", "path_factor_max", "secondary_p_min_gev",
    "gas_z_over_a", "gas_excitation_ev", "dedx_tcut_kev", "dedx_min_beta_gamma", "energy_max_adc",
    "gas_radiation_length_cm", "inner_material_radius_cm",
)  # fmt: skip
_NON_NEGATIVE = (
    "secondaries_mean", "sigma_rphi_cm", "sigma_z_cm", "vertex_sigma_z_cm", "vertex_sigma_xy_cm",
    "multiplicity_mean", "multiplicity_min", "landau_width", "energy_floor_adc", "looper_turns",
    "k0s_per_primary", "lambda_per_primary", "inner_material_x0",
    "secondaries_per_primary",
)  # fmt: skip
_UNIT = ("hit_efficiency", "conversion_fraction", "secondary_cos_theta_max", "antilambda_fraction")


def small_config(**overrides: object) -> SimulatorConfig:
    """A cheap profile for tests and the quickstart: a few hundred to ~2000 points per event."""
    base = {
        "multiplicity_mean": 10.0,
        "multiplicity_max": 30,
        "secondaries_mean": 0.6,
        "secondary_max_turns": 3.0,
    }
    return SimulatorConfig(**{**base, **overrides})  # type: ignore[arg-type]


def sphenix_config(**overrides: object) -> SimulatorConfig:
    """Events like the paper's TPCpp-10M (appendix A, Figure 7): the default profile of the scaling studies.

    Minimum-bias p+p at 200 GeV in 1.4 T: a broad negative-binomial charged multiplicity in the acceptance
    (mean 18, k = 1.2, 5 to 80), K0S and Lambda decays with displaced vertices (0.045 K0S and 0.028
    Lambda + anti-Lambda per charged primary: STAR's p+p yields at 200 GeV, PRC 75 064901, over
    dNch/deta ~ 3), low-pT primaries that loop inside the TPC for up to 20 turns,
    multiple scattering in 2 % X0 of inner material and in the gas, and looping delta electrons and
    conversions (the noise class) whose number grows with the primaries (0.3 + 0.06 per primary, k = 0.3)
    and which, emitted at |cos theta| < 0.25, turn up to 80 times before they leave through an end cap:
    these long spirals make the busiest events (about 1 % of events above 10 000 points, so 300 events
    reach that about 97 times in 100).
    Tuned so spacepoints per event span a few hundred to tens of thousands and tracks with hits span under
    10 to about 100 (`python -m scaling.data inspect` prints both beside the paper's statements).
    """
    base = {
        "multiplicity_mean": 18.0,
        "multiplicity_k": 1.2,
        "multiplicity_min": 5,
        "multiplicity_max": 80,
        "looper_turns": 20.0,
        "k0s_per_primary": 0.045,
        "lambda_per_primary": 0.028,
        "multiple_scattering": True,
        "inner_material_x0": 0.02,
        "secondaries_mean": 0.3,
        "secondaries_per_primary": 0.06,
        "secondaries_k": 0.3,
        "secondary_max_turns": 80.0,
        "secondary_cos_theta_max": 0.25,
    }
    return SimulatorConfig(**{**base, **overrides})  # type: ignore[arg-type]


PROFILES = ("sphenix", "paper", "small")  # `paper` is SimulatorConfig() itself


def profile_config(name: str) -> SimulatorConfig:
    """The named profile: `sphenix` (studies), `paper` (SimulatorConfig defaults), `small` (quickstart)."""
    if name == "sphenix":
        return sphenix_config()
    if name == "small":
        return small_config()
    if name == "paper":
        return SimulatorConfig()
    raise ValueError(f"simulator profile {name!r}: use one of {', '.join(PROFILES)}")


def species_fractions(cfg: SimulatorConfig) -> np.ndarray:
    """(5,) primary species fractions in PID-class order (other, pion, kaon, proton, electron)."""
    return np.array(
        [cfg.fraction_other, cfg.fraction_pion, cfg.fraction_kaon, cfg.fraction_proton, cfg.fraction_electron]
    )


def layer_radii(cfg: SimulatorConfig) -> np.ndarray:
    """(n_modules * layers_per_module,) radii [cm]: centres of equal slices of each module."""
    return _layer_radii(tuple(cfg.module_edges_cm), cfg.layers_per_module).copy()


@lru_cache(maxsize=16)
def _layer_radii(module_edges_cm: tuple[float, ...], layers_per_module: int) -> np.ndarray:
    edges = np.asarray(module_edges_cm, dtype=float)
    frac = (np.arange(layers_per_module) + 0.5) / layers_per_module
    return (edges[:-1, None] + np.diff(edges)[:, None] * frac[None, :]).ravel()


def medium(cfg: SimulatorConfig) -> physics.Medium:
    """The gas as Bethe-Bloch sees it."""
    return physics.Medium(
        z_over_a=cfg.gas_z_over_a, excitation_ev=cfg.gas_excitation_ev, x0=cfg.sternheimer_x0,
        x1=cfg.sternheimer_x1, a=cfg.sternheimer_a, k=cfg.sternheimer_k, cbar=cfg.sternheimer_cbar,
        tcut_mev=cfg.dedx_tcut_kev * 1e-3, min_beta_gamma=cfg.dedx_min_beta_gamma,
    )  # fmt: skip


def pdg_codes(pid: np.ndarray, charge: np.ndarray) -> np.ndarray:
    """PDG codes from class and charge: pi+ 211, K+ 321, p 2212 positive; e- 11 and mu- 13 negative."""
    code = SPECIES_PDG[pid]
    lepton = (pid == 0) | (pid == ELECTRON_PID)
    return np.where(lepton, -charge * code, charge * code).astype(np.int32)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    """(n,) draws uniform in log between lo and hi."""
    return np.exp(rng.uniform(np.log(lo), np.log(hi), n))


def momentum_magnitude(parts: Particles) -> np.ndarray:
    """(t,) |p| [GeV] of every particle."""
    return np.sqrt(np.einsum("ij,ij->i", parts.momentum, parts.momentum))


def _negative_binomial(rng: np.random.Generator, mean: float, k: float) -> int:
    """One negative-binomial count with the given mean and shape k (variance mean + mean^2 / k)."""
    if mean <= 0:
        return 0
    return int(rng.negative_binomial(k, k / (k + mean)))


def sample_primaries(cfg: SimulatorConfig, rng: np.random.Generator) -> Particles:
    """Charged primaries from one vertex: NB multiplicity, species mix, Tsallis pT, uniform eta and phi."""
    n = _negative_binomial(rng, cfg.multiplicity_mean, cfg.multiplicity_k)
    n = int(np.clip(n, cfg.multiplicity_min, cfg.multiplicity_max))
    vertex = rng.normal(0.0, [cfg.vertex_sigma_xy_cm, cfg.vertex_sigma_xy_cm, cfg.vertex_sigma_z_cm])
    # Inverse-CDF draws: Generator.choice with p costs ~10x more per call at these sizes.
    pid = np.minimum(np.searchsorted(np.cumsum(species_fractions(cfg)), rng.random(n), side="right"), 4)
    charge = 2 * rng.integers(0, 2, size=n) - 1
    pt = physics.sample_tsallis_pt(rng, n, cfg.tsallis_t_gev, cfg.tsallis_n, cfg.pt_max_gev)
    eta = rng.uniform(-cfg.eta_max, cfg.eta_max, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    momentum = np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)], axis=1)
    return Particles(
        momentum=momentum, vertex=np.broadcast_to(vertex, (n, 3)).copy(), pid=pid, charge=charge,
        max_psi=np.full(n, np.pi), first_only=np.ones(n, dtype=bool),
    )  # fmt: skip


def sample_secondaries(cfg: SimulatorConfig, rng: np.random.Generator, n_primaries: int = 0) -> Particles:
    """Delta electrons and conversion pairs born uniformly in the TPC gas, below ~60 MeV/c, looping.

    Their count is negative binomial with mean secondaries_mean + secondaries_per_primary * n_primaries.
    """
    mean = cfg.secondaries_mean + cfg.secondaries_per_primary * n_primaries
    n = _negative_binomial(rng, mean, cfg.secondaries_k)
    conv = rng.random(n) < cfg.conversion_fraction
    p_delta = _log_uniform(rng, cfg.secondary_p_min_gev, cfg.delta_p_max_gev, n)
    e_gamma = _log_uniform(rng, 2 * cfg.secondary_p_min_gev, cfg.conversion_e_max_gev, n)
    share = rng.uniform(0.2, 0.8, n)  # momentum share of the electron in a conversion
    # Rows: every secondary's (first) electron, then the positron of each conversion.
    p = np.concatenate([np.where(conv, e_gamma * share, p_delta), e_gamma[conv] * (1 - share[conv])])
    p = np.maximum(p, cfg.secondary_p_min_gev)
    charge = np.concatenate([-np.ones(n, dtype=np.int64), np.ones(int(conv.sum()), dtype=np.int64)])
    edges = cfg.module_edges_cm
    r0 = np.sqrt(rng.uniform(edges[0] ** 2, edges[-1] ** 2, n))  # uniform in the annulus area
    phi0 = rng.uniform(-np.pi, np.pi, n)
    z0 = rng.uniform(-cfg.z_half_length_cm, cfg.z_half_length_cm, n)
    cos_t = rng.uniform(-cfg.secondary_cos_theta_max, cfg.secondary_cos_theta_max, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    idx = np.concatenate([np.arange(n), np.flatnonzero(conv)])  # a conversion pair shares point and direction
    sin_t = np.sqrt(1.0 - cos_t[idx] ** 2)
    momentum = p[:, None] * np.stack([sin_t * np.cos(phi[idx]), sin_t * np.sin(phi[idx]), cos_t[idx]], axis=1)
    vertex = np.stack([r0 * np.cos(phi0), r0 * np.sin(phi0), z0], axis=1)[idx]
    m = idx.size
    return Particles(
        momentum=momentum, vertex=vertex, pid=np.full(m, ELECTRON_PID), charge=charge,
        max_psi=np.full(m, TWO_PI * cfg.secondary_max_turns), first_only=np.zeros(m, dtype=bool),
    )  # fmt: skip


def trace_hits(cfg: SimulatorConfig, parts: Particles, radii: np.ndarray) -> tuple[np.ndarray, ...]:
    """Ideal layer crossings of every particle: (track, x, y, z, cos_alpha, psi), one row per crossing.

    Primaries keep the first crossing of each layer within half a turn (a curling track, 2R < r, reaches no
    further layer); secondaries keep both crossings of every layer on every turn up to `max_psi`. Crossings
    outside |z| < z_half_length are dropped (z grows monotonically with the turning angle). psi is the
    turning angle from the production point to the crossing.
    """
    pt = np.hypot(parts.momentum[:, 0], parts.momentum[:, 1])
    moving = np.flatnonzero(pt > 0)
    mom, vtx = parts.momentum[moving], parts.vertex[moving]
    hel = physics.build_helices(
        vtx[:, 0], vtx[:, 1], mom[:, 0], mom[:, 1], parts.charge[moving], cfg.b_field_t
    )
    # Only reachable (track, layer) pairs: a looping secondary spans a few layers of the 48.
    pair_t, pair_l = np.nonzero(physics.reachable_layers(hel, radii))
    psi, x, y = physics.layer_crossings(hel, pair_t, radii[pair_l])  # (m, 2)
    first = parts.first_only[moving][pair_t, None]
    keep = ~first | (psi == psi.min(axis=1, keepdims=True))  # (m, 2)
    # Turning angle at which |z| reaches the end of the drift volume: z = z0 + R psi pz / pT.
    dz_dpsi = hel.radius * mom[:, 2] / pt[moving]
    z_end = np.where(dz_dpsi >= 0, cfg.z_half_length_cm, -cfg.z_half_length_cm) - vtx[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        psi_z = np.where(dz_dpsi != 0, z_end / dz_dpsi, np.inf)
    psi_end = np.minimum(parts.max_psi[moving], psi_z)  # (t,)
    m_idx, b_idx = np.nonzero(keep & (psi < psi_end[pair_t, None]))
    t_idx, psi0 = pair_t[m_idx], psi[m_idx, b_idx]
    # Loops: a crossing at psi0 recurs at psi0 + 2 pi k while psi < psi_end (only for secondaries).
    n_rep = np.where(
        parts.first_only[moving][t_idx], 1, np.floor((psi_end[t_idx] - psi0) / TWO_PI).astype(np.int64) + 1
    )
    row = np.repeat(np.arange(t_idx.size), n_rep)
    turn = np.arange(row.size) - np.repeat(np.cumsum(n_rep) - n_rep, n_rep)
    t_idx, m_idx, b_idx = t_idx[row], m_idx[row], b_idx[row]
    xs, ys = x[m_idx, b_idx], y[m_idx, b_idx]
    psi_all = psi0[row] + TWO_PI * turn
    zs = vtx[t_idx, 2] + dz_dpsi[t_idx] * psi_all
    cos_a = physics.crossing_cos_alpha(xs, ys, hel.cx[t_idx], hel.cy[t_idx], hel.radius[t_idx])
    return moving[t_idx], xs, ys, zs, cos_a, psi_all


def track_energy_scale(cfg: SimulatorConfig, parts: Particles) -> tuple[np.ndarray, np.ndarray]:
    """Per track: (adc_per_mip x relative mean dE/dx at beta*gamma = p/m, sin theta), shared by its points."""
    p = momentum_magnitude(parts)
    mass = SPECIES_MASS_GEV[parts.pid]
    rel = physics.relative_dedx(p / mass, mass, medium(cfg))
    sin_theta = np.hypot(parts.momentum[:, 0], parts.momentum[:, 1]) / np.maximum(p, 1e-12)
    return cfg.adc_per_mip * rel, sin_theta


def deposit_energy(cfg: SimulatorConfig, scale: np.ndarray, sin_theta: np.ndarray, cos_a: np.ndarray,
                   moyal: np.ndarray) -> np.ndarray:  # fmt: skip
    """ADC-like energy per point: scale x path factor 1/(cos alpha sin theta) x Moyal fluctuation (mean 1).

    `scale`, `sin_theta` are per point (the track's), `moyal` standard Moyal samples; the fluctuation is
    (1 + w X) / (1 + w E[X]) with w = landau_width, so the mean deposit is the Bethe-Bloch mean.
    """
    path = np.minimum(1.0 / np.maximum(cos_a * sin_theta, 1e-9), cfg.path_factor_max)
    fluct = (1.0 + cfg.landau_width * moyal) / (1.0 + cfg.landau_width * physics.MOYAL_MEAN)
    return np.clip(scale * path * fluct, cfg.energy_floor_adc, cfg.energy_max_adc)


def sample_transported(cfg: SimulatorConfig, rng: np.random.Generator) -> Particles:
    """Every charged particle of one event: primaries, gas secondaries, then V0 daughters; loopers marked.

    Optional pieces draw nothing when off, so the paper profile's random stream is unchanged.
    """
    primaries = sample_primaries(cfg, rng)
    parts = concat_particles(primaries, sample_secondaries(cfg, rng, primaries.pid.size))
    if (cfg.k0s_per_primary > 0 or cfg.lambda_per_primary > 0) and primaries.pid.size:
        daughters = sample_v0_daughters(cfg, primaries.pid.size, primaries.vertex[0], rng)
        parts = concat_particles(parts, daughters)
    return mark_loopers(cfg, parts, cfg.module_edges_cm[-1])


def simulate_event(cfg: SimulatorConfig, rng: np.random.Generator) -> Event:
    """One p+p-like event: spacepoints (E, x, y, z), track ids into its TrackTable, PID class, noise flag."""
    parts = sample_transported(cfg, rng)
    radii = _layer_radii(tuple(cfg.module_edges_cm), cfg.layers_per_module)
    track, x, y, z, cos_a, psi = trace_hits(cfg, parts, radii)
    if cfg.multiple_scattering:
        x, y, z = scatter_crossings(cfg, parts, SPECIES_MASS_GEV[parts.pid], track, x, y, z, psi, rng)
    u = rng.random(track.size)  # (n,) layer efficiency
    g = rng.standard_normal((3, track.size))  # (3, n) r*phi smear, z smear, Landau (Moyal) seed
    # Smear on the pad row: rotate about the beam line by dphi = d(r*phi) / r (radius kept), shift z.
    dphi = g[0] * cfg.sigma_rphi_cm / np.hypot(x, y)
    z = z + cfg.sigma_z_cm * g[1]
    keep = np.flatnonzero((u < cfg.hit_efficiency) & (np.abs(z) < cfg.z_half_length_cm))
    track, x, y, z, dphi, cos_a = track[keep], x[keep], y[keep], z[keep], dphi[keep], cos_a[keep]
    cos_d, sin_d = np.cos(dphi), np.sin(dphi)
    scale, sin_theta = track_energy_scale(cfg, parts)
    moyal = -np.log(np.maximum(g[2, keep] ** 2, 1e-300))  # standard Moyal: exp(-X) ~ chi^2_1
    points = np.empty((track.size, 4), dtype=np.float32)
    points[:, 0] = deposit_energy(cfg, scale[track], sin_theta[track], cos_a, moyal)
    points[:, 1] = x * cos_d - y * sin_d
    points[:, 2] = x * sin_d + y * cos_d
    points[:, 3] = z
    p = momentum_magnitude(parts)
    tracks = TrackTable(
        momentum=parts.momentum.astype(np.float32), vertex=parts.vertex.astype(np.float32),
        pdg=pdg_codes(parts.pid, parts.charge), charge=parts.charge.astype(np.int8),
    )  # fmt: skip
    return Event(
        points=points, track_id=track.astype(np.int64), pid=parts.pid[track].astype(np.int8),
        noise=(p[track] < NOISE_MOMENTUM_GEV).astype(np.uint8), tracks=tracks,
    )  # fmt: skip


def simulate_events(n: int, seed: int, cfg: SimulatorConfig | None = None, start: int = 0) -> Iterator[Event]:
    """Events start .. start+n-1 of the stream `seed`; event i is drawn from `default_rng([seed, i])`."""
    if n < 0 or start < 0 or seed < 0:
        raise ValueError(
            f"simulate_events: n, seed and start must be >= 0, got n={n}, seed={seed}, start={start}"
        )
    cfg = SimulatorConfig() if cfg is None else cfg
    for i in range(start, start + n):
        yield simulate_event(cfg, np.random.default_rng([seed, i]))
