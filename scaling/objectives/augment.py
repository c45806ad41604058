"""Physics-valid augmentations of one event, applied to the raw spacepoints before normalisation and
serialisation (the two views of contrastive pretraining; JetCLR, Dillon et al. 2022, adapted to a TPC).

    >>> view = augment_event(event, AugmentConfig(), np.random.default_rng(0))

Each keeps the event a plausible sPHENIX TPC event: the solenoid field is along z and the beams collide
head-on, so a rotation in phi and the reflection z -> -z map physics onto physics; the smearing is the
detector's own resolution (about 150 um in r*phi, 1 mm in z); dropped points stand for
inefficiency and injected points (at the radius of an existing point, uniform phi and z within the event's
range, an existing point's energy) for noise hits, labelled noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scaling.config import doc
from scaling.data.schema import Event


@dataclass(kw_only=True)
class AugmentConfig:
    """The augmentations making the two views of an event (contrastive objective)."""

    phi_rotation: bool = doc("rotate the event by a uniform random angle about the beam axis", default=True)
    z_reflection: float = doc("probability of reflecting z -> -z", default=0.5)
    smear_rphi_cm: float = doc("Gaussian smearing of r*phi in cm (TPC resolution ~150 um)", default=0.015)
    smear_z_cm: float = doc("Gaussian smearing of z in cm (TPC resolution ~1 mm)", default=0.1)
    smear_energy: float = doc("relative Gaussian smearing of the energy deposit", default=0.05)
    dropout: float = doc("probability of dropping each spacepoint", default=0.1)
    noise_fraction: float = doc("injected noise points, as a fraction of the event's points", default=0.02)

    def __post_init__(self) -> None:
        if not 0.0 <= self.z_reflection <= 1.0:
            raise ValueError(
                f"objective.augment.z_reflection: must be a probability in [0, 1], got {self.z_reflection}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(
                f"objective.augment.dropout: must lie in [0, 1), got {self.dropout}; a dropout of 1 empties "
                "every event (use e.g. 0.1)"
            )
        for key in ("smear_rphi_cm", "smear_z_cm", "smear_energy", "noise_fraction"):
            if getattr(self, key) < 0:
                raise ValueError(f"objective.augment.{key}: must be >= 0, got {getattr(self, key)}")


def augment_event(event: Event, cfg: AugmentConfig, rng: np.random.Generator) -> Event:
    """A randomly augmented copy of `event` (labels follow their points; injected points are noise).

    An event that has no point, or none left after the dropout, is a ValueError naming the key and the fix."""
    pts = np.asarray(event.points, dtype=np.float64)
    n = pts.shape[0]
    if n == 0:
        raise ValueError(
            f"objective.augment: event {event.event_id} has no spacepoints to make views of; remove empty "
            "events from the split (or use another objective)"
        )
    keep = rng.random(n) >= cfg.dropout
    if not keep.any():
        raise ValueError(
            f"objective.augment.dropout={cfg.dropout}: event {event.event_id} has no spacepoint left of {n}; "
            "lower objective.augment.dropout"
        )
    pts, track_id = pts[keep], np.asarray(event.track_id)[keep]
    pid, noise = np.asarray(event.pid)[keep], np.asarray(event.noise)[keep]
    e, x, y, z = pts.T
    r, phi = np.hypot(x, y), np.arctan2(y, x)
    n_noise = int(np.floor(cfg.noise_fraction * n))
    if n_noise:  # radius and energy of existing points, uniform phi and z within the event's span
        pick = rng.integers(0, r.size, size=n_noise)
        r = np.concatenate([r, r[pick]])
        phi = np.concatenate([phi, rng.uniform(-np.pi, np.pi, n_noise)])
        z = np.concatenate([z, rng.uniform(z.min(), z.max(), n_noise)])
        e = np.concatenate([e, e[rng.integers(0, e.size, size=n_noise)]])
        track_id = np.concatenate([track_id, np.full(n_noise, -1, dtype=track_id.dtype)])
        pid = np.concatenate([pid, np.zeros(n_noise, dtype=pid.dtype)])
        noise = np.concatenate([noise, np.ones(n_noise, dtype=noise.dtype)])
    m = r.size
    if cfg.phi_rotation:
        phi = phi + rng.uniform(0.0, 2 * np.pi)
    if rng.random() < cfg.z_reflection:
        z = -z
    phi = phi + rng.normal(0.0, cfg.smear_rphi_cm, m) / np.maximum(r, 1e-6)  # r*dphi ~ N(0, sigma)
    z = z + rng.normal(0.0, cfg.smear_z_cm, m)
    e = np.maximum(e * (1.0 + rng.normal(0.0, cfg.smear_energy, m)), 0.0)
    points = np.stack([e, r * np.cos(phi), r * np.sin(phi), z], axis=1).astype(np.float32)
    return Event(points=points, track_id=track_id, pid=pid, noise=noise, tracks=None,
                 event_id=event.event_id, meta=dict(event.meta))  # fmt: skip
